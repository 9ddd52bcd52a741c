"""Benchmark: the orchestrator's own overhead, and how fast `migrate resume` gets back to work.

In one run, on copies of the same sample workspace (library + N MB of extra media-like files,
a reversible database migration 0003 pending):
  one by one   `mobius backup create`, `mobius media migrate --to media-v2 --yes --no-backup`,
               `mobius db migrate --to 3` as subprocesses, timed end to end
  as a plan    `mobius migrate run plan.yaml --yes` with the same three steps (preflight, monitors,
               validation [file_counts, db_check], probes [library_listing], record)
  resume       `migrate run` killed with -9 between steps; time from starting `migrate resume`
               until its next step starts (the step_started time in the record store)
Target (issue 8): the plan within 10% of the sum of the commands one by one.

    python benchmarks/migrate.py                  # 200 MB extra media
    python benchmarks/migrate.py --size-mb 50     # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.ops.conftest import CHEAP_STEPS, MIGRATION_0003  # noqa: E402


def mobius(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "mobius", *args], capture_output=True, text=True, env=full,
                          stdin=subprocess.DEVNULL)


def template(base: Path, size_mb: int) -> Path:
    from mobius.workspace.init import initialize

    root = base / "template"
    initialize(root, sample=True)
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0003_add_notes.sql").write_text(MIGRATION_0003)
    media = root / "uploads" / "bench"
    media.mkdir()
    for i in range(max(1, size_mb // 4)):
        (media / f"clip{i:03d}.bin").write_bytes(os.urandom(4 << 20))
    return root


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


PLAN = """name: bench
type: combined
risk: low
steps:
{steps}validate: [file_counts, db_check]
probes: [library_listing]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mobius-bench-migrate-"))
    try:
        tpl = template(base, args.size_mb)
        singles, plans = [], []
        for r in range(args.rounds):
            ws = copy(tpl, base / f"single{r}")
            started = time.perf_counter()
            target = str(ws / "media-v2")
            commands = (["backup", "create"], ["media", "migrate", "--to", target, "--yes", "--no-backup"],
                        ["db", "migrate", "--to", "3"])
            for command in commands:
                proc = mobius("-w", str(ws), *command)
                assert proc.returncode == 0, proc.stderr
            singles.append(time.perf_counter() - started)
            ws = copy(tpl, base / f"plan{r}")
            (ws / "plan.yaml").write_text(PLAN.format(steps=CHEAP_STEPS))
            started = time.perf_counter()
            proc = mobius("-w", str(ws), "migrate", "run", str(ws / "plan.yaml"), "--yes")
            assert proc.returncode == 0, proc.stderr
            plans.append(time.perf_counter() - started)
        single, plan = min(singles), min(plans)
        print(f"one by one  {single:6.2f} s  (best of {args.rounds}: {', '.join(f'{s:.2f}' for s in singles)})")
        print(f"as a plan   {plan:6.2f} s  (best of {args.rounds}: {', '.join(f'{s:.2f}' for s in plans)})")
        print(f"overhead    {(plan / single - 1) * 100:+5.1f} %  (target <= +10 %)")

        ws = copy(tpl, base / "resume")
        (ws / "plan.yaml").write_text(PLAN.format(steps=CHEAP_STEPS))
        proc = mobius("-w", str(ws), "migrate", "run", str(ws / "plan.yaml"), "--yes",
                      env={"MOBIUS_FAULT": "kill@between"})
        db = sqlite3.connect(ws / "state" / "operations.sqlite")
        op_id = db.execute("SELECT id FROM operations WHERE type = 'migrate.run'").fetchone()[0]
        started_wall = time.time()
        proc = mobius("-w", str(ws), "migrate", "resume", op_id)
        assert proc.returncode == 0, proc.stderr
        from mobius.safety.stamps import parse_utc

        step = db.execute("SELECT started FROM steps WHERE operation_id = ? AND idx = 2", (op_id,)).fetchone()[0]
        print(f"resume      {parse_utc(step).timestamp() - started_wall:6.2f} s from `migrate resume` to the next "
              "step starting (process start-up included)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
