"""`copy`: snapshots into another repository (a folder or s3://), incremental and verified.

Packs are named by the sha256 of their bytes, so a pack the target already indexes (same name,
same size) is not sent again. Order at the target, as in a backup: a pack, read back whole and
its sha256 checked against its name; then its index file; the snapshot file last. A copy killed
at any point leaves the target's snapshots whole (at worst a pack without its index, which the
target's next backup or prune removes, or the next copy overwrites). After the copy, every
snapshot file copied is read back from the target and compared byte for byte (sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup.crypto import RepositoryKeys
from mobius.backup.index import INDEX_SUFFIX, RepositoryIndex, index_path
from mobius.backup.pack import PACK_SUFFIX, pack_path
from mobius.backup.repository import Repository
from mobius.backup.snapshot import SNAPSHOT_SUFFIX, SnapshotDamaged, read_records
from mobius.backup.store import RepositoryStore
from mobius.backup.transfer import PUT, PackTransfer, Transfers, store_of
from mobius.errors import InputError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress


@dataclass
class CopyResult:
    to: str
    snapshots: list[str] = field(default_factory=list)
    snapshots_copied: int = 0
    packs_needed: int = 0
    packs_copied: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to, "snapshots": self.snapshots, "snapshots_copied": self.snapshots_copied,
                "packs_needed": self.packs_needed, "packs_copied": self.packs_copied,
                "bytes_copied": self.bytes_copied, "seconds": round(self.seconds, 3), "verified": self.verified}


@dataclass(frozen=True)
class TargetListing:
    """What the target held when it was listed (snapshot, index and pack file names; pack sizes), taken under a
    lock no prune runs beside and still held: a backup's publish reuses its sync's listing (remote.py) instead
    of listing the bucket again before and after. Its snapshots were listed first, then its index, then its
    packs (each written before the next: so every snapshot listed has its index listed, every index its pack)."""

    snapshots: frozenset[str]
    index: frozenset[str]
    packs: dict[str, int]


def _pack_key(name: str) -> str:
    return f"packs/{name[:2]}/{name}{PACK_SUFFIX}"


def _digest(target: RepositoryStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in target.read(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def copy_snapshots(repo: Repository, target: RepositoryStore, snapshots: list[str] | None = None, *,
                   progress: Progress | None = None, transfers: Transfers | None = None,
                   listed: TargetListing | None = None) -> CopyResult:
    """Copy `snapshots` (default: all) and every pack they need into `target`; raise VerificationError when a
    read-back differs. Packs go up several at once through `transfers` (the executor; one by one without).
    `listed`: the target's listing under a lock the caller still holds (no prune since): then the target is
    not listed again; after the copy, a pack counts as there when that listing held it or this copy put it
    and read it back whole (sha256 = its name). Each snapshot copied is read back byte for byte either way."""
    progress = progress or NoProgress()
    started = time.monotonic()
    local = target.local_root()
    if local is not None and local.resolve() == repo.root.resolve():
        raise InputError("copy: the target is this repository", hint="copy to another folder or to s3://...")
    result = CopyResult(to=target.url)
    destination = Repository(local) if local is not None else None
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"), \
            (destination.lock(exclusive=False, what=f"a prune of {local}") if destination
             else contextlib.nullcontext()):
        if destination is not None:
            destination.clean_leftovers()
        kill_at("copy:start")
        ids = [repo.require(name) for name in snapshots] if snapshots else repo.snapshot_ids()
        result.snapshots = ids
        index = RepositoryIndex.load(repo.index, repo.keys)
        needed = _packs_needed(repo, index, ids)
        result.packs_needed = len(needed)
        have = listed.index if listed else target.names("index")
        have_sizes = listed.packs if listed else target.sizes("packs")  # one listing, not a request per pack
        progress.start("copy", total=sum(index.packs[p].size for p in needed), unit="bytes")
        url, options = store_of(target)
        todo = []
        for name in sorted(needed):
            size = index.packs[name].size
            if f"{name}{INDEX_SUFFIX}" in have and have_sizes.get(f"{name}{PACK_SUFFIX}") == size:
                progress.advance(size)
                continue
            todo.append(PackTransfer(PUT, url, options, _pack_key(name), str(pack_path(repo.packs, name)), name, size))
        # each pack put and read back whole (sha256 = its name) by a transfer task; its index only after that
        copied: set[str] = set()
        for name in (transfers or Transfers()).run(target, todo, reach=[repo.packs]):
            size = index.packs[name].size
            target.put_file(f"index/{name}{INDEX_SUFFIX}", index_path(repo.index, name))
            kill_at("copy:index-put")
            copied.add(name)
            result.packs_copied += 1
            result.bytes_copied += size
            progress.advance(size)
        progress.finish()
        for snapshot_id in ids:
            key = f"snapshots/{snapshot_id}{SNAPSHOT_SUFFIX}"
            if listed is not None and f"{snapshot_id}{SNAPSHOT_SUFFIX}" not in listed.snapshots:
                there = None  # not there at the listing, and only this run writes a snapshot of this id
            else:
                there = target.size(key)
            if there != repo.snapshot_file(snapshot_id).stat().st_size:  # absent, torn or replaced
                target.put_file(key, repo.snapshot_file(snapshot_id))
                result.snapshots_copied += 1
                kill_at("copy:snapshot-put")
        _verify(repo, target, index, ids, needed, listed, copied)
        result.verified = True
        kill_at("copy:done")
    result.seconds = time.monotonic() - started
    get_logger().info("backup.copy.done", **result.to_dict())
    return result


def _packs_needed(repo: Repository, index: RepositoryIndex, ids: list[str]) -> set[str]:
    needed: set[str] = set()
    for snapshot_id in ids:
        try:
            for pack, path in content_packs(index, repo.snapshot_file(snapshot_id), repo.keys):
                if pack is None:
                    raise VerificationError(f"copy: snapshot {snapshot_id} names content the repository lacks "
                                            f"({path})", hint="run `mobius backup verify`")
                needed.add(pack)
        except SnapshotDamaged as exc:
            raise VerificationError(f"copy: snapshot {snapshot_id} is unreadable: {exc}",
                                    hint="run `mobius backup verify`") from None
    return needed


def content_packs(index: RepositoryIndex, snapshot: Path, keys: RepositoryKeys) -> Iterator[tuple[str | None, str]]:
    """(pack, path) for each entry with content in the snapshot file: the pack the index puts its content in,
    or None when no index names it. The lines are read as records, no SnapshotEntry built (which cost ~10 us a
    line: 1 s of a publish or a download of 100,000 files); SnapshotDamaged as `read_entries` raises it."""
    for record in read_records(snapshot, keys):
        if not isinstance(record, dict):
            raise SnapshotDamaged(f"{snapshot.name}: an entry line is not an object")
        sha256 = record.get("sha256")
        if not sha256:
            continue
        try:
            pack = index.pack_of_digest(bytes.fromhex(sha256))
        except (ValueError, TypeError):
            pack = None
        yield pack, str(record.get("path"))


def _verify(repo: Repository, target: RepositoryStore, index: RepositoryIndex, ids: list[str],
            needed: set[str], listed: TargetListing | None = None, copied: set[str] = frozenset()) -> None:
    """Every snapshot reads back from the target byte for byte; every pack it needs is there, indexed, whole-sized
    (listed again; or with `listed`, in that listing or `copied`: put and read back by this copy)."""
    problems = []
    for snapshot_id in ids:
        key = f"snapshots/{snapshot_id}{SNAPSHOT_SUFFIX}"
        local = hashlib.sha256(Path(repo.snapshot_file(snapshot_id)).read_bytes()).hexdigest()
        if _digest(target, key)[0] != local:
            problems.append(f"snapshot {snapshot_id} differs at the target")
    if listed is None:
        indexed, sizes = target.names("index"), target.sizes("packs")
    else:
        indexed = listed.index | {f"{name}{INDEX_SUFFIX}" for name in copied}
        sizes = {**listed.packs, **{f"{name}{PACK_SUFFIX}": index.packs[name].size for name in copied}}
    for name in needed:
        if sizes.get(f"{name}{PACK_SUFFIX}") != index.packs[name].size or f"{name}{INDEX_SUFFIX}" not in indexed:
            problems.append(f"pack {name} is missing, incomplete or unindexed at the target")
    if problems:
        raise VerificationError(f"copy: {len(problems)} problem(s) at {target.url} after the copy",
                                hint="run the copy again", details=problems[:100])
