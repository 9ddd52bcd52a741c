"""Recording the pre-migration notice: when it went out is what the lead-time check reads."""

from __future__ import annotations

from pathlib import Path

from mobius.config import Workspace
from mobius.ops.plan import load_plan
from mobius.ops.preflight import estimate_of
from mobius.records import RecordStore


def record_notice(ws: Workspace, plan_path: Path) -> str:
    """A `migrate.notice` operation carrying the plan and each step's measured plan; returns its id."""
    from mobius.ops.orchestrator import Orchestrator
    from mobius.ops.step import StepContext

    plan, _ = load_plan(plan_path)
    ctx = StepContext(ws)
    steps = Orchestrator.steps_of(plan)
    step_plans = [s.plan(ctx) for s in steps]
    plans = [{"step": s.name, **vars(p)} for s, p in zip(steps, step_plans, strict=True)]
    estimate = estimate_of(ws, plan, step_plans)
    with RecordStore.of(ws) as store:
        op_id = store.start("migrate.notice", {"plan": plan.name, "plan_doc": plan.model_dump(mode="json",
                                                                                           by_alias=True),
                                               "plans": plans, **estimate})
        store.finish(op_id, "completed", {"plan": plan.name})
    return op_id
