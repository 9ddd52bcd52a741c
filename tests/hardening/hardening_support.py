"""Helpers the hardening tests share."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MOBIUS = [sys.executable, "-m", "mobius"]


def copy_preview(preview: Path, ws: Path) -> Path:
    target = ws / "out" / "sushi-go" / "preview.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(preview, target)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update(extra)
    return env


def rename_number(args: list[str], cwd: Path, trace: Path, to_suffix: str) -> int:
    """Run `mobius args` under strace once; the 1-based number of the first rename whose destination ends
    with `to_suffix` (a regex when it starts with `re:`), so a kill test aims at the same rename whatever
    the code renamed before it."""
    subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=rename", *MOBIUS, *args], cwd=cwd,
                   env=clean_env(), capture_output=True, check=True)
    renames = [line for line in trace.read_text().splitlines() if "rename(" in line and "resumed" not in line]
    for n, line in enumerate(renames, 1):
        match = re.search(r'rename\("[^"]*", "([^"]*)"', line)
        wanted = (re.search(to_suffix[3:], match.group(1)) if to_suffix.startswith("re:")
                  else match.group(1).endswith(to_suffix)) if match else False
        if wanted:
            return n
    raise AssertionError(f"no rename to *{to_suffix} in {renames}")


def kill_at_rename(args: list[str], cwd: Path, n: int) -> subprocess.CompletedProcess[str]:
    """Run `mobius args`, SIGKILLed on entry to its n-th rename (strace's fault injection)."""
    return subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
                           "-e", f"inject=rename:signal=KILL:when={n}", *MOBIUS, *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True)


def fill(folder: Path, *, leave: int = 0) -> None:
    """Write zeros into `folder`/filler until its file system is full to the last byte, then give back `leave`."""
    with open(folder / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    if leave:
        os.truncate(folder / "filler", max(0, (folder / "filler").stat().st_size - leave))


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` ("2m") mounted on `folder` (made), unmounted after; skips the test without root."""
    import pytest

    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
