"""A library in object storage (s3://bucket/prefix) as the source of a snapshot: objects streamed, never staged.

The listing is what the walk of a folder gives (backup/tree.py): `library/<key below the prefix>` for
each object, the folders the keys imply (mode 0755, mtime of their newest object), then the extras.
An object whose size, LastModified and ETag equal what the parent snapshot recorded is not read.
A small object is read whole into memory; a large one is hashed as it streams, and streamed again
into a pack only when the repository lacks its content (nothing is written to local disk). An
object that changes while it is read (another ETag) stops the backup, as a changing file does.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mobius.backup.manifest import DIR, FILE, LIBRARY_ROOT, ManifestEntry
from mobius.backup.member_rules import name_problem, normalize
from mobius.backup.tree import MAX_REPORTED, Listing, check_extra_name
from mobius.errors import InputError, VerificationError

READ_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object to read: its key (bucket/prefix/...) and the ETag the listing saw."""

    key: str
    etag: str


class ObjectLibrary:
    """`url` (s3://bucket/prefix) through an fsspec filesystem `fs`."""

    def __init__(self, url: str, fs):  # noqa: ANN001 - an fsspec AbstractFileSystem
        self.url = url.rstrip("/")
        self.fs = fs
        self.base = self.url.split("://", 1)[1]
        self.refs: dict[str, ObjectRef] = {}

    def walk(self, listing: Listing, extra_files: dict[str, Path]) -> Listing:
        """Write the listing (folders implied by the keys, files, then extras) to `listing.path`."""
        try:
            found = self.fs.find(self.base, detail=True, withdirs=False)
        except FileNotFoundError:
            found = {}
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp: no endpoint, no credentials, no bucket
            raise InputError(f"cannot list {self.url}: {exc}",
                             hint="check MOBIUS_LIBRARY_DIR, MOBIUS_S3_ENDPOINT_URL and the AWS credentials") from None
        files: list[tuple[str, int, int, str, str]] = []
        unsafe: list[str] = []
        folders: dict[str, int] = {}
        for key, info in found.items():
            rel = key[len(self.base):].lstrip("/")
            if not rel or info.get("type") == "directory" or key.endswith("/"):
                continue
            if name_problem(rel) or normalize(rel) != rel:
                unsafe.append(key)
                continue
            mtime_ns = _mtime_ns(info)
            files.append((rel, int(info["size"]), mtime_ns, str(info.get("ETag", "")), key))
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                folders[folder] = max(folders.get(folder, 0), mtime_ns)
        if unsafe:
            raise InputError(f"{len(unsafe)} object key(s) in {self.url} cannot be restored as file names "
                             "('..', '.', empty parts)", hint="rename them, then run again",
                             details=unsafe[:MAX_REPORTED])
        entries: list[tuple[str, str, int, int]] = [(f, DIR, 0, m) for f, m in folders.items()]
        entries += [(rel, FILE, size, mtime_ns) for rel, size, mtime_ns, _, _ in files]
        refs = {rel: ObjectRef(key, etag) for rel, _, _, etag, key in files}
        newest = max((m for *_, m in entries), default=0)
        with open(listing.path, "w", encoding="utf-8") as out:
            listing.add(ManifestEntry(LIBRARY_ROOT, DIR, 0, 0o755, newest), out)
            for rel, kind, size, mtime_ns in sorted(entries, key=lambda e: e[0].split("/")):
                name = f"{LIBRARY_ROOT}/{rel}"
                listing.add(ManifestEntry(name, kind, size, 0o755 if kind == DIR else 0o644, mtime_ns), out)
                if kind == FILE:
                    self.refs[name] = refs[rel]
            for name, local in extra_files.items():
                check_extra_name(name)
                st = os.stat(local)
                if not stat.S_ISREG(st.st_mode):
                    raise InputError(f"{local} is not a regular file", hint=f"only files can be added as {name}")
                listing.add(ManifestEntry(name, FILE, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns), out,
                            st.st_ino, st.st_ctime_ns)
                listing.extras.append(name)
        return listing

    def read(self, ref: ObjectRef, size: int) -> bytes:
        data = self.fs.cat_file(ref.key)
        if len(data) != size:
            raise _changed(self.url, ref)
        return data

    def chunks(self, ref: ObjectRef, size: int) -> Iterator[bytes]:
        copied = 0
        with self.fs.open(ref.key, "rb", block_size=READ_CHUNK) as handle:
            while chunk := handle.read(READ_CHUNK):
                copied += len(chunk)
                yield chunk
        if copied != size:
            raise _changed(self.url, ref)

    def sha256(self, ref: ObjectRef, size: int) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(ref, size):
            digest.update(chunk)
        return digest.hexdigest()

    def check_unchanged(self, ref: ObjectRef) -> None:
        """The object still has the ETag the listing saw (else it changed while it was being read)."""
        if str(self.fs.info(ref.key).get("ETag", "")) != ref.etag:
            raise _changed(self.url, ref)


def _mtime_ns(info: dict) -> int:
    moment = info.get("LastModified") or info.get("mtime")
    if moment is None:
        return 0
    if hasattr(moment, "timestamp"):
        return int(moment.timestamp() * 1_000_000_000)
    return int(float(moment) * 1_000_000_000)


def _changed(url: str, ref: ObjectRef) -> VerificationError:
    return VerificationError(f"{ref.key} changed while it was being backed up (from {url})",
                             hint="stop whatever writes to the bucket, then run the backup again")
