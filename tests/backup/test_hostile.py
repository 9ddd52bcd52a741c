"""Hostile archives (tar-slip) are refused with exit 2 and nothing is written outside the target."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from backup_support import hostile_archive, listing, member, write_sidecar

from mobius.backup import restore_archive, verify_archive
from mobius.errors import VerificationError

HOSTILE = {
    "dotdot": [member("library/ok.txt", data=b"ok"), member("library/../../outside/evil.txt", data=b"x")],
    "absolute": [member("library/ok.txt", data=b"ok"), member("{outside}/evil.txt", data=b"x")],
    "symlink-then-file-through-it": [member("library/door", tarfile.SYMTYPE, linkname="../../outside"),
                                     member("library/door/evil.txt", data=b"x")],
    "absolute-symlink-then-file": [member("library/door", tarfile.SYMTYPE, linkname="{outside}"),
                                   member("library/door/evil.txt", data=b"x")],
    "inside-symlink-then-file-through-it": [member("library/sub", tarfile.DIRTYPE),
                                            member("library/door", tarfile.SYMTYPE, linkname="sub"),
                                            member("library/door/evil.txt", data=b"x")],
    "hardlink-to-outside": [member("library/hard", tarfile.LNKTYPE, linkname="{outside}/sentinel.txt")],
    "relative-hardlink": [member("library/a.txt", data=b"a"), member("library/b.txt", tarfile.LNKTYPE,
                                                                     linkname="library/a.txt")],
    "device": [member("library/null", tarfile.CHRTYPE)],
    "file-then-file-beneath-it": [member("library/card", data=b"a file"), member("library/card/x.txt", data=b"x")],
    "fifo": [member("library/pipe", tarfile.FIFOTYPE)],
    # The second copy would overwrite the first, already checked one; both are small, so they are queued
    # and written together on the write pool (the refusal must still come from there).
    "same-file-twice": [member("library/a.txt", data=b"first"), member("library/a.txt", data=b"second")],
    # Each link alone stays inside, lexically; together they leave: 'here' is the target itself, so
    # 'here/../outside' is the folder beside it. Only a real resolution catches this one.
    "chained-links": [member("library/here", tarfile.SYMTYPE, linkname="."),
                      member("library/away", tarfile.SYMTYPE, linkname="here/../outside")],
}


def _craft(tmp_path: Path, case: str) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("untouched")
    members = []
    for item in HOSTILE[case]:
        info = item[0] if isinstance(item, tuple) else item
        info.name = info.name.replace("{outside}", str(outside))
        info.linkname = info.linkname.replace("{outside}", str(outside))
        members.append(item)
    (tmp_path / "archives").mkdir()
    return hostile_archive(tmp_path / "archives" / f"{case}.tar.gz", members), outside


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_restore_refuses_hostile_archive_and_writes_nothing_outside(tmp_path: Path, case: str) -> None:
    archive, outside = _craft(tmp_path, case)
    before = {p for p in listing(tmp_path) if not p.startswith("archives")}
    target = tmp_path / "outside" / ".." / "target"
    with pytest.raises(VerificationError) as caught:
        restore_archive(archive, target)
    assert caught.value.exit_code == 2
    after = {p for p in listing(tmp_path) if not p.startswith("archives")}
    assert after == before, f"written: {after - before}"
    assert (outside / "sentinel.txt").read_text() == "untouched"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "hardlink-to-outside", "device", "fifo",
                                  "symlink-then-file-through-it"])
def test_verify_names_each_unsafe_member(tmp_path: Path, case: str) -> None:
    archive, _ = _craft(tmp_path, case)
    with pytest.raises(VerificationError) as caught:
        verify_archive(archive).raise_if_failed()
    unsafe = [d for d in caught.value.details if d.startswith("unsafe: ")]
    assert unsafe, caught.value.details
    bad = HOSTILE[case][-1]
    bad_name = (bad[0] if isinstance(bad, tuple) else bad).name
    assert any(bad_name in d for d in unsafe) or case == "symlink-then-file-through-it"


def test_chained_links_are_caught_by_real_resolution(tmp_path: Path) -> None:
    archive, _ = _craft(tmp_path, "chained-links")
    with pytest.raises(VerificationError, match="symlink away resolves outside the target folder"):
        restore_archive(archive, tmp_path / "target")


def test_restore_cli_refuses_hostile_archive_exit_2(tmp_path: Path, mobius) -> None:
    archive, outside = _craft(tmp_path, "symlink-then-file-through-it")
    assert mobius("init", str(tmp_path / "ws")).returncode == 0  # only `init` makes a workspace (issue 13, item 19)
    proc = mobius("backup", "restore", str(archive), "--to", str(tmp_path / "target"), "--yes",
                  "-w", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert "unsafe: library/door" in proc.stderr
    assert not (tmp_path / "target").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel.txt"]


@pytest.mark.slow
def test_zstd_bomb_is_verified_in_bounded_memory(tmp_path: Path) -> None:
    """512 MiB of zeros in a ~20 KiB zstd archive: verify streams it instead of inflating it in memory."""
    import subprocess
    import sys

    import zstandard

    size = 512 << 20
    archive = tmp_path / "bomb.tar.zst"
    with open(archive, "wb") as raw, zstandard.ZstdCompressor(level=19).stream_writer(raw) as out:
        info = tarfile.TarInfo("library/zeros.bin")
        info.size = size
        out.write(info.tobuf(tarfile.PAX_FORMAT))
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(block)
        out.write(bytes(2 * tarfile.BLOCKSIZE))
    assert archive.stat().st_size < 1 << 20
    write_sidecar(archive)
    # VmHWM is this process's own peak (ru_maxrss would carry the forking pytest's peak over the exec).
    probe = ("import sys; from mobius.cli.app import run; code = run(sys.argv[1:]); "
             "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
             "print(hwm, file=sys.stderr); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", probe, "backup", "verify", str(archive), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    max_rss_kib = int(proc.stderr.strip().splitlines()[-1])
    assert max_rss_kib < 200 * 1024, f"verify used {max_rss_kib} KiB"
