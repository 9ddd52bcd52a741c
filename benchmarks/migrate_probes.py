"""Benchmark: a small plan's run time with the probes that fit its steps, against every probe (issue 26 item 2).

In one run, on copies of the sample workspace, `mobius migrate run` of a plan that backs up and moves
the library (43 files):
  all probes   `probes: [library_listing, pipeline_test, golden_check, service_ready]` (the default before)
  default      no `probes:` line (media.migrate's: library_listing, service_ready)
The issue's baseline: about 11 s with every probe against about 2 s; reported as a ratio, best of N.

    python benchmarks/migrate_probes.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PLAN = """name: bench-probes
type: media
risk: low
steps:
  - backup: {{}}
  - media.migrate: {{to: media-v2}}
validate: [file_counts]
{probes}"""
ALL = "probes: [library_listing, pipeline_test, golden_check, service_ready]\n"


def run_plan(template: Path, folder: Path, probes: str) -> float:
    ws = folder
    shutil.copytree(template, ws, symlinks=True)
    (ws / "plan.yaml").write_text(PLAN.format(probes=probes))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mobius", "-w", str(ws), "migrate", "run", str(ws / "plan.yaml"),
                           "--yes"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from mobius.workspace.init import initialize

    base = Path(tempfile.mkdtemp(prefix="mobius-bench-probes-"))
    try:
        template = base / "template"
        initialize(template, sample=True)
        every = [run_plan(template, base / f"all{r}", ALL) for r in range(args.rounds)]
        fitted = [run_plan(template, base / f"default{r}", "") for r in range(args.rounds)]
        print(f"all probes  {min(every):6.2f} s  (best of {args.rounds}: {', '.join(f'{s:.2f}' for s in every)})")
        print(f"default     {min(fitted):6.2f} s  (best of {args.rounds}: {', '.join(f'{s:.2f}' for s in fitted)})")
        print(f"ratio       {min(every) / min(fitted):6.1f} x faster (issue 26: about 11 s against about 2 s)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
