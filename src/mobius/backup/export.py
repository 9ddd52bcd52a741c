"""A snapshot as one self-contained archive: today's `.tar.zst` with its manifest and `.sha256` sidecar.

`export_snapshot` writes exactly what `backup create` wrote before the repository existed
(MANIFEST.jsonl first, the members, MANIFEST.sha256 last), with the same writer and the same
check (every member against the manifest, every byte re-read from the device) before the file
gets its final name. Each blob is checked against its sha256 as it is read out of its pack.

Restore and test-restore of a snapshot go through such an export in a scratch folder beside the
repository and then through the archive restore unchanged: the same tar-slip-proof extraction,
the same checks, the same swap with recovery. That costs a second copy of the snapshot's bytes
while it runs (the scratch folder is removed after, or by the next command if we are killed).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.archive import _ArchiveFile, _TarStream
from mobius.backup.compression import ZSTD
from mobius.backup.index import RepositoryIndex
from mobius.backup.manifest import FILE, MANIFEST_NAME, SUMS_NAME, ManifestEntry, header_line
from mobius.backup.pack import BlobReader, PackDamaged
from mobius.backup.repository import Repository
from mobius.backup.snapshot import SnapshotDamaged, read_entries, read_header
from mobius.backup.verify import record_members_checked
from mobius.backup.write_check import streamed
from mobius.errors import InputError, VerificationError
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import TEMP_PREFIX, fsync_dir
from mobius.safety.checksums import format_line
from mobius.safety.diskspace import require_free_space
from mobius.safety.hashing import CHUNK
from mobius.safety.leftovers import sweep


@dataclass
class ExportResult:
    """An exported archive: path, its sha256 (also in the sidecar), what it holds."""

    snapshot: str
    path: Path
    sha256: str
    files: int
    bytes: int
    archive_bytes: int
    seconds: float
    sidecar: Path

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "path": self.path, "sha256": self.sha256, "files": self.files,
                "bytes": self.bytes, "archive_bytes": self.archive_bytes, "seconds": round(self.seconds, 3),
                "sidecar": self.sidecar, "verified": True}


def export_snapshot(repo: Repository, snapshot: str, out: Path, *, progress: Progress | None = None) -> ExportResult:
    """Write snapshot `snapshot` as the single-file archive `out` (+ `.sha256`, + log), checked before it is named."""
    progress = progress or NoProgress()
    started = time.monotonic()
    snapshot_id = repo.require(snapshot)
    out = Path(out).expanduser().absolute()
    if not out.name.endswith(".tar.zst"):
        raise InputError(f"{out.name}: an export is a .tar.zst file", hint="name it e.g. mobius_snapshot.tar.zst")
    if out.exists():
        raise InputError(f"{out} exists", hint="choose a new file name; an export never overwrites")
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep([out.parent])  # a killed export's temp archive and scratch folder (their process is gone)
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        path = repo.snapshot_file(snapshot_id)
        try:
            header = read_header(path, repo.keys)
        except SnapshotDamaged as exc:
            raise VerificationError(f"export: snapshot {snapshot_id} is unreadable: {exc}",
                                    hint="run `mobius backup verify`") from None
        require_free_space(out.parent, header.bytes + header.entries * 1536, what=f"exporting {snapshot_id}")
        index = RepositoryIndex.load(repo.index, repo.keys)
        archive = _ArchiveFile(out, ZSTD, streamed=streamed(header.files, header.bytes))
        try:
            with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=out.parent) as scratch:
                sha256 = _write(archive, repo, index, path, header, Path(scratch), progress)
            report = archive.members_check.report(archive.path, sha256, progress)
            catalog.write_sidecar(out, sha256)
            catalog.start_log(out, {"event": "backup.created", "snapshot": snapshot_id, "source": header.source,
                                    "archive": str(out), "sha256": sha256, "files": header.files,
                                    "bytes": header.bytes, "archive_bytes": archive.size})
            record_members_checked(out, report)
            os.replace(archive.path, out)
            fsync_dir(out.parent)
        except BaseException:
            archive.abort()
            with contextlib.suppress(OSError):
                if not out.exists():
                    catalog.remove_backup_files(out)
            raise
    return ExportResult(snapshot=snapshot_id, path=out, sha256=sha256, files=header.files, bytes=header.bytes,
                        archive_bytes=archive.size, seconds=time.monotonic() - started,
                        sidecar=catalog.sidecar_path(out))


def _write(archive: _ArchiveFile, repo: Repository, index: RepositoryIndex, path: Path, header,  # noqa: ANN001
           scratch: Path, progress: Progress) -> str:
    tar = _TarStream(archive)
    listing = scratch / "manifest.jsonl"
    with open(listing, "w", encoding="utf-8") as handle:
        handle.write(header_line(created=header.created, source=header.source, entries=header.entries,
                                 total_bytes=header.bytes, extras=header.extras))
        for entry in read_entries(path, repo.keys):
            handle.write(entry.manifest_entry().to_line())
    size = listing.stat().st_size
    with open(listing, "rb") as handle:
        tar.add_stream(ManifestEntry(MANIFEST_NAME, FILE, size, 0o644, time.time_ns()), handle, size)
    reader = BlobReader(repo.packs, repo.keys)
    sums_path = scratch / "sums.sha256"
    progress.start("export", total=header.bytes, unit="bytes")
    try:
        with open(sums_path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as sums:
            for entry in read_entries(path, repo.keys):
                manifest = entry.manifest_entry()
                if entry.type != FILE:
                    tar.add(manifest)
                    continue
                tar.add(manifest, entry.size)
                for chunk in _blob(reader, index, entry.sha256, entry.path):
                    tar.data(chunk)
                    progress.advance(len(chunk))
                tar.pad()
                sums.write(format_line(entry.sha256, entry.path))
    finally:
        reader.close()
        progress.finish()
    size = sums_path.stat().st_size
    with open(sums_path, "rb") as handle:
        tar.add_stream(ManifestEntry(SUMS_NAME, FILE, size, 0o644, time.time_ns()), handle, size)
    tar.close()
    return archive.close()


def _blob(reader: BlobReader, index: RepositoryIndex, sha256: str | None, name: str) -> Iterator[bytes]:
    where = index.get(sha256 or "")
    if where is None:
        raise VerificationError(f"{name}: blob {sha256} is not in the repository",
                                hint="run `mobius backup verify --read-data`; this snapshot cannot be restored whole")
    try:
        for chunk in reader.read_checked(sha256, where):
            for start in range(0, len(chunk), CHUNK):
                yield chunk[start:start + CHUNK]
    except PackDamaged as exc:
        raise VerificationError(f"{name}: {exc}", hint="run `mobius backup verify --read-data` to see every "
                                "damaged file; restore an older snapshot") from None


@contextlib.contextmanager
def exported(repo: Repository, snapshot: str, progress: Progress | None = None) -> Iterator[Path]:
    """The snapshot as a checked archive in a scratch folder beside the repository, removed afterwards."""
    snapshot_id = repo.require(snapshot)
    repo.clean_leftovers()
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=repo.root) as scratch:
        result = export_snapshot(repo, snapshot_id, Path(scratch) / f"mobius_snapshot_{snapshot_id}.tar.zst",
                                 progress=progress)
        yield result.path
