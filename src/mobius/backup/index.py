"""The repository index: which pack holds each blob, one small JSON file per pack.

`index/<pack sha256>.json` is written (atomically) only after its pack was fsynced under its
final name and checked, so an index file always names a complete, checked pack. Removal goes
the other way: the index file first, then the pack, so a crash between the two leaves a pack
nobody references (removed by the next prune), never an index entry without its pack.
A blob may be in two packs (two backups running at once both stored it); either serves.

In memory the index holds no object per blob: a pack's blobs are one bytes string of digests and
one array of numbers (`PackBlobs`), and the lookup is one dict from a blob's 32-byte digest to a
packed int (which pack, which row). At 100,000 blobs this took 35 MB and 0.7 s to load as one
`BlobLocation` and one hex string per blob; compact, about a third of that (benchmarks/backup.py).
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path

from mobius.backup.crypto import PLAIN, RepositoryKeys
from mobius.backup.pack import BlobLocation, PackInfo
from mobius.safety.atomic import atomic_write_bytes

INDEX_FORMAT = "mobius-pack-index"
INDEX_SUFFIX = ".json"
DIGEST = 32  # bytes of a sha256
FIELDS = 4  # offset, length, skip, size per blob
ROW_BITS = 32  # a lookup value is pack number << ROW_BITS | row
ROW_MASK = (1 << ROW_BITS) - 1


def index_path(folder: Path, pack: str) -> Path:
    return folder / f"{pack}{INDEX_SUFFIX}"


class PackBlobs(Mapping[str, BlobLocation]):
    """The blobs of one pack by hex sha256, stored compactly: `digests` (32 bytes per blob, in row order) and
    `rows` (offset, length, skip, size per blob). Reads as the dict of `BlobLocation` it replaces."""

    __slots__ = ("digests", "pack", "rows")

    def __init__(self, pack: str, digests: bytes, rows: array):
        if len(digests) != DIGEST * (len(rows) // FIELDS) or len(rows) % FIELDS:
            raise ValueError(f"pack {pack}: {len(digests)} digest bytes for {len(rows)} numbers")
        self.pack = pack
        self.digests = digests
        self.rows = rows

    @classmethod
    def from_rows(cls, pack: str, rows: Iterator[tuple[str, int, int, int, int]] | list) -> PackBlobs:
        """From (sha256 hex, offset, length, skip, size) rows; ValueError for a digest that is not one."""
        digests = bytearray()
        numbers = array("Q")
        for sha, offset, length, skip, size in rows:
            digest = bytes.fromhex(sha)
            if len(digest) != DIGEST:
                raise ValueError(f"pack {pack}: {sha!r} is not a sha256")
            digests += digest
            numbers.extend((offset, length, skip, size))
        return cls(pack, bytes(digests), numbers)

    @classmethod
    def of(cls, pack: str, blobs: Mapping[str, BlobLocation]) -> PackBlobs:
        if isinstance(blobs, PackBlobs):
            return blobs
        return cls.from_rows(pack, sorted(((sha, w.offset, w.length, w.skip, w.size) for sha, w in blobs.items()),
                                          key=lambda row: (row[1], row[3])))

    def __len__(self) -> int:
        return len(self.digests) // DIGEST

    def digest(self, row: int) -> bytes:
        return self.digests[row * DIGEST:(row + 1) * DIGEST]

    def location(self, row: int) -> BlobLocation:
        at = row * FIELDS
        return BlobLocation(self.pack, *self.rows[at:at + FIELDS])

    def _row(self, sha256: str) -> int | None:
        try:
            digest = bytes.fromhex(sha256)
        except (ValueError, TypeError):
            return None
        if len(digest) != DIGEST:
            return None
        at = self.digests.find(digest)
        while at >= 0 and at % DIGEST:  # a match across two digests: look on
            at = self.digests.find(digest, at + 1)
        return None if at < 0 else at // DIGEST

    def __getitem__(self, sha256: str) -> BlobLocation:
        row = self._row(sha256)
        if row is None:
            raise KeyError(sha256)
        return self.location(row)

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and self._row(sha256) is not None

    def __iter__(self) -> Iterator[str]:
        digests = self.digests
        for at in range(0, len(digests), DIGEST):
            yield digests[at:at + DIGEST].hex()

    def items(self) -> Iterator[tuple[str, BlobLocation]]:  # type: ignore[override]
        """(sha256, location) in row order (the order of the pack's bytes)."""
        for row in range(len(self)):
            yield self.digest(row).hex(), self.location(row)

    def values(self) -> Iterator[BlobLocation]:  # type: ignore[override]
        for row in range(len(self)):
            yield self.location(row)

    def sizes(self) -> Iterator[int]:
        return iter(self.rows[FIELDS - 1::FIELDS])

    def frames(self) -> Iterator[tuple[int, int, list[tuple[str, BlobLocation]]]]:
        """(offset, length, [(sha256, location)...] in blob order) per frame, in the pack's order: what
        `check_pack` walks, built one frame at a time (all of a pack's at once cost 12 MB at 100,000 blobs)."""
        rows = self.rows
        keys = [rows[at:at + 3] for at in range(0, len(rows), FIELDS)]  # offset, length, skip
        order: range | list[int] = range(len(keys))
        if any(keys[row] > keys[row + 1] for row in range(len(keys) - 1)):
            order = sorted(order, key=keys.__getitem__)
        del keys
        group: list[tuple[str, BlobLocation]] = []
        frame = None
        for row in order:
            at = row * FIELDS
            where = (rows[at], rows[at + 1])
            if where != frame:
                if group:
                    yield frame[0], frame[1], group  # type: ignore[index]
                group, frame = [], where
            group.append((self.digest(row).hex(), self.location(row)))
        if group:
            yield frame[0], frame[1], group  # type: ignore[index]


def write_index(folder: Path, pack: PackInfo, keys: RepositoryKeys = PLAIN) -> Path:
    """The pack's index file, durably (temp, fsync, rename, fsync the folder)."""
    rows = [where.as_row(sha) for sha, where in sorted(pack.blobs.items(), key=lambda kv: kv[1].offset)]
    record = {"format": INDEX_FORMAT, "version": 1, "pack": pack.name, "size": pack.size, "raw_bytes": pack.raw_bytes}
    if pack.outside is not None:  # an earlier release's reader ignores it; its own packs are hashed whole
        record["outside"] = pack.outside
    text = json.dumps({**record, "blobs": rows}, separators=(",", ":")) + "\n"
    path = index_path(folder, pack.name)
    folder.mkdir(mode=0o700, exist_ok=True)
    atomic_write_bytes(path, keys.encrypt_bytes(text.encode()), file_mode=0o600)
    return path


def read_index(path: Path, keys: RepositoryKeys = PLAIN) -> PackInfo:
    """One index file (its blobs as a compact `PackBlobs`); ValueError when it is not one."""
    record = json.loads(keys.read(path))
    if not isinstance(record, dict) or record.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path.name} is not a pack index")
    name = str(record["pack"])
    blobs = PackBlobs.from_rows(name, record["blobs"])
    outside = record.get("outside")
    return PackInfo(name=name, size=int(record["size"]), blobs=blobs, raw_bytes=int(record.get("raw_bytes", 0)),
                    outside=outside if isinstance(outside, str) else None)


def index_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if entry.name.endswith(INDEX_SUFFIX) and not entry.name.startswith("."):
            yield Path(entry.path)


def indexed_pack_names(folder: Path) -> set[str]:
    """The packs that have an index file, from the file names alone (nothing read: what the orphan sweep needs;
    a pack whose index file exists but does not parse is not an orphan, `verify` reports it)."""
    return {Path(path).name[:-len(INDEX_SUFFIX)] for path in index_files(folder)}


class RepositoryIndex:
    """Every blob the repository holds, by sha256 (loaded from the index files at start)."""

    def __init__(self) -> None:
        self.packs: dict[str, PackInfo] = {}
        self.unreadable: list[str] = []
        self._tables: list[PackBlobs] = []
        self._where: dict[bytes, int] = {}  # digest -> pack number << ROW_BITS | row

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
        blobs = PackBlobs.of(pack.name, pack.blobs)
        pack.blobs = blobs
        self.packs[pack.name] = pack
        number = len(self._tables)
        self._tables.append(blobs)
        where = self._where
        base = number << ROW_BITS
        digests = blobs.digests
        for row in range(len(blobs)):
            where.setdefault(digests[row * DIGEST:(row + 1) * DIGEST], base | row)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, sha256: str) -> bool:
        try:
            return bytes.fromhex(sha256) in self._where
        except (ValueError, TypeError):
            return False

    def pack_of(self, sha256: str) -> str | None:
        """The pack holding the blob (what `get(sha256).pack` is, without building its location)."""
        try:
            code = self._where.get(bytes.fromhex(sha256))
        except (ValueError, TypeError):
            return None
        return None if code is None else self._tables[code >> ROW_BITS].pack

    def pack_of_digest(self, digest: bytes) -> str | None:
        """`pack_of` for the blob's 32-byte digest."""
        code = self._where.get(digest)
        return None if code is None else self._tables[code >> ROW_BITS].pack

    def get(self, sha256: str) -> BlobLocation | None:
        try:
            code = self._where.get(bytes.fromhex(sha256))
        except (ValueError, TypeError):
            return None
        if code is None:
            return None
        return self._tables[code >> ROW_BITS].location(code & ((1 << ROW_BITS) - 1))


class ReferencedBlobs:
    """Which blobs some snapshots reference: one byte per indexed blob (its row in the index marked), and the
    sha256 of each blob no index names. A set of 100,000 hex strings cost 11 MB; these marks take 0.1."""

    def __init__(self, index: RepositoryIndex):
        self.index = index
        self.marks = [bytearray(len(table)) for table in index._tables]
        self.unindexed: set[str] = set()

    def add(self, sha256: str) -> None:
        try:
            code = self.index._where.get(bytes.fromhex(sha256))
        except (ValueError, TypeError):
            code = None
        if code is None:
            self.unindexed.add(sha256)
        else:
            self.marks[code >> ROW_BITS][code & ROW_MASK] = 1

    def __contains__(self, sha256: str) -> bool:
        try:
            code = self.index._where.get(bytes.fromhex(sha256))
        except (ValueError, TypeError):
            return False
        return self.marks[code >> ROW_BITS][code & ROW_MASK] == 1 if code is not None else sha256 in self.unindexed

    def __len__(self) -> int:
        return sum(marks.count(1) for marks in self.marks) + len(self.unindexed)

    def packs(self) -> dict[str, int]:
        """Each pack holding a referenced blob, with how many it holds."""
        counts: dict[str, int] = {}
        for table, marks in zip(self.index._tables, self.marks, strict=True):
            if any(marks):
                counts[table.pack] = counts.get(table.pack, 0) + marks.count(1)
        return counts

    def in_pack(self, pack: str) -> set[str]:
        """The referenced blobs the index finds in `pack`."""
        return {table.digest(row).hex() for table, marks in zip(self.index._tables, self.marks, strict=True)
                if table.pack == pack for row, mark in enumerate(marks) if mark}
