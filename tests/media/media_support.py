"""Helpers for media tests (imported by test modules; conftest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MOBIUS = [sys.executable, "-m", "mobius"]
BIG = 3 * (1 << 20) + 12345  # more than one 1 MiB chunk, so a kill can land mid-file


def add_edge_cases(library: Path, *, links: bool = True, big_files: int = 4) -> None:
    """Empty file, empty folders, names with spaces and non-ASCII, big random files, symlinks."""
    (library / "empty folder" / "nested empty").mkdir(parents=True)
    (library / "empty.bin").write_bytes(b"")
    (library / "scans").mkdir()
    rng = __import__("random").Random(7)
    for i in range(big_files):
        (library / "scans" / f"scan {i} é.raw").write_bytes(rng.randbytes(BIG + i))
    (library / "scans" / "scan 0 é.raw").chmod(0o640)
    os.utime(library / "scans" / "scan 1 é.raw", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    if links:
        os.symlink("scans/scan 0 é.raw", library / "link inside")
        os.symlink("/etc/hostname", library / "link outside")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry with kind, mode, content hash (files), target (links) and mtime (files)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777)
            else:
                out[rel] = ("file", st.st_mode & 0o7777, st.st_mtime_ns,
                            hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def temps(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".mobius-tmp-*")]


def mobius_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update(extra or {})
    return env


class Paused:
    """A `mobius` run stopped at a pause point (MOBIUS_FAULT=pause@POINT); kill it or let it continue."""

    def __init__(self, ws: Path, args: list[str], point: str, env: dict[str, str] | None = None):
        self.marker = ws / "state" / "media-test-pause"
        self.marker.unlink(missing_ok=True)
        extra = dict(env or {})
        fault = ",".join(f for f in (f"pause@{point}", extra.pop("MOBIUS_FAULT", "")) if f)
        self.proc = subprocess.Popen([*MOBIUS, *args, "-w", str(ws)], env=mobius_env({"MOBIUS_FAULT": fault,
                                     **extra}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.marker.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"exited {self.proc.returncode} before pause {point}: {out} {err}")
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.01)
        time.sleep(0.02)
        self.point, _, self.path = self.marker.read_text().strip().partition(" ")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.marker.unlink(missing_ok=True)

    def resume(self) -> subprocess.CompletedProcess[str]:
        self.marker.unlink()
        out, err = self.proc.communicate(timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


# Runs a mobius command line in-process and prints its exit code and the bytes it read (rchar): a re-run
# that reads no file of the library reads (almost) nothing.
RCHAR_PROBE = """
import sys
from mobius.cli.app import run
def rchar():
    return int(dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())['rchar'])
run([*sys.argv[1:], '--dry-run'])  # loads the modules the command needs (their files are not the library's)
before = rchar()
code = run(sys.argv[1:])
print(code, rchar() - before)
"""
