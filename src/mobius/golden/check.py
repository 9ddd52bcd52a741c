"""Holding a video to its golden baseline: one verdict per check, with the measured value and the limit.

Checks: `frame.<t>s` (mean luma SSIM >= ssim), `audio.integrated_loudness` (|delta| <= lufs_tol),
`audio.true_peak` (|delta| <= tp_tol), and `container.<field>` for each fact in container.json
(equal; duration within duration_tol, frame rate within fps_tol). A limit exactly met passes.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mobius.config import Workspace
from mobius.golden.baseline import Golden, Thresholds, debug_folder, frame_file, load_golden
from mobius.golden.verdicts import GoldenCheck, GoldenVerdict
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress

if TYPE_CHECKING:
    from mobius.golden.timeline import SoundMeasures
    from mobius.measure.alignment import CostRows


def _similarity(golden: Golden, t: float, current,
                reading: Future | None = None) -> tuple[object, float | None, object]:
    """(golden plane, mean SSIM, SSIM map) of the pinned frame at t; SSIM None when the sizes differ, the
    map None when the planes are identical. `reading`: the golden plane at t being read already."""
    from mobius.measure.ssim import ssim_and_map

    expected = golden.plane(t) if reading is None else reading.result()
    if expected.shape != current.shape:
        return expected, None, None
    return (expected, *ssim_and_map(expected, current))


def _frame_checks(golden: Golden, frames: dict, limits: Thresholds, debug: Path | None,
                  measured: dict[float, tuple] | None = None) -> list[GoldenCheck]:
    """The pinned frames' checks; `measured` holds `_similarity` of the frames already measured."""
    checks = []
    for t in golden.frames:
        name = f"frame.{t:g}s"
        current = frames[t]
        expected, score, similarity = (measured or {}).get(t) or _similarity(golden, t, current)
        files = {"golden": golden.frame_path(t)}
        if score is None:
            check = GoldenCheck(name, "frame", False, 0.0, limits.ssim, rule=">=", message=(
                f"frame is {current.shape[1]}x{current.shape[0]}, golden {expected.shape[1]}x{expected.shape[0]}"))
        else:
            passed = score >= limits.ssim
            check = GoldenCheck(name, "frame", passed, score, limits.ssim, rule=">=",
                          message="" if passed else f"SSIM {score:.4f} < {limits.ssim}")
        if not check.passed and debug is not None:
            from mobius.golden.report import write_debug_images

            files.update(write_debug_images(debug, frame_file(t), expected, current, similarity))
        check.files = files
        checks.append(check)
    return checks


def _audio_checks(golden: Golden, audio, sample_rate: int, limits: Thresholds, stats=None) -> list[GoldenCheck]:
    from mobius.measure.loudness import measure

    if audio is None and stats is None:
        return [GoldenCheck(f"audio.{n}", "audio", False, None, t, rule="<=", message="the video has no audio stream")
                for n, t in (("integrated_loudness", limits.lufs_tol), ("true_peak", limits.tp_tol))]
    stats = stats or measure(audio, sample_rate)
    checks = []
    for name, key, measured, tol, unit in (
        ("audio.integrated_loudness", "integrated_lufs", stats.integrated_lufs, limits.lufs_tol, "LU"),
        ("audio.true_peak", "true_peak_dbtp", stats.true_peak_dbtp, limits.tp_tol, "dB"),
    ):
        expected = float(golden.audio.get(key, float("nan")))
        deviation = round(abs(measured - expected), 6)
        passed = deviation <= tol
        checks.append(GoldenCheck(name, "audio", passed, measured, tol, expected, deviation, "<=",
                            message="" if passed else f"off by {deviation:.2f} {unit}, more than {tol} {unit}"))
    checks.append(GoldenCheck("audio.loudness_range", "audio", True, stats.loudness_range_lu, None,
                        golden.audio.get("loudness_range_lu"), message="informational, not a verdict"))
    return checks


def _container_checks(golden: Golden, info, limits: Thresholds) -> list[GoldenCheck]:
    current = info.to_dict()
    checks = []
    for name, expected in golden.container.items():
        measured = current.get(name)
        tolerance = {"duration": limits.duration_tol, "frame_rate": limits.fps_tol}.get(name)
        if tolerance is not None and isinstance(measured, int | float) and isinstance(expected, int | float):
            deviation = round(abs(float(measured) - float(expected)), 6)
            check = GoldenCheck(f"container.{name}", "container", deviation <= tolerance, measured, tolerance, expected,
                          deviation, "<=")
        else:
            check = GoldenCheck(f"container.{name}", "container", measured == expected, measured, expected, expected,
                          rule="==")
        if not check.passed:
            check.message = f"{measured} differs from golden {expected}"
        checks.append(check)
    return checks


def check_video(ws: Workspace, slug: str, video: Path, *, overrides: dict[str, float | None] | None = None,
                per_os: bool = False, debug: bool = True, progress: Progress | None = None) -> GoldenVerdict:
    """Compare `video` with the baseline of `slug`; never raises for a failed check (see .passed).

    A format-2 golden (with signatures.npz) is held to every frame and the soundtrack's content in one
    decode of the video; an older golden gets the pinned frames, loudness and container checks, and
    the timeline checks listed as skipped. Raises InputError (exit 1) for a missing video or baseline,
    or a golden frame time beyond the video's duration; EnvironmentProblem (exit 3) when PyAV is missing.
    """
    import time

    from mobius.golden.signatures import read_signatures
    from mobius.golden.timeline import WorstFrames, measure_sound, motion, skipped_checks
    from mobius.measure.alignment import CostRows
    from mobius.measure.decode import MediaSample, checked_facts, read_every_frame, read_media

    started = time.monotonic()
    progress = progress or NoProgress()
    golden = load_golden(ws, slug, per_os=per_os)
    signatures = read_signatures(golden.folder)
    limits = golden.thresholds.merged(overrides)
    progress.start(f"golden check {slug}", total=3, unit="steps")
    heard = None
    costs = sound = worst = golden_motion = None
    similarities: dict[float, tuple] = {}
    if signatures is not None:
        same = _same_streams(golden, signatures, Path(video))
        # while the main thread decodes the picture, two more measure the soundtrack (decode, loudness,
        # band levels), read the golden's pinned planes from the start and take each pinned frame's SSIM
        # as soon as the decode passes it: all spend their time in FFmpeg, numpy and zlib, which
        # release the GIL
        with ThreadPoolExecutor(max_workers=2) as pool:
            listening = None if "audio" in same else pool.submit(_listen, Path(video), signatures.audio, limits)
            pinned = {}
            # the golden's own soundtrack measured against itself, and the golden's motion (golden frames only),
            # in the workers: beside the decode, or beside the container's facts and the pinned planes
            if listening is None:
                sound = pool.submit(measure_sound, signatures.audio, signatures.audio, limits)
            golden_motion = pool.submit(motion, signatures.frames)
            if "video" in same:
                sample = MediaSample(container=checked_facts(Path(video), golden.frames),
                                     frames={t: golden.plane(t) for t in golden.frames})
                frames = signatures.frames
                # the golden's own pictures: each pinned frame's SSIM is `_similarity`'s answer for identical
                # planes (1.0, no map) without reading its PNG a second time
                similarities = {t: (plane, 1.0, None) for t, plane in sample.frames.items()}
            else:
                expected = {t: pool.submit(golden.plane, t) for t in golden.frames}
                # the alignment's costs between frames, while FFmpeg's threads decode the next ones, and
                # the worst frame of each failing run as it passes
                eight_bit = signatures.frames.y.dtype == "uint8"
                costs = CostRows(signatures.frames.y) if eight_bit else None
                worst = WorstFrames(signatures.frames, limits.frame_diff) if eight_bit else None
                sample, frames = read_every_frame(
                    Path(video), golden.frames, with_audio=False,
                    on_pinned=lambda t, plane: pinned.setdefault(
                        t, pool.submit(_similarity, golden, t, plane, expected.get(t))),
                    on_luma=costs.add if costs is not None else None,
                    on_frame=worst.see if worst is not None else None)
            heard = listening.result() if listening is not None else _heard_in_golden(golden, signatures)
            if sound is not None:
                heard.measures = sound.result()
            similarities.update({t: future.result() for t, future in pinned.items()})
        sample.audio, sample.sample_rate = heard.samples, heard.sample_rate
    else:
        sample, frames = read_media(Path(video), golden.frames), None
    progress.advance()
    debug_dir = debug_folder(ws, slug) if debug else None
    if debug_dir is not None and debug_dir.exists():
        shutil.rmtree(debug_dir)
    report = GoldenVerdict(slug, Path(video).resolve(), golden.folder, limits, planes=sample.frames)
    # the pinned frames' verdicts and heat maps (PNG encoding and fsync, which release the GIL) in a
    # thread of their own, beside the timeline checks; the worst frames of failing ranges decoded again
    # and drawn in a second one, beside the timing and sound checks
    with ThreadPoolExecutor(max_workers=2) as writer:
        pinned_checks = writer.submit(_frame_checks, golden, dict(sample.frames), limits, debug_dir, similarities)
        later = _audio_checks(golden, sample.audio, sample.sample_rate, limits,
                              stats=heard.stats if heard is not None else None)
        later += _container_checks(golden, sample.container, limits)
        if signatures is None:
            later += skipped_checks(slug, f"the golden is format {golden.meta.get('format', 1)}, "
                                          "without signatures of every frame and of the soundtrack")
        else:
            later += _timeline_checks(report, signatures, heard, frames, limits, Path(video), debug_dir, costs,
                                      writer, worst.planes() if worst is not None else {},
                                      golden_motion.result() if golden_motion is not None else None)
        report.checks += pinned_checks.result()
    progress.advance()
    report.checks += later
    progress.advance()
    progress.finish()
    report.seconds = time.monotonic() - started
    get_logger().info("golden.checked", game=slug, passed=report.passed, failed=[c.name for c in report.failures])
    return report


@dataclass
class Heard:
    """The soundtrack of the checked video: its samples, loudness and band signature (None: no audio), and
    its comparison with the golden's when it was measured ahead (`timeline.measure_sound`)."""

    samples: object | None
    sample_rate: int
    stats: object | None
    bands: object | None
    measures: SoundMeasures | None = None


def _same_streams(golden: Golden, signatures, video: Path) -> set[str]:
    """The streams ("video", "audio") of `video` whose coded content equals the golden's source video's.

    Such a stream decodes to exactly what the golden measured when it was generated, so its signatures,
    pinned planes and loudness are the golden's own, and are taken from it instead of decoded again.
    Goldens generated before the stream digests were kept (no "streams" in golden.json) always decode.
    """
    from mobius.measure.decode import stream_digests

    stored = golden.meta.get("streams")
    if not isinstance(stored, dict) or not stored:
        return set()
    current = stream_digests(video)
    same = {kind for kind in ("video", "audio") if stored.get(kind) and stored.get(kind) == current.get(kind)}
    if "audio" in same and (_stats_in_golden(golden) is None or not len(signatures.audio)):
        same.discard("audio")
    return same


def _stats_in_golden(golden: Golden):
    from dataclasses import fields

    from mobius.measure.loudness import AudioStats

    try:
        return AudioStats(**{f.name: golden.audio[f.name] for f in fields(AudioStats)})
    except (KeyError, TypeError):
        return None


def _heard_in_golden(golden: Golden, signatures) -> Heard:
    """The soundtrack as the golden measured it (a stream with the golden's own coded content)."""
    stats = _stats_in_golden(golden)
    return Heard(None, int(stats.sample_rate), stats, signatures.audio)


def _listen(video: Path, golden_db, limits: Thresholds) -> Heard:
    """The soundtrack decoded and measured, and compared with the golden's (`golden_db`), beside the picture."""
    from mobius.golden.timeline import measure_sound
    from mobius.measure.decode import read_audio
    from mobius.measure.loudness import measure
    from mobius.measure.soundprint import band_energies

    samples, rate = read_audio(video)
    if samples is None:
        return Heard(None, 0, None, None)
    # the band levels stay in this one thread with the loudness: in a third thread beside it they
    # lengthened the check of a re-encode (in-process 1.64 -> 1.78 s, 12 alternating runs at load 10-11;
    # the two compete with the picture's decode for the GIL and the 2 cores)
    bands = band_energies(samples, rate)
    return Heard(samples, rate, measure(samples, rate), bands, measure_sound(golden_db, bands, limits))


def _timeline_checks(report: GoldenVerdict, signatures, heard: Heard, frames, limits: Thresholds, video: Path,
                     debug_dir: Path | None, costs: CostRows | None, writer: ThreadPoolExecutor,
                     kept: dict[int, object], golden_motion) -> list[GoldenCheck]:
    from mobius.golden.timeline import compare

    drawn: list[Future] = []

    def draw(worst: list[tuple[int, int]]) -> None:
        drawn.append(writer.submit(_worst_frames, signatures, frames, worst, video, debug_dir, kept))

    found = compare(signatures, frames, heard.bands, limits, costs=costs, heard=heard.measures,
                    golden_motion=golden_motion, on_worst=draw)
    report.timelines = found.timelines
    content = next(c for c in found.checks if c.name == "frames.content")
    if drawn:
        planes, written = drawn[0].result()
        report.planes.update(planes)
        for r in content.ranges:
            for kind, path in written.get(f"{r['worst_at']:.3f}", {}).items():
                content.files[f"{r['worst_at']:.2f}s {kind}"] = path
    for r in content.ranges:
        r.pop("index", None)
    return found.checks


def _worst_frames(signatures, frames, worst: list[tuple[int, int]], video: Path, debug_dir: Path | None,
                  kept: dict[int, object]) -> tuple[dict[float, object], dict[str, dict[str, Path]]]:
    """The full frames at the worst of each failing range, and their debug pictures: (planes by time, files
    by time). Planes `kept` during the decode (`timeline.WorstFrames`, by frame index) are used; the others
    are decoded again (the decode keeps only thumbnails)."""
    from mobius.golden.timeline import debug_images
    from mobius.measure.decode import read_media

    index_at = {float(frames.times[i]): i for i, _ in worst}
    again = [t for t, i in index_at.items() if not _kept_frame(kept, i, frames.times)]
    decoded = read_media(video, again, with_audio=False).frames if again else {}
    planes = {t: decoded[t] if t in decoded else kept[index_at[t]] for t in sorted(index_at)}
    written = debug_images(debug_dir, signatures, frames, worst, planes) if debug_dir is not None else {}
    return planes, written


def _kept_frame(kept: dict[int, object], index: int, times) -> bool:
    """Whether frame `index`'s kept plane is the one a decode at its time shows (the last frame at that time)."""
    return index in kept and (index + 1 == len(times) or times[index + 1] > times[index])
