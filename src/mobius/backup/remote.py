"""A snapshot repository on s3:// (MOBIUS_BACKUP_DIR=s3://bucket/prefix): the same layout as a folder's.

Every command works on a local **cache** of the repository's small files (`index/`, `snapshots/`),
brought up to date from the bucket at its start (`sync`), in the workspace's `state/backup-cache/`:
- `create` writes its snapshot into the cache as into a folder (new packs checked from the device),
  then **publishes** it as `copy` does: each new pack is uploaded, read back and its sha256 checked
  against its name, then its index file, the snapshot file last. So the bucket never holds an index
  that names an incomplete pack, nor a snapshot that names an unindexed one; a kill at any point
  leaves at worst a pack without an index (removed by the next prune). Its new packs are then
  removed from the cache.
- `verify --read-data`, `restore`, `test-restore`, `export` download the packs they need into the
  cache (each checked: sha256 = its name), run the folder code, and remove them again.
- Packs go up and down several at once, through the project's executor (transfer.py).
- `prune` forgets snapshots and removes packs none of the remaining snapshots need (index object
  first, then the pack); a pack mostly unneeded is repacked as a folder's prune does: downloaded,
  its needed blobs copied (each checked) into new packs in the cache, each new pack uploaded, read
  back and indexed before the old one's index object, then the old pack, are deleted.

Locks: a folder's flock cannot reach other machines, so the bucket holds lock objects
(`locks/<id>-shared.json`, `-exclusive.json`). A command writes its own, then lists the others: a
shared lock gives way to an exclusive one and an exclusive one to any other (each removes its own and
retries until LOCK_WAIT), so a prune never runs beside a create, verify or restore, even when they
start at the same moment (both back off and retry; restic's rule). A lock of a dead process on this
host, or older than STALE_LOCK seconds, is ignored and removed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mobius.backup.copy import TargetListing, content_packs, copy_snapshots
from mobius.backup.crypto import PLAIN, RepositoryKeys
from mobius.backup.index import INDEX_SUFFIX, RepositoryIndex
from mobius.backup.pack import PACK_SUFFIX, pack_path
from mobius.backup.prune import PruneResult, RetentionPolicy, plan_packs, repack_packs
from mobius.backup.repository import Repository
from mobius.backup.snapshot import SNAPSHOT_SUFFIX, SnapshotDamaged, read_entries
from mobius.backup.store import ObjectStore
from mobius.backup.transfer import GET, PUT, PackTransfer, Transfers, store_of
from mobius.errors import InputError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.stamps import new_id, utc_iso

LOCKS = "locks"
LOCK_WAIT = 600.0
STALE_LOCK = 24 * 3600.0
CACHE_FOLDER = "backup-cache"
SYNC_FETCHES = 8  # index and snapshot files fetched at once into a cache (I/O bound: threads wait on the network)


@dataclass(frozen=True)
class CachedRepository(Repository):
    """The local cache of a remote repository: pack sizes come from the bucket's listing, not the disk.

    The sync lists the bucket's snapshots and index; its packs are listed on first need (`remote_sizes`), later
    still, so a command that only reads snapshots (`has_snapshot`, `backup list`, `latest`) sends no such request.
    """

    url: str = ""
    store: ObjectStore | None = field(default=None, compare=False, repr=False)
    remote_snapshots: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    remote_index: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def location(self) -> str:
        return self.url

    @functools.cached_property
    def remote_packs(self) -> dict[str, int]:
        """Every pack file in the bucket and its size: one listing, on first use."""
        return self.store.sizes("packs") if self.store is not None else {}

    @functools.cached_property
    def remote_sizes(self) -> dict[str, int]:
        """Pack name -> size in the bucket (from `remote_packs`; a prune's repack adds the packs it uploads)."""
        return {n.removesuffix(PACK_SUFFIX): s for n, s in self.remote_packs.items() if n.endswith(PACK_SUFFIX)}

    @property
    def listed(self) -> TargetListing:
        """The bucket as listed by this sync, for a publish under the same lock (copy.TargetListing)."""
        return TargetListing(self.remote_snapshots, self.remote_index, self.remote_packs)

    def pack_size(self, name: str) -> int | None:
        """A pack this run wrote or downloaded (in the cache), else the bucket's listing."""
        local = super().pack_size(name)
        return local if local is not None else self.remote_sizes.get(name)


def _pack_key(name: str) -> str:
    return f"packs/{name[:2]}/{name}{PACK_SUFFIX}"


class RemoteRepository:
    """The repository at an s3:// URL, worked on through a local cache folder."""

    def __init__(self, store: ObjectStore, cache_root: Path, keys: RepositoryKeys = PLAIN,
                 transfers: Transfers | None = None):
        self.store = store
        self.transfers = transfers or Transfers()  # packs up and down several at once (the executor)
        self.url = store.url
        self.cache_root = cache_root / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.keys = keys

    # -- the cache -------------------------------------------------------------------------------------
    def sync(self) -> CachedRepository:
        """The cache with every index and snapshot file the bucket holds (and none it lacks).

        Listed in the order a backup writes them, newest kind first: snapshots, then index, then (on first need,
        CachedRepository.remote_packs) packs; a backup publishing beside this one puts a pack before its index
        and an index before its snapshot, so each snapshot listed has its index listed and each index its pack."""
        cache = CachedRepository(self.cache_root, self.keys, url=self.url)
        self.cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        listed: dict[str, set[str]] = {}
        for folder, suffix in (("snapshots", SNAPSHOT_SUFFIX), ("index", INDEX_SUFFIX)):
            names = self.store.names(folder)
            listed[folder] = names
            remote = {n for n in names if n.endswith(suffix) and not n.startswith(TEMP_PREFIX)}
            local_dir = self.cache_root / folder
            local_dir.mkdir(mode=0o700, exist_ok=True)
            local = {n for n in os.listdir(local_dir) if n.endswith(suffix) and not n.startswith(".")}
            self._fetch_files(folder, sorted(remote - local), local_dir)
            with contextlib.suppress(InputError), cache.lock(exclusive=True, what="cache sync", timeout=0):
                for name in local - remote:  # pruned in the bucket (or a run killed before it published)
                    (local_dir / name).unlink(missing_ok=True)
        return CachedRepository(self.cache_root, self.keys, url=self.url, store=self.store,
                                remote_snapshots=frozenset(listed["snapshots"]),
                                remote_index=frozenset(listed["index"]))

    def _fetch_files(self, folder: str, names: list[str], local_dir: Path) -> None:
        """Small files (index, snapshots) into the cache, each atomically; several at once (a new cache of a
        repository with a thousand packs fetches a thousand index files: one request each)."""
        if len(names) <= 1:
            for name in names:
                self.store.get_file(f"{folder}/{name}", local_dir / name)
            return
        with ThreadPoolExecutor(min(SYNC_FETCHES, len(names)), thread_name_prefix="backup-sync") as pool:
            fetches = [pool.submit(self.store.get_file, f"{folder}/{name}", local_dir / name) for name in names]
            try:
                for fetch in fetches:
                    fetch.result()
            except BaseException:
                for fetch in fetches:  # the first failure stops the rest (each file is whole or absent)
                    fetch.cancel()
                raise

    def publish(self, cache: CachedRepository, snapshot_id: str, progress: Progress | None = None) -> None:
        """Upload a snapshot the cache holds, with the packs the bucket lacks (copy's order and checks). `cache`
        comes from a `sync` under a lock in the bucket still held: the bucket is not listed again (no prune ran
        since; a pack this run needs is in that listing or put and read back now), the snapshot read back."""
        try:
            copy_snapshots(cache, self.store, [snapshot_id], progress=progress, transfers=self.transfers,
                           listed=cache.listed)
        except BaseException:
            cache.snapshot_file(snapshot_id).unlink(missing_ok=True)  # never listed as if the bucket held it
            raise

    @contextlib.contextmanager
    def packs_fetched(self, cache: CachedRepository, snapshot_ids: list[str],
                      progress: Progress | None = None) -> Iterator[int]:
        """The packs these snapshots need, downloaded into the cache and checked (sha256 = name); removed after.
        Yields the number of bytes fetched."""
        progress = progress or NoProgress()
        index = RepositoryIndex.load(cache.index, cache.keys)
        needed: set[str] = set()
        for snapshot_id in snapshot_ids:
            with contextlib.suppress(OSError, SnapshotDamaged):  # verify reports a damaged snapshot
                for pack, _ in content_packs(index, cache.snapshot_file(snapshot_id), cache.keys):
                    if pack is not None:
                        needed.add(pack)
        fetched = 0
        try:
            # held shared while the packs are in use: another command's cleanup (alone only) leaves them
            with cache.lock(exclusive=False, what="a cleanup of the cache"):
                progress.start("download", total=sum(index.packs[n].size for n in needed), unit="bytes")
                url, options = store_of(self.store)
                todo = []
                for name in sorted(needed):
                    path = pack_path(cache.packs, name)
                    if cache.pack_size(name) is None:
                        continue  # missing in the bucket: verify and restore say so
                    if path.is_file():
                        fetched += path.stat().st_size
                        progress.advance(index.packs[name].size)
                    else:
                        todo.append(PackTransfer(GET, url, options, _pack_key(name), str(path), name,
                                                 cache.remote_sizes.get(name, index.packs[name].size)))
                cache.packs.mkdir(mode=0o700, parents=True, exist_ok=True)
                for name in self.transfers.run(self.store, todo, reach=[cache.packs]):  # each checked: sha256 = name
                    fetched += pack_path(cache.packs, name).stat().st_size
                    progress.advance(index.packs[name].size)
                progress.finish()
                yield fetched
        finally:
            self.drop_packs(cache)

    def _repack(self, cache: CachedRepository, index: RepositoryIndex, home: dict[str, str],
                repack: list[str]) -> list[str]:
        """The packs `repack` downloaded, their blobs still at home there copied into new packs in the cache (each
        sealed as a backup seals one: checked from the device, indexed), then each new pack uploaded and read back
        (sha256 = its name) before its index object is put. Only after all that does prune remove the old packs:
        a kill at any point leaves every blob indexed in a whole pack (at worst twice, or an unindexed new pack,
        which the next prune removes). Returns the new packs' names."""
        url, options = store_of(self.store)
        try:
            with cache.lock(exclusive=False, what="a cleanup of the cache"):
                fetch = [PackTransfer(GET, url, options, _pack_key(name), str(pack_path(cache.packs, name)), name,
                                      cache.remote_sizes[name]) for name in repack]
                cache.packs.mkdir(mode=0o700, parents=True, exist_ok=True)
                for _ in self.transfers.run(self.store, fetch, reach=[cache.packs]):
                    pass
                written = repack_packs(cache, index, home, repack, NoProgress()).written
                kill_at("prune:repack-written")
                upload = [PackTransfer(PUT, url, options, _pack_key(p.name), str(pack_path(cache.packs, p.name)),
                                       p.name, p.size) for p in written]
                sizes = {p.name: p.size for p in written}
                for name in self.transfers.run(self.store, upload, reach=[cache.packs]):
                    self.store.put_file(f"index/{name}{INDEX_SUFFIX}", cache.index / f"{name}{INDEX_SUFFIX}")
                    cache.remote_sizes[name] = sizes[name]
                kill_at("prune:repacked")
        finally:
            self.drop_packs(cache)
        return [p.name for p in written]

    def drop_packs(self, cache: CachedRepository) -> None:
        """The cache keeps no pack (they live in the bucket): removed when no other command uses the cache (its
        lock free for us alone); else the last one out, or the next command, removes them."""
        with contextlib.suppress(InputError), cache.lock(exclusive=True, what="cache cleanup", timeout=0):
            shutil.rmtree(cache.packs, ignore_errors=True)

    # -- locks -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, *, exclusive: bool, what: str, timeout: float = LOCK_WAIT) -> Iterator[None]:
        """A lock object in the bucket for the block (see the module's docstring)."""
        kind = "exclusive" if exclusive else "shared"
        key = f"{LOCKS}/{new_id()}-{kind}.json"
        body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "created": utc_iso(),
                           "created_s": time.time(), "exclusive": exclusive}).encode()
        deadline = time.monotonic() + timeout
        while True:
            self.store.put_bytes(key, body)
            blocking = self._blocking(key, exclusive)
            if not blocking:
                break
            self.store.delete(key)
            if time.monotonic() >= deadline:
                raise InputError(f"the repository {self.url} is locked by {blocking} ({what})",
                                 hint="wait for it to finish; a lock of a crashed run on another host expires "
                                      f"after {STALE_LOCK / 3600:g} h (or delete it from {self.url}/{LOCKS}/)")
            time.sleep(0.2 + random.random() * 0.5)  # two at once: not in lockstep
        try:
            yield
        finally:
            self.store.delete(key)

    def _blocking(self, mine: str, exclusive: bool) -> str | None:
        """Another live lock this one must give way to, described; None when there is none."""
        for name in sorted(self.store.names(LOCKS)):
            key = f"{LOCKS}/{name}"
            if key == mine:
                continue
            data = self.store.read_bytes(key)
            if data is None:
                continue
            try:
                other = json.loads(data)
            except ValueError:
                continue
            if self._stale(other):
                get_logger().warning("backup.remote.stale_lock", lock=key, host=other.get("host"),
                                     pid=other.get("pid"))
                self.store.delete(key)
                continue
            if exclusive or other.get("exclusive"):
                return f"{'an exclusive' if other.get('exclusive') else 'a'} lock of pid {other.get('pid')} " \
                       f"on {other.get('host')} since {other.get('created')}"
        return None

    @staticmethod
    def _stale(other: dict) -> bool:
        if time.time() - float(other.get("created_s", 0)) > STALE_LOCK:
            return True
        if other.get("host") == socket.gethostname() and isinstance(other.get("pid"), int):
            try:
                os.kill(other["pid"], 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    # -- prune -----------------------------------------------------------------------------------------
    def prune(self, policy: RetentionPolicy, protected: set[str], *, dry_run: bool = False) -> PruneResult:
        """Forget the snapshots `policy` does not keep (nor `protected`), then remove every pack no remaining
        snapshot needs: its index object first, then the pack (a kill between leaves an unindexed pack, which
        the next prune removes). Under the exclusive lock: no create, verify or restore runs meanwhile."""
        policy.check()
        started = time.monotonic()
        with self.lock(exclusive=not dry_run, what="prune"):  # a dry run only reads
            cache = self.sync()
            headers = list(reversed(cache.headers()))
            keep = policy.kept(headers) | {h.id for h in headers if h.id in protected}
            result = PruneResult(repository=Path(self.url), policy=policy.to_dict(), dry_run=dry_run,
                                 kept=[h.id for h in headers if h.id in keep],
                                 removed=[h.id for h in headers if h.id not in keep])
            if dry_run:
                return result
            for snapshot_id in result.removed:
                self.store.delete(f"snapshots/{snapshot_id}{SNAPSHOT_SUFFIX}")
                cache.snapshot_file(snapshot_id).unlink(missing_ok=True)
                kill_at("prune:snapshot-removed")
            referenced: set[str] = set()
            for snapshot_id in result.kept:
                try:
                    referenced.update(e.sha256 for e in read_entries(cache.snapshot_file(snapshot_id), cache.keys)
                                      if e.sha256)
                except (OSError, SnapshotDamaged) as exc:
                    raise VerificationError(f"prune: snapshot {snapshot_id} is unreadable ({exc}); nothing else "
                                            "was removed", hint="run `mobius backup verify`") from None
            index = RepositoryIndex.load(cache.index, cache.keys)
            if index.unreadable:
                raise VerificationError("prune: unreadable index files; no pack was removed",
                                        hint="run `mobius backup verify`", details=index.unreadable[:20])
            home, drop, repack = plan_packs(index, referenced)
            repack = [name for name in repack if name in cache.remote_sizes]  # a missing pack: verify says so
            written = self._repack(cache, index, home, repack) if repack else []
            result.packs_repacked, result.packs_written = len(repack), len(written)
            for name in sorted(drop + repack):
                if name in written:  # repacking gave the same bytes as a pack a killed prune wrote: its new home
                    continue
                self.store.delete(f"index/{name}{INDEX_SUFFIX}")
                (cache.index / f"{name}{INDEX_SUFFIX}").unlink(missing_ok=True)
                kill_at("prune:index-removed")
                self.store.delete(_pack_key(name))
                kill_at("prune:pack-removed")
                result.packs_removed += 1
                result.bytes_freed += index.packs[name].size
            result.bytes_freed -= sum(cache.pack_size(name) or 0 for name in written)
            for name in sorted(set(cache.remote_sizes) - set(index.packs) - set(written)):  # a killed run's unindexed
                self.store.delete(_pack_key(name))
                result.leftovers_removed += 1
        result.seconds = time.monotonic() - started
        get_logger().info("backup.prune.done", **result.to_dict())
        return result
