"""Restoring a snapshot's library into object storage (s3://bucket/prefix): objects streamed from the packs.

The bucket ends holding exactly the snapshot's files, one object per file (`<prefix>/<path below
library/>`), and nothing else below the prefix. An object already there with the snapshot's content is
left alone: its ETag equals the one the snapshot recorded, or (a plain md5 ETag) the md5 of the blob
read from the pack. Every other file is streamed from its pack (checked against its sha256 as it is
read) and its upload checked: the md5 the bucket reports, or the object read back and hashed.

S3 has no atomic swap of many objects, so the order is what makes it safe: every new or changed object
is written first, the objects the snapshot lacks are deleted after, and then the prefix is listed again
and every key, size and ETag compared. A crash after some writes leaves the prefix holding the old
objects plus some already restored ones (each object whole: an upload is committed only when complete,
and an aborted one is discarded); a crash during the deletions leaves every snapshot file in place plus
some extra objects. Either way, running the restore again finishes it: restored objects are recognised
as unchanged and only what is still missing or extra is written or deleted.

A bucket has no folders or links: empty folders are not restored, and a snapshot holding symbolic links
is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from mobius.backup.index import RepositoryIndex
from mobius.backup.manifest import FILE, LIBRARY_ROOT, SYMLINK
from mobius.backup.member_rules import name_problem, normalize
from mobius.backup.object_library import READ_CHUNK, ObjectLibrary
from mobius.backup.pack import BlobReader, PackDamaged
from mobius.backup.repository import Repository
from mobius.backup.snapshot import SnapshotDamaged, SnapshotEntry, read_entries
from mobius.backup.tree import MAX_REPORTED
from mobius.errors import InputError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress

SMALL_OBJECT = 8 << 20  # read whole (checked) and put in one request; larger ones stream as a multipart upload
PLAIN_ETAG = re.compile(r"^[0-9a-f]{32}$")  # a single-part upload's ETag: the md5 of the object
WHERE_HINT = ("check that location (MOBIUS_LIBRARY_DIR, or the restore's --to), MOBIUS_S3_ENDPOINT_URL and "
              "the AWS credentials")  # a listing fails for the live library and for a restore's target alike


@dataclass
class ObjectRestore:
    """What a restore into object storage did; `to` and `rollback` as a folder restore names them."""

    url: str
    snapshot: str = ""
    files: int = 0
    bytes: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    seconds: float = 0.0
    rollback: None = None  # a bucket keeps no copy aside: the restore point the restore came from is the copy
    previous: str | None = None  # the snapshot of the target's content taken before the restore, if one was
    notes: list[str] = field(default_factory=list)

    @property
    def to(self) -> str:
        return self.url

    def to_dict(self) -> dict[str, object]:
        return {"to": self.url, "snapshot": self.snapshot, "files": self.files, "bytes": self.bytes,
                "written": self.written, "unchanged": self.unchanged, "deleted": self.deleted,
                "previous": self.previous, "seconds": round(self.seconds, 3), "notes": self.notes}


def _etag(info: dict) -> str:
    return str(info.get("ETag", "")).strip('"')


@dataclass
class ObjectRestorePlan:
    """What a restore would do below `url`: files to write (new or different), left alone, objects to delete."""

    url: str
    snapshot: str
    wanted: dict[str, SnapshotEntry]
    present: dict[str, tuple[int, str]]
    write: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.write or self.delete)

    def to_dict(self) -> dict[str, object]:
        return {"to": self.url, "snapshot": self.snapshot, "files": len(self.wanted),
                "bytes": sum(e.size for e in self.wanted.values()), "objects_before": len(self.present),
                "write": self.write, "unchanged": len(self.unchanged), "delete": self.delete,
                "overwrite": [rel for rel in self.write if rel in self.present]}


def plan_snapshot_objects(repo: Repository, snapshot: str, library: ObjectLibrary) -> ObjectRestorePlan:
    """What `restore_snapshot_objects` would write and delete below `library.url` now; nothing is changed."""
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        snapshot_id = repo.require(snapshot)
        reader = BlobReader(repo.packs, repo.keys)
        try:
            return _plan(snapshot_id, _wanted(repo, snapshot_id), library, reader,
                         RepositoryIndex.load(repo.index, repo.keys))
        finally:
            reader.close()


def _plan(snapshot_id: str, wanted: dict[str, SnapshotEntry], library: ObjectLibrary, reader: BlobReader,
          index: RepositoryIndex) -> ObjectRestorePlan:
    plan = ObjectRestorePlan(library.url, snapshot_id, wanted, _listing(library))
    for rel, entry in wanted.items():
        have = plan.present.get(rel)
        same = have is not None and have[0] == entry.size and _same_content(reader, index, entry, have[1])
        (plan.unchanged if same else plan.write).append(rel)
    plan.delete = sorted(rel for rel in plan.present if rel not in wanted)
    return plan


def restore_snapshot_objects(repo: Repository, snapshot: str, library: ObjectLibrary, *,
                             progress: Progress | None = None) -> ObjectRestore:
    """The snapshot's library as the objects below `library.url`: written first, extras deleted after, checked
    by a listing at the end (see the module docstring for what a crash in between leaves)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    fs, base = library.fs, library.base
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        snapshot_id = repo.require(snapshot)
        wanted = _wanted(repo, snapshot_id)
        result = ObjectRestore(library.url, snapshot_id, files=len(wanted), bytes=sum(e.size for e in wanted.values()))
        index = RepositoryIndex.load(repo.index, repo.keys)
        reader = BlobReader(repo.packs, repo.keys)
        try:
            plan = _plan(snapshot_id, wanted, library, reader, index)
            expected = {rel: plan.present[rel][1] for rel in plan.unchanged}
            progress.advance(sum(wanted[rel].size for rel in plan.unchanged))
            for rel in plan.write:
                expected[rel] = _upload(fs, f"{base}/{rel}", reader, index, wanted[rel])
                kill_at("object-restore:written")
                progress.advance(wanted[rel].size)
        finally:
            reader.close()
        result.written, result.unchanged = len(plan.write), len(plan.unchanged)
        if plan.delete:
            fs.rm([f"{base}/{rel}" for rel in plan.delete])
            result.deleted = len(plan.delete)
        _check_listing(library, wanted, expected)
    result.seconds = time.monotonic() - started
    result.notes.append(f"from snapshot {snapshot_id}")
    get_logger().info("backup.snapshot.restored", snapshot=snapshot_id, to=library.url, files=result.files,
                      written=result.written, deleted=result.deleted)
    return result


def _wanted(repo: Repository, snapshot_id: str) -> dict[str, SnapshotEntry]:
    """The snapshot's library files by path below the library; refused whole before anything is written."""
    wanted: dict[str, SnapshotEntry] = {}
    refused: list[str] = []
    prefix = LIBRARY_ROOT + "/"
    try:
        for entry in read_entries(repo.snapshot_file(snapshot_id), repo.keys):
            if not entry.path.startswith(prefix):
                continue
            problem = name_problem(entry.path) or (entry.path != normalize(entry.path) and "not a normal name")
            if problem or entry.type == SYMLINK:
                refused.append(f"{entry.path}: {problem or 'a symbolic link (a bucket holds no links)'}")
            elif entry.type == FILE:
                wanted[entry.path[len(prefix):]] = entry
    except SnapshotDamaged as exc:
        raise VerificationError(f"snapshot {snapshot_id} is unreadable: {exc}",
                                hint="run `mobius backup verify`; restore another snapshot") from None
    if refused:
        raise InputError(f"snapshot {snapshot_id} cannot be restored into object storage: {len(refused)} entries "
                         "cannot be objects", hint="restore it into a folder with `mobius backup restore --to DIR`",
                         details=refused[:MAX_REPORTED])
    return wanted


def _listing(library: ObjectLibrary) -> dict[str, tuple[int, str]]:
    """Every object below the prefix: path below it -> (size, ETag), listed now (not from fsspec's cache)."""
    library.fs.invalidate_cache(library.base)
    bucket = library.base.split("/", 1)[0]
    try:
        try:
            found = library.fs.find(library.base, detail=True, withdirs=False)
        except FileNotFoundError:
            found = {}
        if not found and not library.fs.exists(bucket):  # an empty prefix is a library; a missing bucket is not
            raise InputError(f"cannot list {library.url}: the bucket {bucket} does not exist",
                             hint=WHERE_HINT)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore/aiohttp: no endpoint, no credentials, no bucket
        raise InputError(f"cannot list {library.url}: {exc}",
                         hint=WHERE_HINT) from None
    out = {}
    for key, info in found.items():
        rel = key[len(library.base):].lstrip("/")
        if rel and info.get("type") != "directory" and not key.endswith("/"):
            out[rel] = (int(info["size"]), _etag(info))
    return out


def _blob(reader: BlobReader, index: RepositoryIndex, entry: SnapshotEntry) -> Iterator[bytes]:
    where = index.get(entry.sha256 or "")
    if where is None:
        raise VerificationError(f"restore failed: {entry.path}: its content {entry.sha256} is in no pack",
                                hint="run `mobius backup verify --read-data`; restore another snapshot")
    try:
        yield from reader.read_checked(entry.sha256 or "", where)
    except PackDamaged as exc:
        raise VerificationError(f"restore failed: {entry.path}: {exc}",
                                hint="run `mobius backup verify --read-data`; restore another snapshot") from None


def _same_content(reader: BlobReader, index: RepositoryIndex, entry: SnapshotEntry, etag: str) -> bool:
    """The object (of the entry's size) already holds the entry's content: the ETag the snapshot recorded, or
    a plain-md5 ETag equal to the md5 of the blob (read from the local pack, cheaper than an upload)."""
    if entry.etag is not None and entry.etag.strip('"') == etag:
        return True
    if not PLAIN_ETAG.match(etag):
        return False
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in _blob(reader, index, entry):
        md5.update(chunk)
    return md5.hexdigest() == etag


def _upload(fs, key: str, reader: BlobReader, index: RepositoryIndex, entry: SnapshotEntry) -> str:  # noqa: ANN001
    """Write the entry's blob as object `key`, committed only whole and checked; returns its ETag."""
    md5 = hashlib.md5(usedforsecurity=False)
    if entry.size < SMALL_OBJECT:
        data = b"".join(_blob(reader, index, entry))  # checked against its sha256 before anything is sent
        md5.update(data)
        fs.pipe_file(key, data)
    else:
        handle = fs.open(key, "wb", block_size=max(READ_CHUNK, 5 << 20))
        try:
            for chunk in _blob(reader, index, entry):
                md5.update(chunk)
                handle.write(chunk)
        except BaseException:
            handle.discard()  # an unfinished multipart upload is aborted: no partial object appears
            raise
        handle.close()
    fs.invalidate_cache(key)
    etag = _etag(fs.info(key))
    if PLAIN_ETAG.match(etag):
        same = etag == md5.hexdigest()
    else:  # a multipart ETag is not the md5 of the content: read the object back
        sha = hashlib.sha256()
        with fs.open(key, "rb", block_size=READ_CHUNK) as back:
            while chunk := back.read(READ_CHUNK):
                sha.update(chunk)
        same = sha.hexdigest() == entry.sha256
    if not same:
        raise VerificationError(f"restore failed: {key} does not read back as {entry.path} of the snapshot",
                                hint="check the bucket, then run the restore again")
    return etag


def _check_listing(library: ObjectLibrary, wanted: dict[str, SnapshotEntry], expected: dict[str, str]) -> None:
    """The prefix lists exactly the snapshot's files, each with its size and the ETag checked when written."""
    now = _listing(library)
    problems = [f"{rel}: missing" for rel in wanted if rel not in now]
    problems += [f"{rel}: not in the snapshot" for rel in now if rel not in wanted]
    problems += [f"{rel}: {now[rel][0]} bytes, ETag {now[rel][1]} (expected {e.size} bytes, ETag {expected[rel]})"
                 for rel, e in wanted.items() if rel in now and now[rel] != (e.size, expected[rel])]
    if problems:
        raise VerificationError(f"restore into {library.url}: {len(problems)} objects differ from the snapshot "
                                "after the restore", hint="something else writes to the bucket; stop it and run "
                                "the restore again", details=sorted(problems)[:MAX_REPORTED])


def object_count(library: ObjectLibrary) -> int:
    """How many objects are below the prefix now (0: an empty prefix, or none yet)."""
    return len(_listing(library))


def delete_objects(library: ObjectLibrary) -> int:
    """Delete every object below the prefix (the undo of a restore into an empty one); returns how many."""
    keys = [f"{library.base}/{rel}" for rel in _listing(library)]
    if keys:
        library.fs.rm(keys)
    return len(keys)


def object_tree_digest(library: ObjectLibrary) -> dict[str, object]:
    """Objects, bytes and a digest of every key and size below the prefix (no content read): what
    envs.state.tree_digest is for a folder."""
    digest = hashlib.sha256()
    size = 0
    listing = _listing(library)
    for rel in sorted(listing):
        digest.update(f"{rel}\0{listing[rel][0]}\n".encode("utf-8", "surrogateescape"))
        size += listing[rel][0]
    return {"files": len(listing), "bytes": size, "digest": digest.hexdigest()}


__all__ = ["ObjectRestore", "ObjectRestorePlan", "delete_objects", "object_count", "object_tree_digest",
           "plan_snapshot_objects", "restore_snapshot_objects"]
