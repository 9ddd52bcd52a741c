"""What a check leaves behind for people and CI: diff heat maps, JUnit XML, an HTML page.

JUnit: one <testsuite> per game, one <testcase> per check, a <failure> in each failed one, and
the counts on both levels. HTML: one self-contained file (images embedded as data URIs) that shows
golden, current and diff side by side for every frame, then every metric with its verdict.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from mobius.safety.atomic import atomic_write, atomic_write_text

HEAT = ((0.0, (0, 0, 0)), (0.25, (120, 0, 120)), (0.5, (230, 40, 30)), (0.75, (255, 170, 0)), (1.0, (255, 255, 210)))


def heatmap(expected, current, similarity=None):
    """An RGB uint8 picture of where the frames differ: 1 - SSIM per pixel, over a dimmed golden."""
    import numpy as np

    from mobius.measure.ssim import ssim_map

    similarity = ssim_map(expected, current) if similarity is None else similarity
    level = np.clip(np.clip(1.0 - similarity, 0.0, 1.0) / 0.5, 0.0, 1.0)
    return _heat_over(expected, level, 0.02)


def _heat_over(backdrop, level, threshold: float):
    """RGB uint8: HEAT's colour of `level` (0-1) where it exceeds `threshold`, elsewhere the 8-bit `backdrop`
    dimmed to 35 %.

    Each pixel is computed by the same float operations as blending two full-size float pictures would
    (colour + 0.5, or backdrop * 0.35 + 0.5, clipped and truncated), but the dimmed backdrop comes from a
    256-entry table and the colours only where they are shown: the same bytes in a fraction of the time
    (the box's heat maps: 36-57 -> about 10 ms, measured)."""
    picture = _dimmed(backdrop)
    hot = level > threshold
    if hot.any():
        picture[hot] = _heat_colours(level[hot])
    return picture


def _dimmed(backdrop):
    """(h, w, 3) uint8: an 8-bit plane at 35 % (v * 0.35 + 0.5, clipped, truncated), by a 256-entry table."""
    import numpy as np

    table = np.clip(np.arange(256, dtype=np.float64) * 0.35 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(table[np.asarray(backdrop, dtype=np.uint8)][..., None], 3, axis=-1)


def _heat_colours(level):
    """(n, 3) uint8 HEAT colours of a 1-D array of levels (0-1)."""
    import numpy as np

    xs = [p for p, _ in HEAT]
    rgb = np.stack([np.interp(level, xs, [c[k] for _, c in HEAT]) for k in range(3)], axis=-1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _png(array, path: Path) -> Path:
    """A debug picture as PNG, at zlib level 1: the same pixels as the default level 6 in about half the
    CPU (the box's five heat maps and frames: 56 -> 31 ms) for files about 10 % larger. Not fsynced: the next
    check writes its pictures again."""
    from PIL import Image

    with atomic_write(path, "wb", durable=False) as handle:
        Image.fromarray(array).save(handle, format="PNG", compress_level=1)
    return path


def write_debug_images(debug: Path, name: str, expected, current, similarity=None) -> dict[str, Path]:
    """debug/<frame>_current.png and debug/<frame>_diff.png for a failed frame."""
    stem = name.removesuffix(".png")
    files = {"current": _png(current, debug / f"{stem}_current.png")}
    if getattr(expected, "shape", None) == getattr(current, "shape", None):
        files["diff"] = _png(heatmap(expected, current, similarity), debug / f"{stem}_diff.png")
    return files


def block_debug_images(debug: Path, stem: str, current, golden_blocks: dict, current_blocks: dict) -> dict[str, Path]:
    """debug/<stem>_current.png (the full frame), <stem>_golden.png (the golden's thumbnail, enlarged to
    the frame's size: the golden keeps only thumbnails between pinned frames) and <stem>_diff.png (each
    block's largest plane difference as a heat map over the dimmed current frame)."""
    import numpy as np

    height, width = current.shape
    luma_rows, luma_cols = golden_blocks["y"].shape
    loss = np.abs(golden_blocks["y"].astype(np.float32) - current_blocks["y"].astype(np.float32))
    for plane in ("u", "v"):
        chroma = np.abs(golden_blocks[plane].astype(np.float32) - current_blocks[plane].astype(np.float32))
        scale = (luma_rows // chroma.shape[0], luma_cols // chroma.shape[1])
        loss = np.maximum(loss, np.kron(chroma, np.ones(scale, dtype=np.float32))[:luma_rows, :luma_cols])
    rows = np.minimum(np.arange(height) * luma_rows // height, luma_rows - 1)
    cols = np.minimum(np.arange(width) * luma_cols // width, luma_cols - 1)
    # each block's level and colour once, then enlarged (indexing copies values: the same pixels as
    # computing them on the enlarged picture)
    level = np.clip(loss / 64.0, 0.0, 1.0)
    mix = _dimmed(current)
    hot = (level > 0.05)[rows][:, cols]
    if hot.any():
        mix[hot] = _heat_colours(level.ravel()).reshape(*level.shape, 3)[rows][:, cols][hot]
    enlarged = np.asarray(golden_blocks["y"], dtype=np.uint8)[rows][:, cols]
    return {"current": _png(np.ascontiguousarray(current), debug / f"{stem}_current.png"),
            "golden": _png(enlarged, debug / f"{stem}_golden.png"),
            "diff": _png(mix, debug / f"{stem}_diff.png")}


def junit_xml(reports) -> str:
    """JUnit XML for one or more GoldenVerdicts."""
    import xml.etree.ElementTree as ET  # here, not at the top: a check's debug pictures need this module, not XML

    root = ET.Element("testsuites", name="mobius golden", tests=str(sum(len(r.checks) for r in reports)),
                      failures=str(sum(len(r.failures) for r in reports)), errors="0",
                      time=f"{sum(r.seconds for r in reports):.3f}")
    for report in reports:
        suite = ET.SubElement(root, "testsuite", name=f"golden.{report.game}", tests=str(len(report.checks)),
                              failures=str(len(report.failures)), errors="0",
                              skipped=str(sum(c.skipped for c in report.checks)),
                              time=f"{report.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="video", value=str(report.video))
        ET.SubElement(props, "property", name="golden", value=str(report.golden))
        for check in report.checks:
            case = ET.SubElement(suite, "testcase", classname=f"golden.{report.game}", name=check.name, time="0")
            ET.SubElement(case, "system-out").text = check.line()
            if check.skipped:
                ET.SubElement(case, "skipped", message=check.message)
            elif not check.passed:
                failure = ET.SubElement(case, "failure", message=check.message or "check failed", type=check.kind)
                failure.text = check.line()
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(reports, path: Path) -> Path:
    atomic_write_text(path, junit_xml(reports))
    return path


def _data_uri(source) -> str:
    from PIL import Image

    if isinstance(source, Path):
        if not source.is_file():
            return ""
        data = source.read_bytes()
    else:
        buffer = io.BytesIO()
        Image.fromarray(source).save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def timeline_svg(timeline, *, width: int = 900, height: int = 170) -> str:
    """An inline SVG plot of one Timeline: the values over time, the limit dashed, failing ranges shaded
    red. Values above the plot's top (4x the limit) are drawn at the top edge, whose label then says so
    ("48+"), and the caption gives the peak, the number the check's heading and table give."""
    import html

    esc = html.escape
    left, right, top, bottom = 48, 10, 22, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    times, values = timeline.times, timeline.values
    end = max([t for t in times] + [r["end"] for r in timeline.ranges] + [1.0])
    peak = max(values) if values else 0.0
    y_max = max(timeline.limit * 1.5, min(peak * 1.05, timeline.limit * 4.0), 1e-9)

    def x(t: float) -> float:
        return left + plot_w * min(max(t / end, 0.0), 1.0)

    def y(v: float) -> float:
        return top + plot_h * (1.0 - min(max(v / y_max, 0.0), 1.0))

    out = [f"<svg class='timeline' role='img' aria-label='{esc(timeline.name)} timeline' "
           f"xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>",
           f"<text x='{left}' y='14' font-size='12'>{esc(timeline.name)}: {esc(timeline.label)}</text>",
           f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#bbb'/>"]
    for r in timeline.ranges:
        span = max(x(r["end"]) - x(r["start"]), 2.0)
        out.append(f"<rect class='failing' x='{x(r['start']):.1f}' y='{top}' width='{span:.1f}' "
                   f"height='{plot_h}' fill='#b00020' fill-opacity='0.25'><title>{r['start']:.2f}-{r['end']:.2f} s"
                   "</title></rect>")
    if values:
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values, strict=False))
        out.append(f"<polyline points='{points}' fill='none' stroke='#1f4e9c' stroke-width='1.2'/>")
    out.append(f"<line class='limit' x1='{left}' x2='{left + plot_w}' y1='{y(timeline.limit):.1f}' "
               f"y2='{y(timeline.limit):.1f}' stroke='#b00020' stroke-dasharray='5,4'/>")
    out.append(f"<text x='{left - 4}' y='{y(timeline.limit) + 4:.1f}' font-size='10' text-anchor='end' "
               f"fill='#b00020'>{timeline.limit:g}</text>")
    clipped = peak > y_max
    out.append(f"<text x='{left - 4}' y='{top + 8}' font-size='10' text-anchor='end'>{y_max:.3g}"
               f"{'+' if clipped else ''}</text>")
    out.append(f"<text x='{left - 4}' y='{top + plot_h}' font-size='10' text-anchor='end'>0</text>")
    step = 5.0 if end > 10 else 1.0
    tick = 0.0
    while tick <= end + 1e-9:
        out.append(f"<text x='{x(tick):.1f}' y='{height - 8}' font-size='10' text-anchor='middle'>{tick:g} s</text>")
        tick += step
    out.append(f"<text x='{left + plot_w}' y='14' font-size='10' text-anchor='end'>limit {timeline.limit:g} "
               f"{esc(timeline.unit)} (dashed); failing ranges shaded"
               f"{f'; peak {peak:g}, drawn at the top' if clipped else ''}</text></svg>")
    return "".join(out)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}h2{margin-top:2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}.skip{color:#777;font-weight:bold}
.timeline{display:block;margin:8px 0}
.frames{display:flex;gap:8px}.frames figure{margin:0}.frames img{width:320px;border:1px solid #999}"""


def html_report(reports) -> str:
    """A self-contained HTML page for one or more GoldenVerdicts."""
    import html

    esc = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>mobius golden check</title>",
           f"<style>{STYLE}</style></head><body><h1>Golden check</h1>"]
    total = sum(len(r.checks) for r in reports)
    failed = sum(len(r.failures) for r in reports)
    out.append(f"<p>{total} checks, <span class='{'fail' if failed else 'pass'}'>{failed} failed</span></p>")
    for report in reports:
        verdict = "pass" if report.passed else "fail"
        out.append(f"<h2>{esc(report.game)} <span class='{verdict}'>{verdict.upper()}</span></h2>")
        out.append(f"<p>video {esc(str(report.video))}<br>golden {esc(str(report.golden))}</p>")
        for timeline in report.timelines:
            out.append(timeline_svg(timeline))
        for check in (c for c in report.checks if c.name == "frames.content" and c.ranges):
            for r in check.ranges:
                label = f"{r['worst_at']:.2f}s"
                out.append(f"<h3>frames {r['start']:.2f}-{r['end']:.2f} s: worst {r['worst']:g} at {label} "
                           f"<span class='fail'>FAIL</span></h3><div class='frames'>")
                for kind, caption in (("golden", "golden (thumbnail)"), ("current", "current"),
                                      ("diff", "diff (block difference)")):
                    src = _data_uri(check.files[f"{label} {kind}"]) if f"{label} {kind}" in check.files else ""
                    if src:
                        out.append(f"<figure><img src='{src}' alt='{caption}'><figcaption>{caption}</figcaption>"
                                   "</figure>")
                out.append("</div>")
        for check in (c for c in report.checks if c.kind == "frame" and c.name.startswith("frame.")):
            t = float(check.name.removeprefix("frame.").removesuffix("s"))
            golden_img = _data_uri(check.files["golden"]) if "golden" in check.files else ""
            current = check.files.get("current")
            if current is None and t in report.planes:
                current_img = _data_uri(report.planes[t])
            else:
                current_img = _data_uri(current) if current else ""
            diff_img = _data_uri(check.files["diff"]) if "diff" in check.files else ""
            cls = "pass" if check.passed else "fail"
            out.append(f"<h3>{esc(check.name)}: SSIM {esc(str(check.measured))} "
                       f"<span class='{cls}'>{cls.upper()}</span></h3><div class='frames'>")
            for label, src in (("golden", golden_img), ("current", current_img), ("diff (1 - SSIM)", diff_img)):
                if src:
                    out.append(f"<figure><img src='{src}' alt='{label}'><figcaption>{label}</figcaption></figure>")
            out.append("</div>")
        out.append("<table><tr><th>check</th><th>measured</th><th>golden</th><th>deviation</th>"
                   "<th>threshold</th><th>verdict</th><th>note</th></tr>")
        for check in report.checks:
            cls = "skip" if check.skipped else "pass" if check.passed else "fail"
            cells = [check.name, check.measured, check.expected, check.deviation,
                     f"{check.rule} {check.threshold}".strip() if check.threshold is not None else ""]
            out.append("<tr>" + "".join(f"<td>{esc('' if c is None else str(c))}</td>" for c in cells)
                       + f"<td class='{cls}'>{cls.upper()}</td><td>{esc(check.message)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return "".join(out)


def write_html(reports, path: Path) -> Path:
    atomic_write_text(path, html_report(reports))
    return path
