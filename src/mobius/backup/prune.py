"""`prune`: forget snapshots a retention policy does not keep, then remove content no kept snapshot needs.

Crash-safe at every point, by the order of its steps (each one durable before the next):
1. snapshot files the policy drops are deleted (each unlink is atomic; the rest stays whole);
2. the blobs the remaining snapshots reference are counted from their files on disk;
3. packs holding only unreferenced blobs lose their index file, then the pack; packs holding
   mostly unreferenced bytes are repacked: the blobs still needed are copied (each checked
   against its sha256) into new packs, which are fsynced, checked from the device and indexed
   before the old pack's index file, and then the old pack, are deleted;
4. leftovers: temp files of killed runs, packs no index names, index files whose pack is gone.
A kill -9 anywhere leaves every remaining snapshot with all its blobs indexed in present packs
(at worst some content twice, or an unindexed pack); the next prune (or backup) finishes the job.
Prune holds the repository lock exclusively: no backup is between reading the index and writing
its snapshot while blobs are being removed. Snapshots named in `retention-protected*.txt`
(one name a line; what a release or a running operation needs) are always kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.index import RepositoryIndex, index_path
from mobius.backup.pack import BlobReader, PackDamaged, pack_path
from mobius.backup.repository import PackStore, Repository
from mobius.backup.snapshot import SnapshotDamaged, SnapshotHeader, read_entries
from mobius.errors import InputError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import fsync_dir

REPACK_UNUSED = 0.2  # repack a pack when at least this share of its bytes is no longer needed


@dataclass(frozen=True)
class RetentionPolicy:
    """restic's rules: the `last` newest, and the newest snapshot of each of the last N hours/days/weeks/months."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def check(self) -> None:
        values = (self.last, self.hourly, self.daily, self.weekly, self.monthly)
        if any(v < 0 for v in values):
            raise InputError("--keep-* values cannot be negative", hint="e.g. --keep-last 5 --keep-daily 7")
        if not any(values):
            raise InputError("prune needs a policy: nothing to keep would delete every snapshot",
                             hint="e.g. --keep-last 5, --keep-daily 7")

    def kept(self, headers: list[SnapshotHeader]) -> set[str]:
        """Ids of `headers` (newest first) that the policy keeps."""
        keep = {h.id for h in headers[:self.last]}
        buckets = (("hourly", "%Y-%m-%dT%H"), ("daily", "%Y-%m-%d"), ("weekly", "%G-W%V"), ("monthly", "%Y-%m"))
        for name, pattern in buckets:
            count = getattr(self, name)
            seen: set[str] = set()
            for header in headers:
                if len(seen) >= count:
                    break
                bucket = _created(header).strftime(pattern)
                if bucket not in seen:
                    seen.add(bucket)
                    keep.add(header.id)
        return keep

    def to_dict(self) -> dict[str, int]:
        return {"last": self.last, "hourly": self.hourly, "daily": self.daily, "weekly": self.weekly,
                "monthly": self.monthly}


def _created(header: SnapshotHeader) -> dt.datetime:
    return dt.datetime.fromisoformat(header.created.replace("Z", "+00:00"))


@dataclass
class PruneResult:
    repository: Path
    policy: dict[str, int]
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    packs_removed: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_freed: int = 0
    leftovers_removed: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "policy": self.policy, "kept": self.kept, "removed": self.removed,
                "packs_removed": self.packs_removed, "packs_repacked": self.packs_repacked,
                "packs_written": self.packs_written, "bytes_freed": self.bytes_freed,
                "leftovers_removed": self.leftovers_removed, "seconds": round(self.seconds, 3),
                "dry_run": self.dry_run}


def prune_repository(repo: Repository, policy: RetentionPolicy, *, dry_run: bool = False,
                     progress: Progress | None = None) -> PruneResult:
    """Apply `policy`, then free what no remaining snapshot needs (see the module docstring for the order)."""
    policy.check()
    progress = progress or NoProgress()
    started = time.monotonic()
    result = PruneResult(repository=repo.root, policy=policy.to_dict(), dry_run=dry_run)
    # a dry run only reads: the shared lock (no pid written) keeps a prune or backup from changing what it reads
    with repo.lock(exclusive=not dry_run, what=f"a backup into {repo.root}"):
        headers = list(reversed(repo.headers()))
        protected = catalog.protected_names(repo.root) if repo.root.is_dir() else set()
        keep = policy.kept(headers) | {h.id for h in headers if h.id in protected}
        result.kept = [h.id for h in headers if h.id in keep]
        result.removed = [h.id for h in headers if h.id not in keep]
        if dry_run:
            result.seconds = time.monotonic() - started
            return result
        result.leftovers_removed = len(repo.clean_leftovers())
        kill_at("prune:planned")
        for snapshot_id in result.removed:
            repo.snapshot_file(snapshot_id).unlink(missing_ok=True)
            fsync_dir(repo.snapshots)
            kill_at("prune:snapshot-removed")
        _free_content(repo, result, progress)
    result.seconds = time.monotonic() - started
    get_logger().info("backup.prune.done", **{k: v for k, v in result.to_dict().items() if k != "kept"})
    return result


def _referenced(repo: Repository) -> set[str]:
    """Every blob a snapshot file on disk names (an unreadable snapshot stops the prune: its blobs are unknown)."""
    needed: set[str] = set()
    for snapshot_id in repo.snapshot_ids():
        try:
            needed.update(e.sha256 for e in read_entries(repo.snapshot_file(snapshot_id), repo.keys) if e.sha256)
        except (OSError, SnapshotDamaged) as exc:
            raise VerificationError(f"prune: snapshot {snapshot_id} is unreadable ({exc}); nothing was removed "
                                    "from the packs", hint="run `mobius backup verify`; remove the damaged "
                                    "snapshot file by hand if it cannot be repaired") from None
    return needed


def _free_content(repo: Repository, result: PruneResult, progress: Progress) -> None:
    index = RepositoryIndex.load(repo.index, repo.keys)
    if index.unreadable:
        raise VerificationError(f"prune: {len(index.unreadable)} index file(s) unreadable; nothing removed",
                                hint="run `mobius backup verify`", details=index.unreadable)
    needed = _referenced(repo)
    for orphan in repo.orphan_packs(index):
        result.bytes_freed += orphan.stat().st_size
        orphan.unlink()
        result.leftovers_removed += 1
    kill_at("prune:orphans")
    for name in list(index.packs):
        if not pack_path(repo.packs, name).is_file():
            index_path(repo.index, name).unlink()  # its blobs are gone: let the next backup store them again
            del index.packs[name]
            result.leftovers_removed += 1
    home, drop, repack = plan_packs(index, needed)
    if repack:
        store = repack_packs(repo, index, home, repack, progress)
        result.packs_written = len(store.written)
        result.packs_repacked = len(repack)
        kill_at("prune:repacked")
    written = {p.name for p in store.written} if repack else set()
    for name in drop + repack:
        if name in written:  # repacking gave the same bytes as a pack a killed prune wrote: it is the new home
            continue
        result.bytes_freed += index.packs[name].size
        index_path(repo.index, name).unlink(missing_ok=True)
        fsync_dir(repo.index)
        kill_at("prune:index-removed")
        path = pack_path(repo.packs, name)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        kill_at("prune:pack-removed")
    result.packs_removed = len(drop) + len(repack)
    if repack:
        result.bytes_freed -= sum(p.size for p in store.written)


def plan_packs(index: RepositoryIndex, needed: set[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(each needed blob's home pack, packs to drop: nothing needed in them, packs to repack: at least
    REPACK_UNUSED of their bytes unneeded)."""
    home = _homes(index, needed)
    drop, repack = [], []
    for name, pack in index.packs.items():
        used = {sha for sha in pack.blobs if home.get(sha) == name}  # a blob held twice is kept in one place
        unused_bytes = sum(w.size for sha, w in pack.blobs.items() if sha not in used)
        total = sum(w.size for w in pack.blobs.values()) or 1
        if not used:
            drop.append(name)
        elif unused_bytes / total >= REPACK_UNUSED:
            repack.append(name)
    return home, drop, repack


def repack_packs(repo: Repository, index: RepositoryIndex, home: dict[str, str], repack: list[str],
                 progress: Progress) -> PackStore:
    """The blobs of `repack` still at home there, copied (each checked against its sha256) into new packs,
    each sealed as a backup seals one: fsynced, checked from the device, indexed in `repo`."""
    store = PackStore(repo, RepositoryIndex())
    reader = BlobReader(repo.packs, repo.keys)
    progress.start("repack", total=len(repack), unit="packs")
    try:
        for name in repack:
            for sha, where in sorted(index.packs[name].blobs.items(), key=lambda kv: (kv[1].offset, kv[1].skip)):
                if home.get(sha) == name and sha not in store:
                    _copy_blob(store, reader, sha, where)
            progress.advance(1)
        store.finish()
    except BaseException:
        store.abort()
        raise
    finally:
        reader.close()
        progress.finish()
    return store


def _homes(index: RepositoryIndex, needed: set[str]) -> dict[str, str]:
    """For each needed blob, the pack it is kept in: of the packs holding it (two backups at once, or a
    killed repack, may have stored it twice), the one with the largest share of needed blobs, so that a
    complete new pack wins over the mostly unneeded pack it replaced."""
    share = {name: sum(sha in needed for sha in pack.blobs) / max(1, len(pack.blobs))
             for name, pack in index.packs.items()}
    home: dict[str, str] = {}
    for name in sorted(index.packs, key=lambda n: (-share[n], n)):
        for sha in index.packs[name].blobs:
            if sha in needed:
                home.setdefault(sha, name)
    return home


def _copy_blob(store: PackStore, reader: BlobReader, sha: str, where) -> None:  # noqa: ANN001 - a BlobLocation
    try:
        if where.size < (4 << 20):
            store.add(sha, b"".join(reader.read_checked(sha, where)))
        else:
            store.add_stream(sha, where.size, reader.read_checked(sha, where))
    except PackDamaged as exc:
        raise VerificationError(f"prune: a blob still needed cannot be read back: {exc}; nothing was removed",
                                hint="run `mobius backup verify --read-data` to see which files it affects") from None
