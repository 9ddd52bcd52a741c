"""`golden upgrade`: give goldens made before format 2 their signatures, without changing what they pin.

A damaged signatures.npz is rebuilt the same way.

The signatures are computed from the video the golden was made from (golden.json `source.video`),
and only when that video is provably the same one: its size is the recorded size, every pinned frame
decodes byte-identical to the stored PNG, and its loudness and container facts equal the stored ones.
Otherwise the golden is left as it is and the result says why (re-approve it instead). The upgraded
baseline is written into a temp copy (hard links) and swapped in, like `generate`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError
from mobius.golden.baseline import (
    DATA_FOLDERS,
    FORMAT,
    games_with_goldens,
    golden_lock,
    link_or_copy,
    load_golden,
    os_name,
    recover,
    signature_description,
    slug_folder,
    swap_in,
)
from mobius.golden.signatures import FILE, compute, read_signatures
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text, fsync_dir
from mobius.safety.stamps import utc_iso

LOUDNESS_MATCH = 0.001  # LU/dB: the source re-measured must give the stored numbers


@dataclass
class UpgradeResult:
    game: str
    folder: Path
    status: str  # upgraded | current | refused
    reason: str = ""
    source: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"game": self.game, "folder": self.folder, "status": self.status, "reason": self.reason,
                "source": self.source}


@records_call("golden.upgrade")
def upgrade(ws: Workspace, games: list[str] | None = None, *, progress: Progress | None = None
            ) -> list[UpgradeResult]:
    """Upgrade each game's shared baseline (and the per-OS baselines inside it); never raises for a golden
    that cannot be upgraded (see .status / .reason), only for a game without goldens (InputError)."""
    progress = progress or NoProgress()
    chosen = games or games_with_goldens(ws)
    if not chosen:
        raise InputError(f"no goldens in {ws.golden}", hint="approve renders first: `mobius golden approve`")
    results = []
    progress.start("golden upgrade", total=len(chosen), unit="games")
    with golden_lock(ws):
        for game in chosen:
            folder = slug_folder(ws, game)
            recover(folder)
            results += _upgrade_game(ws, game, folder)
            progress.advance()
    progress.finish()
    get_logger().info("golden.upgraded", games={r.game: r.status for r in results})
    return results


def _baselines(folder: Path) -> list[Path]:
    """The shared baseline (when there is one) and every per-OS baseline inside it, relative to `folder`."""
    found = [Path(".")] if (folder / "golden.json").is_file() else []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.is_dir() and entry.name not in DATA_FOLDERS and (entry / "golden.json").is_file():
            found.append(Path(entry.name))
    return found


def _upgrade_game(ws: Workspace, game: str, folder: Path) -> list[UpgradeResult]:
    baselines = _baselines(folder)
    if not baselines:
        raise InputError(f"no goldens for {game} in {folder}",
                         hint=f"approve a render first: `mobius golden approve {game}`")
    plans: list[tuple[Path, object, UpgradeResult]] = []
    for relative in baselines:
        per_os = relative != Path(".")
        where = folder / relative
        label = game if not per_os else f"{game} ({relative})"
        if _intact_signatures(where):
            plans.append((relative, None, UpgradeResult(label, where, "current", "already has signatures")))
            continue
        if per_os and relative.name != os_name():
            plans.append((relative, None, UpgradeResult(label, where, "refused",
                                                        f"a {relative.name} baseline: upgrade it on {relative.name}")))
            continue
        try:
            signatures, source = _signatures_from_source(ws, game, where, per_os)
        except InputError as exc:
            plans.append((relative, None, UpgradeResult(label, where, "refused", str(exc))))
            continue
        plans.append((relative, signatures, UpgradeResult(label, where, "upgraded", source=source)))
    if any(signatures is not None for _, signatures, _ in plans):
        _write(folder, [(relative, signatures) for relative, signatures, _ in plans if signatures is not None])
    return [result for _, _, result in plans]


def _intact_signatures(where: Path) -> bool:
    """True when signatures.npz is there and readable; a damaged one is rebuilt like a missing one."""
    try:
        return read_signatures(where) is not None
    except InputError:
        return False


def _signatures_from_source(ws: Workspace, game: str, where: Path, per_os: bool):
    """The signatures of the golden's own source video, or InputError saying why it cannot be trusted."""
    from mobius.measure.decode import read_every_frame
    from mobius.measure.loudness import measure

    meta = json.loads((where / "golden.json").read_text(encoding="utf-8"))
    import numpy as np

    golden = load_golden(ws, game, per_os=per_os)
    source = (meta.get("source") or {}).get("video")
    fix = f"re-approve it: `mobius golden update {game}`"
    if not source:
        raise InputError(f"golden.json names no source video; {fix}")
    video = Path(source)
    if not video.is_file():
        raise InputError(f"its source video {video} is gone; {fix}")
    recorded = (meta.get("source") or {}).get("bytes")
    if recorded is not None and video.stat().st_size != recorded:
        raise InputError(f"its source video {video} changed since approval ({video.stat().st_size} bytes, "
                         f"{recorded} recorded); {fix}")
    sample, frames = read_every_frame(video, golden.frames)
    for t in golden.frames:
        if not np.array_equal(golden.plane(t), sample.frames[t]):
            raise InputError(f"its source video {video} no longer shows the pinned frame at {t:g} s; {fix}")
    if sample.audio is not None and golden.audio:
        stats = measure(sample.audio, sample.sample_rate).to_dict()
        for key in ("integrated_lufs", "true_peak_dbtp"):
            if abs(float(stats[key]) - float(golden.audio.get(key, float("nan")))) > LOUDNESS_MATCH:
                raise InputError(f"its source video {video} measures {key} {stats[key]}, the golden "
                                 f"{golden.audio.get(key)}; {fix}")
    if sample.container.to_dict() != golden.container:
        raise InputError(f"its source video {video} has other container facts than container.json; {fix}")
    return compute(sample, frames), str(video)


def _write(folder: Path, upgrades: list[tuple[Path, object]]) -> None:
    """A hard-linked copy of `folder` with the signatures added and golden.json updated, swapped in."""
    staging = folder.parent / f"{TEMP_PREFIX}{os.getpid()}-golden-{folder.name}-{secrets.token_hex(4)}"
    try:
        shutil.copytree(folder, staging, copy_function=link_or_copy, ignore=shutil.ignore_patterns("debug"))
        for relative, signatures in upgrades:
            target = staging / relative
            signatures.write(target / FILE)
            meta = json.loads((target / "golden.json").read_text(encoding="utf-8"))
            meta.update({"format": FORMAT, "signatures": signature_description(),
                         "upgraded": {"from_format": meta.get("format", 1), "at": utc_iso()}})
            atomic_write_text(target / "golden.json", json.dumps(meta, indent=2) + "\n")
        fsync_dir(staging)
        swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
