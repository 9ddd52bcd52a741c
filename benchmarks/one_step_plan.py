"""Benchmark: the cost of running a plain command as a one-step plan on the runner, against the direct call.

The same work (set one setting in the workspace .env, atomically) four ways, in one process, in the
same run: the direct call; through `records_call` (a record: running -> completed); as a one-step plan
on the runner (`Orchestrator.run_command`: record, step rows 0 and 1, undo handle, monitor thread,
migration lock), which is what deploy, env promote and env rollback do; and as `mobius config set` runs
it (`ops.plain.run_step` with the `config.set` step: its undo handle holds the value before and the
.env digest). Prints the median of each and the overheads in ms (target for the one-step plan: under
30 ms), and the load average: on a shared machine the numbers move with it.

    python benchmarks/one_step_plan.py            # 40 rounds
    python benchmarks/one_step_plan.py --rounds 10
    python benchmarks/one_step_plan.py --commands --rounds 10   # db sync, backup create, rehash --rollback

`--commands`: on the sample workspace, each of `db sync`, `backup create` (a snapshot) and `library rehash
--rollback` as its capability's recorded call (what the command ran before it was a one-step plan) and as
the command runs it now (`run_step`): medians and the overhead of the plan in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from mobius.config import load_workspace, set_setting
from mobius.ops.orchestrator import Orchestrator
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.records import records_call
from mobius.results import Report, passed
from mobius.workspace.init import initialize


class _Params(StepParams):
    value: str


@register_step("bench.config-set")
class ConfigSetStep:
    """`config set MOBIUS_BACKUP_KEEP VALUE` as a step."""

    name: ClassVar[str] = "bench.config-set"
    Params: ClassVar[type[StepParams]] = _Params
    probes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]):
        self.value = _Params.model_validate(params).value

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan("set MOBIUS_BACKUP_KEEP")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("preflight", [passed("writable", str(ctx.ws.env_file))])

    def apply(self, ctx: StepContext) -> Any:
        previous = ctx.ws.settings.backup_keep
        ctx.record_undo({"previous": previous})
        set_setting(ctx.ws, "MOBIUS_BACKUP_KEEP", self.value)
        return {"previous": previous}

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        return Report("verify", [passed("set", self.value)])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        set_setting(ctx.ws, "MOBIUS_BACKUP_KEEP", str(handle["previous"]))
        return Report("rollback", [passed("restored", handle["previous"])])


def _time(fn: Any, rounds: int) -> float:
    seconds = []
    for i in range(rounds):
        started = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--commands", action="store_true", help="db sync, backup create, library rehash --rollback")
    args = parser.parse_args()
    if args.commands:
        commands(args.rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        initialize(root)
        ws = load_workspace(root)
        recorded_set = records_call("config.set")(set_setting)

        def plan(i: int) -> None:
            runner = Orchestrator(ws)
            try:
                runner.run_command("config.set", "bench.config-set", {"value": str(i + 1)}, {})
            finally:
                runner.close()

        def plain(i: int) -> None:
            from mobius.ops.plain import run_step

            run_step(ws, "config.set", "config.set", {"setting": {"MOBIUS_BACKUP_KEEP": str(i + 1)}})

        load = os.getloadavg()[0]
        direct_ms = _time(lambda i: set_setting(ws, "MOBIUS_BACKUP_KEEP", str(i + 1)), args.rounds)
        recorded_ms = _time(lambda i: recorded_set(ws, "MOBIUS_BACKUP_KEEP", str(i + 1)), args.rounds)
        plan_ms = _time(plan, args.rounds)
        try:
            plain_ms = _time(plain, args.rounds)
        except ImportError:  # a tree before ops.plain
            plain_ms = float("nan")
    print(json.dumps({"rounds": args.rounds, "filesystem": _filesystem(Path(tmp).parent),
                      "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
                      "direct_ms": round(direct_ms, 2), "records_call_ms": round(recorded_ms, 2),
                      "one_step_plan_ms": round(plan_ms, 2), "config_set_plan_ms": round(plain_ms, 2),
                      "records_call_overhead_ms": round(recorded_ms - direct_ms, 2),
                      "one_step_plan_overhead_ms": round(plan_ms - direct_ms, 2),
                      "config_set_plan_overhead_ms": round(plain_ms - direct_ms, 2), "target_ms": 30}))


def commands(rounds: int) -> None:
    """The recorded call against the one-step plan, for each command made a plan in issue 22's last round."""
    from mobius.backup import create_snapshot
    from mobius.db import sync_databases
    from mobius.fingerprint import hash_library, rehash, rollback
    from mobius.ops.plain import run_step

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        initialize(root, sample=True)
        ws = load_workspace(root)
        source, target = f"sqlite:///{root / 'mobius.db'}", f"sqlite:///{root / 'target.db'}"
        hash_library(ws)
        rehash(ws, "fast")
        load = os.getloadavg()[0]
        pairs = {
            "db_sync": (lambda i: sync_databases(ws, source, target, overwrite=True),
                        lambda i: run_step(ws, "db.sync", "db.sync",
                                           {"from_url": source, "to_url": target, "overwrite": True})),
            "backup_snapshot": (lambda i: create_snapshot(ws, database=False),
                                lambda i: run_step(ws, "backup.snapshot", "backup.snapshot", {"database": False})),
            "rehash_rollback": (lambda i: rollback(ws),
                                lambda i: run_step(ws, "library.rehash-rollback", "library.rehash-rollback", {})),
        }
        out: dict[str, Any] = {"rounds": rounds, "filesystem": _filesystem(Path(tmp).parent)}
        for name, (recorded, plan) in pairs.items():
            recorded_ms, plan_ms = _time(recorded, rounds), _time(plan, rounds)
            out[name] = {"recorded_call_ms": round(recorded_ms, 2), "one_step_plan_ms": round(plan_ms, 2),
                         "overhead_ms": round(plan_ms - recorded_ms, 2)}
        out["load_average_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        out["target_ms"] = 30
    print(json.dumps(out))


def _filesystem(folder: Path) -> str:
    """The type of the filesystem the workspace is on (tmpfs hides the cost of fsync)."""
    best = ("", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, kind = line.split()[:3]
            if str(folder.resolve()).startswith(point) and len(point) >= len(best[0]):
                best = (point, kind)
    return best[1]


if __name__ == "__main__":
    main()
