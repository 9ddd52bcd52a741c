"""The repository index: which pack holds each blob, one small JSON file per pack.

`index/<pack sha256>.json` is written (atomically) only after its pack was fsynced under its
final name and checked, so an index file always names a complete, checked pack. Removal goes
the other way: the index file first, then the pack, so a crash between the two leaves a pack
nobody references (removed by the next prune), never an index entry without its pack.
A blob may be in two packs (two backups running at once both stored it); either serves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from mobius.backup.crypto import PLAIN, RepositoryKeys
from mobius.backup.pack import BlobLocation, PackInfo
from mobius.safety.atomic import atomic_write_bytes

INDEX_FORMAT = "mobius-pack-index"
INDEX_SUFFIX = ".json"


def index_path(folder: Path, pack: str) -> Path:
    return folder / f"{pack}{INDEX_SUFFIX}"


def write_index(folder: Path, pack: PackInfo, keys: RepositoryKeys = PLAIN) -> Path:
    """The pack's index file, durably (temp, fsync, rename, fsync the folder)."""
    rows = [where.as_row(sha) for sha, where in sorted(pack.blobs.items(), key=lambda kv: kv[1].offset)]
    text = json.dumps({"format": INDEX_FORMAT, "version": 1, "pack": pack.name, "size": pack.size,
                       "raw_bytes": pack.raw_bytes, "blobs": rows}, separators=(",", ":")) + "\n"
    path = index_path(folder, pack.name)
    folder.mkdir(mode=0o700, exist_ok=True)
    atomic_write_bytes(path, keys.encrypt_bytes(text.encode()), file_mode=0o600)
    return path


def read_index(path: Path, keys: RepositoryKeys = PLAIN) -> PackInfo:
    """One index file; ValueError when it is not one."""
    record = json.loads(keys.read(path))
    if not isinstance(record, dict) or record.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path.name} is not a pack index")
    name = str(record["pack"])
    blobs = {str(sha): BlobLocation(name, int(offset), int(length), int(skip), int(size))
             for sha, offset, length, skip, size in record["blobs"]}
    return PackInfo(name=name, size=int(record["size"]), blobs=blobs, raw_bytes=int(record.get("raw_bytes", 0)))


def index_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if entry.name.endswith(INDEX_SUFFIX) and not entry.name.startswith("."):
            yield Path(entry.path)


class RepositoryIndex:
    """Every blob the repository holds, by sha256 (loaded from the index files at start)."""

    def __init__(self) -> None:
        self.blobs: dict[str, BlobLocation] = {}
        self.packs: dict[str, PackInfo] = {}
        self.unreadable: list[str] = []

    @classmethod
    def load(cls, folder: Path, keys: RepositoryKeys = PLAIN) -> RepositoryIndex:
        index = cls()
        for path in index_files(folder):
            try:
                index.add(read_index(path, keys))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                index.unreadable.append(f"{path.name}: {exc}")
        return index

    def add(self, pack: PackInfo) -> None:
        self.packs[pack.name] = pack
        for sha, where in pack.blobs.items():
            self.blobs.setdefault(sha, where)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def get(self, sha256: str) -> BlobLocation | None:
        return self.blobs.get(sha256)
