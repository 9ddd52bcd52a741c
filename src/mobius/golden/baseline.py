"""Golden baselines on disk: layout, reading, and generation that replaces a baseline atomically.

Layout (under the workspace's tests/golden):

    <slug>/golden.json          thresholds, frame times, generator version, created time, source video
    <slug>/container.json       codec, size, pix_fmt, frame rate, sample aspect, duration, audio facts
    <slug>/audio_stats.json     integrated loudness, loudness range, true peak
    <slug>/frames/frame_<t>s.png  the decoded luma plane (8-bit grayscale PNG) at t seconds
    <slug>/signatures.npz       format 2: thumbnails of every frame, band levels every 10 ms (golden.signatures)
    <slug>/<os>/...             the same, per operating system (--per-os / MOBIUS_GOLDEN_PER_OS=1)
    <slug>/debug/               heat maps and current frames of the last failed check

Generation writes a complete new baseline into a temp folder beside the old one, then swaps the
two by rename; until the swap the old baseline is untouched, and a crash between the two renames
is repaired by the next command (`recover`, through safety.swap).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

from mobius import __version__
from mobius.config import Workspace
from mobius.errors import InputError, MobiusError
from mobius.games import check_slug
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text, fsync_dir
from mobius.safety.leftovers import sweep
from mobius.safety.lock import FileLock
from mobius.safety.stamps import utc_iso
from mobius.safety.swap import recover_swap, swap_folder

FORMAT = 2  # 1: pinned frames, loudness, container; 2: + signatures.npz (every frame, the soundtrack)
DEFAULT_FRAMES = (5.0, 10.0, 20.0)
DATA_FOLDERS = ("frames", "debug")
OLD_MARK = ".old-"


@dataclass(frozen=True)
class Thresholds:
    """Pass limits. Precedence: command line > the game's golden.json > these defaults."""

    ssim: float = 0.995  # minimum mean luma SSIM per frame
    lufs_tol: float = 1.0  # max |integrated loudness - golden| in LU
    tp_tol: float = 1.0  # max |true peak - golden| in dB
    duration_tol: float = 0.1  # max |duration - golden| in seconds
    fps_tol: float = 0.01  # max |frame rate - golden|
    frame_diff: float = 12.0  # max difference of a frame's most-changed 1 % (8-bit levels), every frame
    timing_frames: float = 0.0  # max frames dropped, duplicated or frozen
    audio_diff: float = 10.0  # max mean band difference per 100 ms audio window (dB)
    band_tol: float = 1.5  # max median level change of any one band (dB)
    av_offset_ms: float = 50.0  # max |audio offset against the video| (ms)

    def merged(self, overrides: dict[str, float | None] | None) -> Thresholds:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: float(v) for k, v in (overrides or {}).items() if v is not None and k in values})
        return Thresholds(**values)

    @classmethod
    def from_dict(cls, data: dict | None) -> Thresholds:
        return cls().merged({k: v for k, v in (data or {}).items() if isinstance(v, int | float)})

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def os_name() -> str:
    """The per-OS folder name: linux, darwin, windows."""
    return platform.system().lower() or "unknown"


def golden_lock(ws: Workspace, *, timeout: float = 60.0) -> FileLock:
    """One writer of tests/golden at a time (generate, restore); readers do not take it."""
    return FileLock(ws.state / "golden.lock", timeout=timeout, what="a change to the goldens")


def recover_if_idle(ws: Workspace, slug: str) -> None:
    """Repair an interrupted swap, but only when no other process is changing the goldens."""
    try:
        with golden_lock(ws, timeout=0):
            recover(slug_folder(ws, slug))
            recover(slug_folder(ws, slug) / os_name())
    except MobiusError:
        pass


def per_os_enabled(ws: Workspace, flag: bool | None = None) -> bool:
    return bool(flag) or bool(ws.settings.golden_per_os)


def slug_folder(ws: Workspace, slug: str) -> Path:
    """Every golden path goes through here, so the slug rule is checked once for every command."""
    return ws.golden / check_slug(slug)


def baseline_folder(ws: Workspace, slug: str, *, per_os: bool) -> Path:
    folder = slug_folder(ws, slug)
    return folder / os_name() if per_os else folder


def debug_folder(ws: Workspace, slug: str) -> Path:
    return slug_folder(ws, slug) / "debug"


def frame_file(t: float) -> str:
    return f"frame_{t:g}s.png"


@dataclass
class Golden:
    """A baseline as read from disk."""

    folder: Path
    game: str
    frames: list[float]
    thresholds: Thresholds
    container: dict[str, object]
    audio: dict[str, object]
    meta: dict[str, object] = field(default_factory=dict)

    def frame_path(self, t: float) -> Path:
        return self.folder / "frames" / frame_file(t)

    def plane(self, t: float):
        """The stored luma plane at t as a uint8 array."""
        import numpy as np
        from PIL import Image

        with Image.open(self.frame_path(t)) as image:
            return np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"golden file missing: {path}",
                         hint="regenerate with `mobius golden generate` or `mobius golden update GAME`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"golden file {path} is not valid JSON: {exc}",
                         hint="restore it (`mobius golden restore`) or regenerate it") from None


def load_golden(ws: Workspace, slug: str, *, per_os: bool) -> Golden:
    """Read a game's baseline; InputError (exit 1) when there is none."""
    recover_if_idle(ws, slug)
    folder = baseline_folder(ws, slug, per_os=per_os)
    if not (folder / "golden.json").is_file():
        where = f" for {os_name()}" if per_os else ""
        raise InputError(f"no goldens for {slug}{where} in {folder}",
                         hint=f"approve a render first: `mobius golden approve {slug}`"
                              + (" --per-os" if per_os else ""))
    meta = _read_json(folder / "golden.json")
    try:
        frames = [float(t) for t in meta.get("frames", [])]
    except (TypeError, ValueError):
        raise InputError(f"{folder / 'golden.json'}: 'frames' must be a list of seconds",
                         hint="e.g. \"frames\": [5, 10, 20]") from None
    golden = Golden(folder=folder, game=slug, frames=frames, thresholds=Thresholds.from_dict(meta.get("thresholds")),
                    container=_read_json(folder / "container.json"), audio=_read_json(folder / "audio_stats.json"),
                    meta=meta)
    missing = [str(golden.frame_path(t)) for t in frames if not golden.frame_path(t).is_file()]
    if missing:
        raise InputError(f"golden frame missing: {missing[0]}", hint=f"regenerate: `mobius golden update {slug}`",
                         details=missing[1:])
    return golden


def games_with_goldens(ws: Workspace) -> list[str]:
    """Every game that has a shared or per-OS baseline, sorted."""
    if not ws.golden.is_dir():
        return []
    found = []
    for entry in sorted(ws.golden.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if (entry / "golden.json").is_file() or (entry / os_name() / "golden.json").is_file():
            found.append(entry.name)
    return found


def recover(folder: Path) -> None:
    """Repair an interrupted swap (the shared safety.swap recovery, which finishes it), then remove the
    previous copies a completed swap left; a swap without an intent record (older Mobius) is undone."""
    parent = folder.parent
    if not parent.is_dir():
        return
    recover_swap(folder)
    olds = sorted(parent.glob(f".{folder.name}{OLD_MARK}*"))
    if not folder.exists() and olds:
        os.replace(olds[-1], folder)
        fsync_dir(parent)
        olds = olds[:-1]
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    sweep([parent])  # staging folders of killed generates (named with their pid)
    for orphan in parent.glob(f"{TEMP_PREFIX}golden-{folder.name}-*"):  # pid-less names of older Mobius
        shutil.rmtree(orphan, ignore_errors=True)


def swap_in(new: Path, target: Path) -> None:
    """Replace folder `target` by folder `new` (complete, fsynced) through safety.swap (crash-recoverable),
    then drop the previous copy (goldens are archived before they are replaced)."""
    old = swap_folder(new, target, old=target.parent / f".{target.name}{OLD_MARK}{secrets.token_hex(4)}")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _keep_subfolders(old: Path, new: Path) -> None:
    """Carry the per-OS baselines of a shared baseline over to its replacement (hard links, no copy)."""
    if not old.is_dir():
        return
    for entry in old.iterdir():
        if entry.is_dir() and entry.name not in DATA_FOLDERS and not entry.name.startswith("."):
            shutil.copytree(entry, new / entry.name, copy_function=link_or_copy)


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_png(path: Path, plane) -> None:
    from PIL import Image

    with open(path, "wb") as handle:
        Image.fromarray(plane, mode="L").save(handle, format="PNG")
        handle.flush()
        os.fsync(handle.fileno())


def signature_description() -> dict[str, str]:
    """What golden.json says about signatures.npz (format 2), for a person opening the folder."""
    return {"file": "signatures.npz",
            "frames": "y 36x64, u and v 18x32 block means of every frame, uint8 (mobius.measure.thumbnails)",
            "audio": "24 band levels (50 Hz-11 kHz, log-spaced) every 10 ms, float16 dB (mobius.measure.soundprint)"}


@dataclass
class GenerateResult:
    game: str
    folder: Path
    video: Path
    frames: list[float]
    thresholds: Thresholds
    container: dict[str, object]
    audio: dict[str, object]
    per_os: bool

    def to_dict(self) -> dict[str, object]:
        return {"game": self.game, "folder": self.folder, "video": self.video, "frames": self.frames,
                "thresholds": self.thresholds.to_dict(), "container": self.container, "audio": self.audio,
                "per_os": self.per_os}


@records_call("golden.generate")
def generate(ws: Workspace, slug: str, video: Path, *, frames: list[float] | None = None, per_os: bool = False,
             thresholds: dict[str, float | None] | None = None, progress: Progress | None = None) -> GenerateResult:
    """Write a new baseline for `slug` from `video`, replacing the old one atomically.

    Frame times and thresholds default to the old baseline's (so adjusted thresholds survive an
    update), else to 5, 10, 20 s and the defaults.
    """
    progress = progress or NoProgress()
    log = get_logger()
    target = baseline_folder(ws, slug, per_os=per_os)
    with golden_lock(ws):
        recover(slug_folder(ws, slug))
        if per_os:
            recover(target)
        return _generate_locked(slug, target, Path(video), frames, per_os, thresholds, progress, log)


def _generate_locked(slug: str, target: Path, video: Path, frames, per_os: bool, thresholds, progress: Progress,
                     log) -> GenerateResult:
    from mobius.golden.signatures import FILE, compute
    from mobius.measure.decode import read_every_frame, stream_digests
    from mobius.measure.loudness import measure

    previous = {}
    if (target / "golden.json").is_file():
        with contextlib.suppress(InputError):
            previous = _read_json(target / "golden.json")
    times = [float(t) for t in (frames or previous.get("frames") or DEFAULT_FRAMES)]
    limits = Thresholds.from_dict(previous.get("thresholds")).merged(thresholds)
    progress.start(f"golden {slug}", total=len(times) + 2, unit="steps")
    video = Path(video).resolve()
    sample, every_frame = read_every_frame(video, times)
    progress.advance()
    if sample.audio is None:
        raise InputError(f"{video} has no audio stream", hint="render the preview with `mobius render`")
    stats = measure(sample.audio, sample.sample_rate)
    progress.advance()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{TEMP_PREFIX}{os.getpid()}-golden-{target.name}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        (staging / "frames").mkdir()
        for t in times:
            _write_png(staging / "frames" / frame_file(t), sample.frames[t])
            progress.advance()
        fsync_dir(staging / "frames")
        meta = {"format": FORMAT, "game": slug, "generator": f"mobius {__version__}",
                "created": utc_iso(), "frames": times,
                "thresholds": limits.to_dict(), "os": os_name() if per_os else None,
                "frame_format": "luma plane (Y of the decoded video), 8-bit grayscale PNG",
                "signatures": signature_description(),
                "source": {"video": str(video), "bytes": video.stat().st_size},
                "streams": stream_digests(video)}
        compute(sample, every_frame).write(staging / FILE)
        atomic_write_text(staging / "container.json", json.dumps(sample.container.to_dict(), indent=2) + "\n")
        atomic_write_text(staging / "audio_stats.json", json.dumps(stats.to_dict(), indent=2) + "\n")
        atomic_write_text(staging / "golden.json", json.dumps(meta, indent=2) + "\n")
        if not per_os:
            _keep_subfolders(target, staging)
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress.finish()
    log.info("golden.generated", game=slug, folder=str(target), frames=times, per_os=per_os)
    return GenerateResult(slug, target, video, times, limits, sample.container.to_dict(), stats.to_dict(), per_os)
