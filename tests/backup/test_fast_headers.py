"""The fast tar header paths (issue 9) produce and read exactly what tarfile does, and step aside otherwise."""

from __future__ import annotations

import os
import random
import tarfile
from pathlib import Path

from mobius.backup.archive import _ustar_header
from mobius.backup.pack import _tar_header
from mobius.backup.reader import _plain_ustar

CASES = [("library/set-000/card 0000001.webp", tarfile.REGTYPE, 3000, 0o644, 1_764_570_000, ""),
         ("library/folder", tarfile.DIRTYPE, 0, 0o755, 0, ""),
         ("library/link", tarfile.SYMTYPE, 0, 0o777, 5, "../target x"),
         ("a" * 100, tarfile.REGTYPE, 8 ** 11 - 2, 0o7777, 8 ** 11 - 2, ""),
         ("a" * 99, tarfile.DIRTYPE, 0, 0o700, 3, "")]


READ = ("name", "type", "size", "mode", "mtime", "linkname")  # what Mobius reads from a header


def _reference(name: str, kind: bytes, size: int, mode: int, mtime: int, link: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime, info.linkname = kind, size, mode, mtime, link
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_written_headers_are_tarfiles_bytes_or_left_to_tarfile():
    for case in CASES:
        assert _ustar_header(*case) == _reference(*case)
    assert _ustar_header("a" * 100, tarfile.DIRTYPE, 0, 0o700, 3, "") is None  # 101 with the slash: PAX
    assert _ustar_header("library/é.png", tarfile.REGTYPE, 1, 0o644, 3, "") is None
    assert _ustar_header("library/big", tarfile.REGTYPE, 8 ** 11, 0o644, 3, "") is None


def test_a_blobs_header_from_its_template_is_tarfiles_bytes():
    """Pack members' headers are built from a template (name and size filled in, the checksum added up from
    theirs): byte for byte what tarfile writes, for sizes up to the largest plain ustar holds."""
    sizes = [0, 1, 511, 512, 4095, 1 << 20, 123_456_789, 8 ** 11 - 2]
    for size in sizes + [random.randrange(8 ** 11 - 1) for _ in range(200)]:
        sha = os.urandom(32).hex()
        assert _tar_header(sha, size) == _reference(sha, tarfile.REGTYPE, size, 0o644, 0, "")
    assert _tar_header("f" * 64, 8 ** 11 - 2) == _reference("f" * 64, tarfile.REGTYPE, 8 ** 11 - 2, 0o644, 0, "")


def test_read_headers_equal_tarfiles_parse(tmp_path: Path):
    for name in ("a.txt", "é.txt", "n" * 120):
        (tmp_path / name).write_text("x")
    (tmp_path / "dir").mkdir()
    os.symlink("a.txt", tmp_path / "l")
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        archive = tmp_path / f"t{fmt}.tar"
        with tarfile.open(archive, "w", format=fmt) as tar:
            for name in ("a.txt", "dir", "l", "é.txt", *(("n" * 120,) if fmt != tarfile.USTAR_FORMAT else ())):
                tar.add(tmp_path / name, arcname=name)
        data = archive.read_bytes()
        fast = 0
        for offset in range(0, len(data), 512):
            block = data[offset:offset + 512]
            info = _plain_ustar(block)
            if info is not None:
                fast += 1
                reference = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
                mine = {k: info.get_info()[k] for k in READ}
                assert mine == {k: reference.get_info()[k] for k in READ} and info.chksum == reference.chksum
        assert fast >= (3 if fmt != tarfile.GNU_FORMAT else 0)
    broken = bytearray(_reference(*CASES[0]))
    broken[0] ^= 1
    assert _plain_ustar(bytes(broken)) is None  # bad checksum: tarfile raises for it


def test_a_regular_type_member_with_pax_sparse_records_is_still_a_sparse_file():
    """`kind`'s fast path for type '0' must not take a PAX-sparse member for a plain file."""
    import io

    from mobius.backup.member_rules import kind, member_problem

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("library/s.bin")
        info.size = 5
        info.pax_headers = {"GNU.sparse.map": "0,5", "GNU.sparse.size": "5", "GNU.sparse.realsize": "100"}
        tar.addfile(info, io.BytesIO(b"hello"))
    data.seek(0)
    with tarfile.open(fileobj=data) as tar:
        member = tar.getmembers()[0]
    assert member.type == tarfile.REGTYPE
    assert kind(member) == "sparse file" and "sparse file" in member_problem(member)


def test_manifest_lines_are_what_json_dumps_writes_and_parse_back_in_bulk():
    """`to_line` formats directly and `parse_lines` parses 2,000 at a time: the same bytes and entries as
    json per line, for names json must escape, and None for each line that is not an entry."""
    import json

    from mobius.backup.manifest import ManifestEntry, parse_lines

    entries = [ManifestEntry('library/a b"c\\d\n\t\x01é☃\udcff.png', "file", 12, 0o100644, 1_764_570_000_123_456_789),
               ManifestEntry("library/link", "symlink", 0, 0o777, 5, '../x"y\udc80'),
               ManifestEntry("library", "dir", 0, 0o40755, 0)]
    for entry in entries:
        record = {"path": entry.path, "type": entry.type, "size": entry.size, "mode": entry.mode,
                  "mtime_ns": entry.mtime_ns, **({"target": entry.target} if entry.target is not None else {})}
        assert entry.to_line() == json.dumps(record, separators=(",", ":")) + "\n"
    lines = [entry.to_line().encode() for entry in entries]
    assert parse_lines(lines) == entries
    damaged = [lines[0], b"1,2", b"\xff\xfe", b"[]", b"", lines[1]]
    assert parse_lines(damaged) == [entries[0], None, None, None, None, entries[1]]
