"""safety.heap: with the mmap threshold fixed, freed blocks above it no longer move glibc's threshold up, so
later blocks of that size stay out of the heap (whose holes stay resident); a backup fixes it for small files only."""

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap and its mmap threshold")

PROBE = textwrap.dedent("""
    import sys
    from mobius.safety.heap import fix_mmap_threshold

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold() and fix_mmap_threshold()  # once per process, then a no-op

    def heap_size():
        with open("/proc/self/maps") as maps:
            for line in maps:
                if line.rstrip().endswith("[heap]"):
                    low, high = line.split()[0].split("-")
                    return int(high, 16) - int(low, 16)
        return 0

    freed = b"x" * (4 << 20)  # glibc serves it by mmap; its free raises the threshold to 4 MiB
    del freed
    before = heap_size()
    blocks = [b"x" * (1 << 20) for _ in range(32)]
    print((heap_size() - before) >> 20)
""")


def _heap_growth_mib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_fixed_threshold_keeps_large_blocks_out_of_the_heap():
    # the control: glibc's moving threshold puts the 32 MiB in the heap (less what it already had free: 12 of
    # 16 MiB in one CI run)
    assert _heap_growth_mib("default") >= 16
    assert _heap_growth_mib("fixed") <= 1


SNAPSHOT_PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mobius.backup.repository import Repository, write_snapshot_of
    from mobius.safety import heap

    write_snapshot_of(Repository(Path(sys.argv[2])), Path(sys.argv[1]))
    print(heap._fixed)
""")


def test_only_a_backup_of_small_files_fixes_the_threshold(tmp_path):
    # media-sized files pay the mapping of every 1 MiB read for a peak already under restic's (safety.heap)
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    for n in range(20):
        (small / f"{n}.txt").write_bytes(b"%d" % n * 500)
    (large / "clip.bin").write_bytes(bytes(3 << 20))
    for library, fixed in ((small, "True"), (large, "False")):
        out = subprocess.run([sys.executable, "-c", SNAPSHOT_PROBE, str(library), str(tmp_path / f"repo-{fixed}")],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == fixed, library
