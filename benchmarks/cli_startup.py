"""Benchmark: start-up of the `mobius` command, this tree against a baseline commit, in one run (issue 22).

Times whole processes: `mobius --help`, `mobius version --json`, `mobius history --json` (a command that
loads a workspace and reads its records), and the help of two sub-commands, `mobius golden check --help` and
`mobius env promote --help` (a sub-command's module imported and its options parsed: the start-up every
command of that group pays before its own work), and `mobius backup create` of the new workspace's small library
(a plain command on the ops runner: a snapshot, its database dump, its record; each run adds one snapshot).
The baseline is the same commands on the source of another commit
(default: main), extracted with `git archive` and put first on PYTHONPATH; the two run in turn (A B A B ...)
so that a drift of the shared machine's speed moves both. Prints the median wall time of each and the
ratio this tree / baseline per command (below 1: faster), for wall time and for the CPU time of
the child (user + system), which a loaded machine disturbs less. Numbers on a loaded machine are noisy: read the
medians, and run it twice.

Usage: python benchmarks/cli_startup.py [--baseline main] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"--help": ["--help"], "version": ["version", "--json"], "history": ["history", "--json"],
            "golden -h": ["golden", "check", "--help"], "promote -h": ["env", "promote", "--help"],
            "backup": ["backup", "create", "--json"]}


def extract(ref: str, into: Path) -> Path:
    """The `src` folder of `ref`, written under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child) of one run."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mobius", *argv], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # reaped above
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref to compare with (default: main)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mobius-startup-") as scratch:
        scratch_path = Path(scratch)
        base_src = extract(args.baseline, scratch_path)
        # both trees byte-compiled, as an installed package is: under PYTHONDONTWRITEBYTECODE=1 (our shells) the
        # extracted baseline would otherwise compile every module it imports in every run
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src"), str(base_src)], check=True,
                       stdout=subprocess.DEVNULL)
        workspace = scratch_path / "ws"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
        env["PYTHONPATH"] = str(ROOT / "src")
        subprocess.run([sys.executable, "-m", "mobius", "init", str(workspace)], env=env, check=True,
                       capture_output=True)
        env["MOBIUS_WORKSPACE"] = str(workspace)
        base_env = {**env, "PYTHONPATH": str(base_src)}
        print(f"{'command':<10} {'wall':>7} {'base':>7} {'ratio':>6}   {'cpu':>7} {'base':>7} {'ratio':>6}   "
              f"({args.runs} runs each, baseline {args.baseline}, medians in seconds; ratio = this tree / baseline)")
        for name, argv in COMMANDS.items():
            for _ in range(2):  # warm the page cache and .pyc files of both trees
                run_once(argv, env, workspace)
                run_once(argv, base_env, workspace)
            pairs = [(run_once(argv, env, workspace), run_once(argv, base_env, workspace)) for _ in range(args.runs)]
            cells = []
            for kind in (0, 1):  # wall, cpu
                ours = statistics.median(a[kind] for a, _ in pairs)
                theirs = statistics.median(b[kind] for _, b in pairs)
                ratio = statistics.median(a[kind] / b[kind] for a, b in pairs)
                cells.append(f"{ours:>7.3f} {theirs:>7.3f} {ratio:>6.2f}")
            print(f"{name:<10} {cells[0]}   {cells[1]}")


if __name__ == "__main__":
    main()
