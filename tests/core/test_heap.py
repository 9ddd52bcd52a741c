"""safety.heap: with the mmap threshold fixed, freed blocks of 128 KiB or more no longer move glibc's
threshold up, so later blocks of that size stay out of the heap (whose holes stay resident)."""

import platform
import subprocess
import sys
import textwrap

import pytest

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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap and its mmap threshold")
def test_fixed_threshold_keeps_large_blocks_out_of_the_heap():
    # the control: glibc's moving threshold puts the 32 MiB in the heap (less what it already had free: 12 of
    # 16 MiB in one CI run)
    assert _heap_growth_mib("default") >= 16
    assert _heap_growth_mib("fixed") <= 1
