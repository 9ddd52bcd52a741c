"""The checks along the whole timeline (golden format 2): every frame, the timing, the soundtrack's content.

- `frames.content`: each current frame against the golden frame it shows (after alignment), by the
  difference of the most-changed 1 % of the picture's blocks (mobius.measure.thumbnails), <= frame_diff.
- `frames.timing`: frames dropped or duplicated against the golden (mobius.measure.alignment), <= timing_frames.
- `frames.frozen`: frames that stand still where the golden moves, <= timing_frames.
- `audio.content`: each 100 ms window's band levels against the golden's, <= audio_diff dB.
- `audio.bands`: the level change of the most-changed band over its audible seconds, <= band_tol dB.
- `timing.av_offset`: how late the soundtrack runs against the picture, |ms| <= av_offset_ms.

A failure names time ranges ("frames 14.00-16.03 s: difference 41.2, limit 12"), worst first in each.
A golden without signatures (format 1) yields these checks as skipped, saying how to add them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mobius.golden.baseline import Thresholds
from mobius.golden.signatures import Signatures
from mobius.golden.verdicts import GoldenCheck, Timeline
from mobius.measure import alignment
from mobius.measure.decode import FrameSignatures
from mobius.measure.median import median

CHECKS = ("frames.content", "frames.timing", "frames.frozen", "audio.content", "audio.bands", "timing.av_offset")
GAP = 3  # failing samples this close together form one range
MIN_MATCH = 0.5  # correlation of the best audio offset: a shifted copy scores >= 0.97, another track < 0.1


@dataclass
class Comparison:
    """What the timeline checks found, kept for the report's debug images."""

    checks: list[GoldenCheck]
    timelines: list[Timeline]
    worst_frames: list[tuple[int, int]]  # (current frame, golden frame) at the worst of each failing range


def skipped_checks(slug: str, why: str) -> list[GoldenCheck]:
    return [GoldenCheck(name, name.split(".")[0], True, None, None, skipped=True,
                  message=f"not run: {why}; add it with `mobius golden upgrade {slug}`") for name in CHECKS]


def ranges_over(values, limit: float, times, step: float) -> list[dict[str, float]]:
    """Runs of samples above `limit` (gaps of < GAP samples bridged), each with its worst sample."""
    import numpy as np

    bad = np.flatnonzero(np.asarray(values) > limit)
    found: list[dict[str, float]] = []
    if bad.size == 0:
        return found
    groups = np.split(bad, np.flatnonzero(np.diff(bad) > GAP) + 1)
    for group in groups:
        worst = int(group[np.argmax(np.asarray(values)[group])])
        found.append({"start": round(float(times[group[0]]), 3), "end": round(float(times[group[-1]]) + step, 3),
                      "worst_at": round(float(times[worst]), 3), "worst": round(float(values[worst]), 3),
                      "index": worst})
    return found


def _range_text(what: str, ranges: list[dict[str, float]], unit: str, limit: float, *, shown: int = 3) -> str:
    parts = [f"{what} {r['start']:.2f}-{r['end']:.2f} s: {r['worst']:.3g}{unit} at {r['worst_at']:.2f} s"
             for r in ranges[:shown]]
    more = f" and {len(ranges) - shown} more range(s)" if len(ranges) > shown else ""
    return "; ".join(parts) + more + f" (limit {limit:g}{unit})"


def compare(golden: Signatures, frames: FrameSignatures, audio_db, limits: Thresholds, *,
            costs: alignment.CostRows | None = None, heard: SoundMeasures | None = None,
            golden_motion=None, on_worst: Callable[[list[tuple[int, int]]], None] | None = None) -> Comparison:
    """Every timeline check of a decoded video (`frames`, `audio_db`) against the golden's signatures.

    Parts measured ahead, while the picture decodes, may be passed in: `costs`, the alignment's costs
    (`alignment.CostRows`); `heard`, `measure_sound(golden.audio, audio_db, limits)`; `golden_motion`,
    `motion(golden.frames)`. `on_worst` gets the worst frame of each failing `frames.content` range
    (`Comparison.worst_frames`) as soon as they are known, before the timing and sound checks, so their
    debug pictures can be made beside those.
    """
    import numpy as np

    from mobius.measure import thumbnails

    checks: list[GoldenCheck] = []
    timelines: list[Timeline] = []
    worst: list[tuple[int, int]] = []
    times = np.asarray(frames.times, dtype=np.float64)
    step = median(np.diff(golden.frames.times)) if len(golden.frames) > 1 else 1 / 30

    matched = alignment.align(golden.frames.y, frames.y, costs=costs)
    path = matched.path
    if len(frames):
        difference = thumbnails.content_difference(thumbnails.take(golden.frames.planes(), path), frames.planes())
    else:
        difference = np.zeros(0)
    frame_ranges = ranges_over(difference, limits.frame_diff, times, step)
    worst += [(r["index"], int(path[r["index"]])) for r in frame_ranges]
    if on_worst is not None and worst:
        on_worst(list(worst))

    golden_motion = motion(golden.frames) if golden_motion is None else golden_motion
    # the golden's own frames (a video whose picture stream is the golden's source): the same motion
    current_motion = golden_motion if frames is golden.frames else motion(frames) if len(frames) else np.zeros(0)
    frozen = alignment.frozen_runs(matched, current_motion, golden_motion)
    matched = alignment.with_frozen(matched, frozen)

    measured = round(float(difference.max()), 3) if difference.size else None
    checks.append(GoldenCheck("frames.content", "frames", not frame_ranges and measured is not None, measured,
                        limits.frame_diff, rule="<=", ranges=frame_ranges,
                        message=_range_text("frames", frame_ranges, "", limits.frame_diff) if frame_ranges else
                        ("" if measured is not None else "the video has no frames")))
    timelines.append(Timeline("frames.content", "difference of each frame's most-changed 1 % (8-bit levels)",
                              "levels", _rounded(times), _rounded(difference), limits.frame_diff, frame_ranges))

    def event_range(event) -> dict[str, float]:
        return {"start": round(float(times[event.first]), 3), "end": round(float(times[event.last]) + step, 3),
                "frames": event.frames, "kind": event.kind}

    timing = [e for e in matched.events if e.kind != "frozen"]
    count = sum(e.frames for e in timing)
    timing_ranges = [event_range(e) for e in timing]
    text = "; ".join(f"{r['frames']} frame(s) {r['kind']} at {r['start']:.2f}-{r['end']:.2f} s"
                     for r in timing_ranges[:5])
    checks.append(GoldenCheck("frames.timing", "timing", count <= limits.timing_frames, count, limits.timing_frames,
                        rule="<=", ranges=timing_ranges, message=text))
    frozen_ranges = [event_range(e) for e in matched.by_kind("frozen")]
    still = sum(r["frames"] for r in frozen_ranges)
    checks.append(GoldenCheck("frames.frozen", "timing", still <= limits.timing_frames, still, limits.timing_frames,
                        rule="<=", ranges=frozen_ranges, message="; ".join(
                            f"frozen {r['start']:.2f}-{r['end']:.2f} s ({r['frames']} frames show one picture "
                            "where the golden moves)"
                            for r in frozen_ranges[:5])))
    video_offset = float(matched.start_offset) * step
    checks += _audio_checks(heard or measure_sound(golden.audio, audio_db, limits), limits, video_offset, timelines)
    return Comparison(checks, timelines, worst)


class WorstFrames:
    """The full luma plane of the worst frame of each run of frames that fail `frames.content` against the
    golden frame of the same index, kept while the picture decodes (the decode keeps only thumbnails).

    Runs and worst frames are `ranges_over`'s (gaps of < GAP frames bridged, the first of equal worsts).
    Without a timing fault the alignment is that diagonal, and these are the frames the failing ranges'
    debug pictures show, which then need no second decode: that decode starts at the keyframe before each
    one (up to 250 frames of an ffmpeg-made file, 20-120 ms). Any other worst frame is decoded again, so
    the pictures never depend on this guess. A frame's check costs about 20 us (its largest block
    difference, all three planes in one subtraction; the content difference only above it); at most
    `most` planes are kept.

    The golden's rows are widened `CHUNK` frames at a time, into one buffer, as the decode reaches them:
    all 900 at once took 9-18 ms before the decode could start (9 MB of fresh memory, on the one busy
    thread of the start-up), measured in the CLI check of a 30 s preview.
    """

    CHUNK = 64

    def __init__(self, golden: FrameSignatures, limit: float, *, most: int = 16):
        import numpy as np

        from mobius.measure import thumbnails
        from mobius.measure.decode import luma

        self.golden = golden.planes()
        # each golden frame's three planes in one row, widened, so a frame's largest block difference is
        # one subtraction (16-18 against 26-30 ms for 900 frames plane by plane, measured)
        self._flat = [self.golden[p].reshape(len(self.golden[p]), -1) for p in thumbnails.PLANES]
        self._count = min(len(flat) for flat in self._flat)
        self._rows = np.empty((self.CHUNK, sum(flat.shape[1] for flat in self._flat)), dtype=np.int16)
        self._chunk = -1  # which CHUNK frames `_rows` holds
        self._content, self._luma, self._planes = thumbnails.content_difference, luma, thumbnails.PLANES
        self.limit = limit
        self.most = most
        self.kept: dict[int, object] = {}
        self._run: list | None = None  # [last failing frame, worst value, worst frame, its plane]

    def see(self, index: int, stores: list, frame) -> None:  # noqa: ANN001 - a decoded av frame
        """`read_every_frame`'s `on_frame`: frame `index` and the thumbnails so far ([y, u, v])."""
        import numpy as np

        if index >= self._count:
            return
        d = np.concatenate([store[index].ravel() for store in stores]) - self._golden_row(index)
        if d.max() <= self.limit and -int(d.min()) <= self.limit:
            return
        row = slice(index, index + 1)
        value = float(self._content({p: self.golden[p][row] for p in self._planes},
                                    dict(zip(self._planes, (store[row] for store in stores), strict=True)))[0])
        if value <= self.limit:
            return
        run = self._run
        if run is not None and index - run[0] > GAP:
            self._close()
            run = None
        if run is None:
            self._run = [index, value, index, self._luma(frame)]
            return
        run[0] = index
        if value > run[1]:
            run[1:] = [value, index, self._luma(frame)]

    def _golden_row(self, index: int):
        """Golden frame `index`'s three planes in one int16 row (its CHUNK widened when first needed)."""
        import numpy as np

        chunk, offset = divmod(index, self.CHUNK)
        if chunk != self._chunk:
            start = chunk * self.CHUNK
            stop = min(start + self.CHUNK, self._count)
            np.concatenate([flat[start:stop] for flat in self._flat], axis=1, out=self._rows[: stop - start])
            self._chunk = chunk
        return self._rows[offset]

    def planes(self) -> dict[int, object]:
        """The kept planes by frame index."""
        self._close()
        return self.kept

    def _close(self) -> None:
        if self._run is not None and len(self.kept) < self.most:
            self.kept[self._run[2]] = self._run[3]
        self._run = None


def motion(frames: FrameSignatures):
    """How far each frame moved from the one before (its largest block difference in any plane; 0 for the first)."""
    import numpy as np

    from mobius.measure import thumbnails

    return np.concatenate([[0.0], thumbnails.largest_block_difference(
        thumbnails.take(frames.planes(), np.arange(len(frames) - 1)),
        thumbnails.take(frames.planes(), np.arange(1, len(frames))))])


def _rounded(values, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


@dataclass
class SoundMeasures:
    """The soundtrack measured against the golden's: what `audio.content`, `audio.bands` and
    `timing.av_offset` judge (the offset less the picture's own). `missing` names the side without audio
    ("golden" or "current"); then nothing else is measured."""

    missing: str | None = None
    diff: object = None  # per 100 ms window: mean band level difference (dB)
    change: object = None  # soundprint.BandChange, None when no band is audible for 3 s
    seconds: float = 0.0  # how late the soundtrack runs against the golden's (soundprint.offset)
    correlation: float = 0.0
    span: float = 0.0  # seconds of current audio


def measure_sound(golden_db, current_db, limits: Thresholds) -> SoundMeasures:
    """What the soundtrack checks judge: numpy only, no picture needed, so it can run beside the decode."""
    from mobius.measure import soundprint

    if golden_db is None or len(golden_db) == 0:
        return SoundMeasures(missing="golden")
    if current_db is None or len(current_db) == 0:
        return SoundMeasures(missing="current")
    seconds, correlation = soundprint.offset(golden_db, current_db)
    return SoundMeasures(None, soundprint.window_difference(golden_db, current_db),
                         soundprint.band_difference(golden_db, current_db, limits.band_tol), seconds, correlation,
                         round(len(current_db) * soundprint.HOP_S, 3))


def _audio_checks(heard: SoundMeasures, limits: Thresholds, video_offset: float,
                  timelines: list[Timeline]) -> list[GoldenCheck]:
    import numpy as np

    from mobius.measure import soundprint

    names = ("audio.content", "audio.bands", "timing.av_offset")
    if heard.missing == "golden":
        return [GoldenCheck(n, "audio", True, None, None, skipped=True, message="not run: the golden has no audio")
                for n in names]
    if heard.missing == "current":
        return [GoldenCheck(n, "audio", False, None, None, message="the video has no audio stream") for n in names]
    checks = []
    window = soundprint.WINDOW_HOPS * soundprint.HOP_S
    diff = heard.diff
    times = np.arange(len(diff)) * window
    ranges = ranges_over(diff, limits.audio_diff, times, window)
    for r in ranges:
        r.pop("index")
    measured = round(float(diff.max()), 3) if diff.size else None
    checks.append(GoldenCheck("audio.content", "audio", not ranges and measured is not None, measured,
                              limits.audio_diff,
                        rule="<=", ranges=ranges,
                        message=_range_text("audio", ranges, " dB", limits.audio_diff) if ranges else ""))
    timelines.append(Timeline("audio.content", "mean band level difference per 100 ms (dB)", "dB",
                              _rounded(times), _rounded(diff), limits.audio_diff, ranges))

    change = heard.change
    if change is None:
        checks.append(GoldenCheck("audio.bands", "audio", True, None, limits.band_tol, skipped=True,
                            message="not run: no band is audible for 3 s in the golden"))
    else:
        segment = soundprint.SEGMENT_HOPS * soundprint.HOP_S
        off = change.segments
        band_ranges = [{"start": round(off[0] * segment, 3), "end": round((off[-1] + 1) * segment, 3),
                        "low_hz": round(change.low_hz), "high_hz": round(change.high_hz)}] if off else []
        passed = abs(change.change_db) <= limits.band_tol
        checks.append(GoldenCheck("audio.bands", "audio", passed, round(change.change_db, 3), limits.band_tol,
                            deviation=round(abs(change.change_db), 3), expected=0.0, rule="<=",
                            ranges=[] if passed else band_ranges,
                            message="" if passed else (
                                f"band {change.low_hz:.0f}-{change.high_hz:.0f} Hz is "
                                f"{abs(change.change_db):.2f} dB {'louder' if change.change_db > 0 else 'quieter'}"
                                + (f" over {band_ranges[0]['start']:.2f}-{band_ranges[0]['end']:.2f} s"
                                   if band_ranges else "") + f" (limit {limits.band_tol:g} dB)")))

    seconds, correlation, span = heard.seconds, heard.correlation, heard.span
    if correlation < MIN_MATCH:  # no offset explains the difference: it is another soundtrack, not a shift
        checks.append(GoldenCheck("timing.av_offset", "timing", False, None, limits.av_offset_ms, expected=0.0,
                                  rule="<=",
                            ranges=[{"start": 0.0, "end": span}],
                            message=f"the soundtrack matches the golden's at no offset within "
                                    f"+-{soundprint.SEARCH_S * 1000:.0f} ms (best match {correlation:.2f}, "
                                    f"a shift scores above {MIN_MATCH})"))
        return checks
    av_ms = round(float(seconds - video_offset) * 1000.0, 1) + 0.0  # a float, so JSON gets a boolean; + 0.0: never "-0"
    passed = abs(av_ms) <= limits.av_offset_ms
    where = "late" if av_ms > 0 else "early"
    checks.append(GoldenCheck("timing.av_offset", "timing", passed, av_ms, limits.av_offset_ms,
                        deviation=abs(av_ms), expected=0.0, rule="<=",
                        ranges=[] if passed else [{"start": 0.0, "end": span, "offset_ms": av_ms}],
                        message="" if passed else (
                            f"the soundtrack runs {abs(av_ms):.0f} ms {where} against the picture "
                            f"(audio {round(seconds * 1000):+d} ms, video {round(video_offset * 1000):+d} ms "
                            "against the golden; "
                            f"match {correlation:.3f}; limit {limits.av_offset_ms:g} ms)")))
    return checks


def debug_images(debug: Path, golden: Signatures, frames: FrameSignatures, worst: list[tuple[int, int]],
                 current_planes: dict[float, object]) -> dict[str, dict[str, Path]]:
    """For the worst frame of each failing range: the current frame, the golden thumbnail (enlarged) and a
    heat map of the block differences over the dimmed current frame. Keyed by the frame's time."""
    from mobius.golden.report import block_debug_images
    from mobius.measure import thumbnails

    written = {}
    for index, golden_index in worst:
        t = float(frames.times[index])
        plane = current_planes.get(t)
        if plane is None:
            continue
        block = {p: thumbnails.take(golden.frames.planes(), [golden_index])[p][0] for p in thumbnails.PLANES}
        mine = {p: frames.planes()[p][index] for p in thumbnails.PLANES}
        written[f"{t:.3f}"] = block_debug_images(debug, f"range_{t:.2f}s", plane, block, mine)
    return written
