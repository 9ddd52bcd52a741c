"""The duplicates report as one self-contained HTML file: each group's thumbnails side by side.

Thumbnails are embedded as data: URIs (JPEG, 160 px), so the file can be mailed or archived and
still shows the images; the library paths are escaped text, never markup.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from mobius.fingerprint.algorithm import flatten
from mobius.safety.atomic import atomic_write

if TYPE_CHECKING:
    from mobius.fingerprint.results import DuplicateGroups

THUMB = 160
MAX_GROUPS = 500

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}
.group{background:#fff;border:1px solid #ddd;border-radius:8px;margin:0 0 16px;padding:12px}
.group h2{font-size:15px;margin:0 0 8px}.members{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:170px}figure img{width:160px;height:160px;object-fit:contain;background:#eee;display:block}
figcaption{font-size:11px;word-break:break-all}.kind{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px}
.identical{background:#b33}.same-hash{background:#c70}.near{background:#37a}.missing{color:#b33}"""


def thumbnail(path: Path) -> str | None:
    """A data: URI of a small JPEG of the image, or None if it cannot be read any more."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMB, THUMB))
            small = flatten(image).convert("RGB")
            small.thumbnail((THUMB, THUMB))
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=80)
    except (OSError, ValueError, SyntaxError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render(result: DuplicateGroups, library: Path) -> str:
    groups = result.groups[:MAX_GROUPS]
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Mobius duplicates</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Duplicates: {len(result.groups)} groups, {result.duplicates} extra copies</h1>",
             f"<p>{result.images} images, hash {esc(result.algorithm)}, distance &le; {result.distance}"
             f"{' with flips/rotations' if result.variants else ''}.</p>"]
    if len(result.groups) > MAX_GROUPS:
        parts.append(f"<p>Showing the {MAX_GROUPS} largest groups; --format json lists all.</p>")
    for number, group in enumerate(groups, 1):
        parts.append(f"<section class='group'><h2>Group {number} <span class='kind {group.kind}'>"
                     f"{group.kind}</span> {len(group.members)} images</h2><div class='members'>")
        for member in group.members:
            uri = thumbnail(library / member.path)
            image = (f"<img class='thumb' alt='{esc(member.path)}' src='{uri}'>" if uri
                     else "<div class='missing'>unreadable now</div>")
            copy = f"<br>same bytes as {esc(member.copy_of)}" if member.copy_of else ""
            parts.append(f"<figure>{image}<figcaption>{esc(member.path)}<br>{member.hash} "
                         f"(d={member.distance}){copy}</figcaption></figure>")
        parts.append("</div></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: DuplicateGroups, library: Path, target: Path) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "w", encoding="utf-8", file_mode=0o644) as handle:
        handle.write(render(result, library))
    return target
