"""sha256 manifests of a library folder, in `sha256sum` format, and verification against one.

`sha256sum -c MANIFEST` run inside the folder checks the same files. Only regular files are
listed: sha256sum has no notation for folders or symlinks (it would read through a link).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError, VerificationError
from mobius.executor.hashing import hash_paths
from mobius.log import get_logger
from mobius.media.hashcache import HashCache
from mobius.progress import NoProgress, Progress
from mobius.results import Report, failed, passed
from mobius.safety.checksums import read_checksum_file, write_checksum_file
from mobius.safety.hashing import hash_files, sha256_file
from mobius.safety.tree import Entry, file_names, files, undecodable

log = get_logger()


@dataclass
class ManifestResult:
    folder: Path
    manifest: Path
    files: int
    bytes: int
    sha256: str
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"folder": self.folder, "manifest": self.manifest, "files": self.files, "bytes": self.bytes,
                "manifest_sha256": self.sha256, "unreadable": self.unreadable}


@dataclass
class ManifestVerification:
    """A folder checked against a manifest: counts, and the paths missing, extra or changed."""

    folder: Path
    manifest: Path
    checked: int = 0
    hashed: int = 0
    trusted: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed or self.unreadable)

    def problems(self) -> list[str]:
        return ([f"missing: {p}" for p in self.missing] + [f"extra: {p}" for p in self.extra]
                + [f"changed: {p} (sha256 differs)" for p in self.changed]
                + [f"unreadable: {p}" for p in self.unreadable])

    def report(self) -> Report:
        """The same findings as a results.Report: one failed check per file named, or one passed check."""
        where = str(self.manifest)
        checks = [failed("media.verify", detail=line, source=where) for line in self.problems()]
        if not checks:
            checks.append(passed("media.verify", self.checked, unit="files", source=where,
                                 detail=f"every file in {self.folder} matches the manifest"))
        return Report(f"media verify of {self.folder}", checks)

    def raise_if_failed(self) -> ManifestVerification:
        """VerificationError (exit 2) counting and naming every difference, as `media verify` exits; else self."""
        if not self.ok:
            raise VerificationError(f"{self.folder} differs from {self.manifest}: {len(self.missing)} missing, "
                                    f"{len(self.extra)} extra, {len(self.changed)} changed, "
                                    f"{len(self.unreadable)} unreadable", details=self.problems())
        return self

    def to_dict(self) -> dict[str, object]:
        return {"folder": self.folder, "manifest": self.manifest, "checked": self.checked, "hashed": self.hashed,
                "trusted_cached": self.trusted, "missing": self.missing, "extra": self.extra,
                "changed": self.changed, "unreadable": self.unreadable, "verified": self.ok}


def require_folder(folder: Path, what: str) -> Path:
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise InputError(f"{what} {folder} is not a folder", hint="pass an existing folder")
    return folder


def _hash_entries(folder: Path, entries: list[Entry], *, workers: int | None, progress: Progress,
                  cache: HashCache | None) -> tuple[dict[str, str], list[str]]:
    """Digest of each entry, in parallel; names that could not be read are returned apart."""
    progress.start(f"hashing {folder.name}", sum(e.size for e in entries), unit="bytes")
    started = time.time_ns()
    digests: dict[str, str] = {}
    unreadable: list[str] = []
    base = str(folder)
    cut = len(base) + 1
    results = hash_files((f"{base}/{e.path}" for e in entries), workers=workers, on_bytes=progress.advance,
                         sizes=(e.size for e in entries))
    for path, result in results:
        name = path[cut:]
        if isinstance(result, OSError):
            unreadable.append(name)
            log.warning("media.hash.unreadable", path=path, error=result.strerror)
        else:
            digests[name] = result
    progress.finish()
    if cache is not None:
        cache.store(((f"{base}/{e.path}", e, digests[e.path]) for e in entries if e.path in digests),
                    hashed_ns=started)
    return digests, unreadable


def _hash_names(folder: Path, names: list[str], *, workers: int | None, progress: Progress,
                cache: HashCache | None, ws: Workspace | None = None,
                executor: str | None = None) -> tuple[dict[str, str], int, list[str]]:
    """(name -> digest, bytes hashed, unreadable names): on the executor (locally one process per core),
    the stat taken from the opened file (what the hash cache keeps), no object per file beyond its result."""
    progress.start(f"hashing {folder.name}", len(names), unit="files")
    started = time.time_ns()
    base = f"{folder}/"
    results = hash_paths(ws, [base + name for name in names], executor=executor, parts=workers,
                         on_part=progress.advance)
    progress.finish()
    digests: dict[str, str] = {}
    unreadable: list[str] = []
    total = 0
    for name, (digest, size, _mtime, _inode, error) in zip(names, results, strict=True):
        if digest is None:
            unreadable.append(name)
            log.warning("media.hash.unreadable", path=base + name, error=error)
        else:
            digests[name] = digest
            total += size
    if cache is not None:
        cache.store_stats(((base + name, size, mtime, inode, digest) for name, (digest, size, mtime, inode, _)
                           in zip(names, results, strict=True) if digest is not None), hashed_ns=started)
    return digests, total, unreadable


def build_manifest(folder: Path, out: Path, *, workers: int | None = None, progress: Progress | None = None,
                   cache: HashCache | None = None, ws: Workspace | None = None,
                   executor: str | None = None) -> ManifestResult:
    """Hash every regular file under `folder` and write `out` atomically, sorted by name.

    The hashing runs on `executor` ("local" or "dask"; default the workspace's MOBIUS_EXECUTOR when `ws`
    is given, else local): the manifest is the same bytes on either."""
    folder = require_folder(folder, "folder")
    names = file_names(folder)
    bad_names = undecodable(names)
    if bad_names:
        raise InputError(f"{len(bad_names)} file names in {folder} are not valid UTF-8", details=bad_names,
                         hint="rename them (e.g. with convmv) and run again")
    digests, total, unreadable = _hash_names(folder, names, workers=workers, progress=progress or NoProgress(),
                                             cache=cache, ws=ws, executor=executor)
    write_checksum_file(out, ((digests[name], name) for name in names if name in digests))
    result = ManifestResult(folder, out.resolve(), len(digests), total, sha256_file(out), unreadable)
    log.info("media.manifest.written", folder=str(folder), manifest=str(out), files=result.files,
             unreadable=len(unreadable))
    return result


def read_manifest(path: Path) -> dict[str, str]:
    """name -> digest; names written as ./x by `find | sha256sum` are accepted too."""
    entries: dict[str, str] = {}
    for digest, name in read_checksum_file(path):
        entries[name[2:] if name.startswith("./") else name] = digest
    return entries


def verify_against(folder: Path, manifest: Path, *, trust_cache: bool = False, workers: int | None = None,
                   progress: Progress | None = None, cache: HashCache | None = None, ws: Workspace | None = None,
                   executor: str | None = None) -> ManifestVerification:
    """Compare `folder` with `manifest`: missing, extra, changed and unreadable files.

    Every byte is re-read unless `trust_cache`, which reuses cached hashes of files whose size,
    mtime and inode are unchanged since they were hashed.
    """
    folder = require_folder(folder, "folder")
    expected = read_manifest(manifest)
    result = ManifestVerification(folder, manifest.resolve())
    if not (trust_cache and cache is not None):  # every byte re-read: no stat walk, one process per core
        names = file_names(folder)
        result.extra = [name for name in names if name not in expected]
        to_read = [name for name in names if name in expected]
        actual, _, result.unreadable = _hash_names(folder, to_read, workers=workers,
                                                   progress=progress or NoProgress(), cache=cache, ws=ws,
                                                   executor=executor)
        result.hashed = len(actual)
        seen = set(names)
    else:
        on_disk = sorted(files(folder), key=lambda e: e.path)
        to_hash: list[Entry] = []
        actual = {}
        for entry in on_disk:
            if entry.path not in expected:
                result.extra.append(entry.path)
                continue
            cached = cache.lookup(str(folder / entry.path), entry)
            if cached is not None:
                actual[entry.path] = cached
                result.trusted += 1
            else:
                to_hash.append(entry)
        digests, result.unreadable = _hash_entries(folder, to_hash, workers=workers,
                                                   progress=progress or NoProgress(), cache=cache)
        actual.update(digests)
        result.hashed = len(digests)
        seen = {e.path for e in on_disk}
    result.missing = sorted(name for name in expected if name not in seen)
    result.changed = sorted(name for name, digest in actual.items() if expected[name] != digest)
    result.checked = len(actual)
    log.info("media.verify.done", folder=str(folder), manifest=str(manifest), checked=result.checked,
             trusted=result.trusted, missing=len(result.missing), extra=len(result.extra),
             changed=len(result.changed), unreadable=len(result.unreadable))
    return result
