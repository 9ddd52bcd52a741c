"""`mobius migrate`: a plan's steps run as one operation that checkpoints, monitors and undoes itself.

Checkpoints live in the record store's steps table: row 0 is the preflight (its evidence holds
the baseline), rows 1..n the plan's steps (each undo handle recorded as soon as it exists),
row n+1 the validation. `resume` skips every row marked done and re-enters a half-done step,
which continues through the capability's own journal. Rollback walks the steps in reverse with
their handles and verifies each; what it cannot finish it names, with the commands to finish by hand.

A mutating command (deploy, env promote, env rollback) is a one-step plan run here too (`run_command`):
its record has the command's type, its preflight is the step's own, it has no plan validation, and
its policy says what a failure does (`rollback`, or `stop`: record it `failed`, resumable and undoable
from the record) and what Ctrl-C does (`stop`, or `rollback` then exit 130). `mobius migrate resume ID`
and `mobius migrate rollback ID` take any such record.

The record's status: running -> completed | stopped (SIGTERM, low disk, Ctrl-C, a closed output;
resumable) | rolling-back -> rolled-back | rollback-failed; refused (preflight failed or crashed,
nothing changed). Any exception inside a step or the validation, ours or not, rolls back: the
promise is held with `except Exception` around the work and `except BaseException` around the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from mobius import faults
from mobius.config import Workspace, load_workspace
from mobius.errors import InputError, MobiusError, ResourceError, VerificationError, describe, is_disk_full
from mobius.log import get_logger
from mobius.ops.digests import file_digest
from mobius.ops.monitors import Monitor, MonitorState
from mobius.ops.plan import Plan, load_plan
from mobius.ops.preflight import run_preflight
from mobius.ops.step import Step, StepContext
from mobius.ops.steps import find_step
from mobius.ops.validation import baseline, run_validation
from mobius.records import CommandCall, Operation, RecordStore, command_call, parent_scope
from mobius.results import Report, skipped, to_jsonable
from mobius.safety.lock import FileLock

TYPE = "migrate.run"
EXIT_STOPPED = 3  # stopped on request (SIGTERM): resumable


class Stopped(MobiusError):
    exit_code = EXIT_STOPPED


@dataclass
class RunOutcome:
    """How one run of a plan ended (its record id, status, steps and checks); not a per-item result."""

    id: str
    status: str
    reason: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)
    seconds: float = 0.0


class Orchestrator:
    def __init__(self, ws: Workspace, *, say: Callable[[str], None] = lambda line: None, yes: bool = True,
                 workers: int | None = None, progress: Any = None,
                 confirm: Callable[[str], bool] = lambda question: True):
        self.ws = ws
        self.say = say
        self.narrate = say  # the runner's own lines (steps, checks); a plain command keeps to its own output
        self.confirm = confirm
        self.calls: dict[int, CommandCall] = {}  # a command's capability call per step, as it reported itself
        self.yes, self.workers, self.progress = yes, workers, progress
        self.store = RecordStore.of(ws)
        self.state = MonitorState()
        self.stop_requested = False
        self.log = get_logger()
        self._settings_stale = False  # self.ws is as loaded by the caller until a step context is handed out

    # helpers
    def _ctx(self, op_id: str, idx: int, undo: Any = None) -> StepContext:
        from mobius.progress import NoProgress

        # a step may have changed the settings (media switches the library): read them again once one has run
        if self._settings_stale:
            self.ws = load_workspace(self.ws.root, env=self.ws.environment)
        self._settings_stale = True
        return StepContext(self.ws, operation_id=op_id, workers=self.workers, progress=self.progress or NoProgress(),
                           say=self.say, error_rate=self.state.feed,
                           record_undo=lambda handle, defer=False: self.store.step_undo(op_id, idx, handle,
                                                                                        defer=defer),
                           undo=undo, checkpoint=faults.kill_at, confirm=self.confirm)

    def _event(self, op_id: str, kind: str, data: dict[str, Any]) -> None:
        self.store.event(op_id, kind, data)
        self.log.info(f"migration.{kind}", operation=op_id, **{k: v for k, v in data.items() if k != "checks"})

    def _on_term(self, signum: int, frame: object) -> None:
        self.stop_requested = True
        self.say("stop requested (SIGTERM): stopping at the next safe point")

    @staticmethod
    def steps_of(plan: Plan, *, op_id: str | None = None, undoing: bool = False) -> list[Step]:
        """The plan's steps. A plan recorded before step parameters were checked when read may hold some
        this version refuses: such a run cannot continue, but it can still be undone, as a rollback needs
        nothing of a step but its class and the recorded undo handle (the step contract)."""
        steps = []
        for idx, (name, params) in enumerate(plan.step_list()):
            factory = find_step(name)
            if factory is None:
                raise InputError(f"migration {op_id or ''} names a step this version does not know: steps.{idx}: "
                                 f"{name!r}", hint="run it with the release that recorded it")
            try:
                steps.append(factory(params))
            except ValidationError as exc:
                if undoing and isinstance(factory, type):
                    steps.append(factory.__new__(factory))
                    continue
                error = exc.errors()[0]
                key = ".".join(str(p) for p in error["loc"])
                raise InputError(f"migration {op_id or ''} was recorded with a step parameter this version refuses: "
                                 f"steps.{idx}: {name} `{key}`: {error['msg']}",
                                 hint=f"undo it: mobius migrate rollback {op_id} --yes; then fix the plan and "
                                      "run it again" if op_id else "fix the plan") from None
        return steps

    def _exclusive(self, *, shared: bool = False) -> FileLock:
        """One migration at a time per workspace: run, resume and rollback each hold it throughout, so no
        rollback ever undoes (or deletes) the work of another migration running beside it. Plain commands
        (`shared`) run beside each other, each under its capability's own lock, but never beside those."""
        return FileLock(self.ws.state / "migrate.lock", shared=shared,
                        what="a migration (migrate run, resume or rollback)")

    # entry points
    def run(self, plan_path: Path, *, force: bool = False) -> RunOutcome:
        plan, text = load_plan(plan_path)
        with self._exclusive():
            return self._run(plan_path, plan, text, force=force)

    def _run(self, plan_path: Path, plan: Plan, text: str, *, force: bool) -> RunOutcome:
        op_id = self.store.start(TYPE, {"plan": plan.model_dump(mode="json", by_alias=True),
                                        "plan_path": str(Path(plan_path).resolve()), "plan_text": text,
                                        "force": force})
        self.say(f"migration {op_id}: {plan.name} ({plan.type}, risk {plan.risk})")
        with parent_scope(op_id):  # the capabilities' own records carry parent=<migration id>
            return self._drive(op_id, plan, force=force)

    def run_command(self, type: str, step: str, step_params: dict[str, Any], params: dict[str, Any], *,
                    on_failure: str = "rollback", on_interrupt: str = "stop", force: bool = False,
                    quiet: bool = False, checks: str = "step", exclusive: bool = True) -> RunOutcome:
        """Run one mutating command as a one-step plan: recorded as `type`, resumable, undoable from the record.

        `quiet`: the runner says nothing of its own (steps, checks), so the command's output stays its own.
        `checks="call"`: the step's preflight is not run; the capability call checks its own input and refuses
        with its own message and exit code (a plain command's documented errors), before it changes anything.
        `exclusive=False`: it may run beside other plain commands (not beside a plan, a resume or a rollback)."""
        plan = Plan.model_validate({"name": type, "type": "environment", "risk": "low",
                                    "steps": [{step: step_params}]})
        self.steps_of(plan)  # bad parameters are refused before anything is recorded
        command = {"on_failure": on_failure, "on_interrupt": on_interrupt, "checks": checks}
        if quiet:
            self.narrate = lambda line: None
        with self._exclusive(shared=not exclusive):
            op_id = self.store.start(type, {**params, "env": self.ws.environment, "force": force, "command": command,
                                            "plan": plan.model_dump(mode="json", by_alias=True)})
            with parent_scope(op_id):
                return self._drive(op_id, plan, force=force, command=command)

    def killed_command(self, type: str, step: str, step_params: dict[str, Any]) -> Operation | None:
        """The newest record of this same command (type, step and parameters, in this environment) whose process
        was killed (or stopped for lack of space) before it ended: the command run again continues it."""
        plan = Plan.model_validate({"name": type, "type": "environment", "risk": "low", "steps": [{step: step_params}]})
        wanted = to_jsonable(plan.model_dump(mode="json", by_alias=True))
        for op in self.store.list(type=type, limit=20):
            if (op.type == type and not op.parent and op.params.get("command")
                    and op.params.get("env") == self.ws.environment and op.params.get("plan") == wanted
                    and (op.status == "stopped" or (op.status in ("running", "stopping") and op.orphaned))):
                return op
        return None

    def continue_command(self, op: Operation) -> RunOutcome | None:
        """Continue a killed command's record (`killed_command`) in this process, as `migrate resume ID` would, but
        beside other plain commands (the command's own lock mode); None when another process claimed it first."""
        with self._exclusive(shared=True):
            if not self.store.claim(op.id, op.pid):
                return None
            self.narrate = lambda line: None
            plan = Plan.model_validate(op.params["plan"])
            self._event(op.id, "resumed", {"from_status": op.status, "by": "the same command run again"})
            with parent_scope(op.id):
                return self._drive(op.id, plan, force=bool(op.params.get("force")), command=op.params.get("command"))

    def resume(self, op_id: str) -> RunOutcome:
        with self._exclusive():
            return self._resume(op_id)

    def _resume(self, op_id: str) -> RunOutcome:
        op = self._load(op_id)
        self._adopt_workspace(op)
        if op.status in ("completed", "rolled-back", "refused"):
            raise InputError(f"migration {op_id} is {op.status}; nothing to resume")
        if op.status in ("running", "stopping", "rolling-back") and not op.orphaned:
            raise InputError(f"migration {op_id} is {op.status} in process {op.pid}", hint="it is still running")
        plan = Plan.model_validate(op.params["plan"])
        undoing = op.status in ("rolling-back", "rollback-failed")
        self.steps_of(plan, op_id=op_id, undoing=undoing)  # refused before the record changes
        self.store.adopt(op_id)
        self._event(op_id, "resumed", {"from_status": op.status})
        self.say(f"migration {op_id}: resuming ({op.status})")
        with parent_scope(op_id):
            if undoing:
                return self._rollback(op_id, plan, reason=op.error or "resumed rollback")
            return self._drive(op_id, plan, force=bool(op.params.get("force")), command=op.params.get("command"))

    def rollback(self, op_id: str, reason: str = "requested (mobius migrate rollback)") -> RunOutcome:
        with self._exclusive():
            return self._rollback_requested(op_id, reason)

    def _rollback_requested(self, op_id: str, reason: str) -> RunOutcome:
        op = self._load(op_id)
        self._adopt_workspace(op)
        if op.status in ("running", "stopping", "rolling-back") and not op.orphaned:
            raise InputError(f"migration {op_id} is {op.status} in process {op.pid}",
                             hint=f"stop it first: kill -TERM {op.pid}")
        if op.status == "rolled-back":
            raise InputError(f"migration {op_id} is already rolled back")
        plan = Plan.model_validate(op.params["plan"])
        self.steps_of(plan, op_id=op_id, undoing=True)  # a step this version does not know: refused, unchanged
        self.store.adopt(op_id)
        with parent_scope(op_id):
            return self._rollback(op_id, plan, reason=reason, automatic=False)

    def _load(self, op_id: str) -> Operation:
        op = self.store.get(op_id)
        if op is None:
            raise InputError(f"no migration {op_id} in this workspace", hint="see mobius history --type migrate")
        if not (op.type == TYPE or op.params.get("command")):
            message, hint = _not_a_runner_operation(op)
            raise InputError(message, hint=hint)
        return op

    def _adopt_workspace(self, op: Operation) -> None:
        """A command ran in a named environment (deploy --env NAME): resume and rollback work there too."""
        env = op.params.get("env") if op.params.get("command") else None
        if env and env != self.ws.environment:
            self.ws = load_workspace(self.ws.root, env=env)

    # the run
    def _drive(self, op_id: str, plan: Plan, *, force: bool, command: dict[str, str] | None = None) -> RunOutcome:
        started = time.monotonic()
        steps = self.steps_of(plan, op_id=op_id)
        previous = signal.signal(signal.SIGTERM, self._on_term)
        op = self.store.get(op_id)
        if op.status != "running" or op.pid != os.getpid():  # a fresh run is recorded running already
            self.store.set_status(op_id, "running")
            op = self.store.get(op_id)
        n = len(steps)
        done = {s.idx: s for s in op.steps}
        monitor = None
        try:
            # 0: preflight
            if done.get(0) is None or done[0].status != "done":
                faults.kill_at("preflight")
                if not command:  # a command's preflight only reads: its row is written once, when it ends
                    self.store.step_started(op_id, 0, "preflight")
                try:
                    if command and command.get("checks") == "call":
                        report, measured = Report(f"preflight of {plan.name}", [skipped(
                            "preflight", "checked by the command's own call, before it changes anything")]), {}
                    elif command:
                        report, measured = Report(f"preflight of {plan.name}"), {}
                        for step in steps:
                            report.extend(step.preflight(self._ctx(op_id, 0)).checks)
                    else:
                        report, measured = run_preflight(self.ws, plan, steps, force=force, ctx=self._ctx(op_id, 0))
                except Exception as exc:
                    self._refuse_crashed(op_id, "preflight", exc)
                for line in report.lines():
                    self.narrate(f"  {line}")
                if report.failures():
                    self.store.step_finished(op_id, 0, "failed", evidence={"checks": report.checks, **measured},
                                             name="preflight")
                    reason = "preflight failed: " + ", ".join(c.name for c in report.failures())
                    self.store.finish(op_id, "refused", {"reason": reason}, error=reason)
                    error, hint = ((ResourceError, "free space on that filesystem and run the command again")
                                   if report.short_of_resources() else (VerificationError, None))
                    raise error(f"migration {op_id} refused: {reason}; nothing was changed", hint=hint,
                                details=[c.line() for c in report.failures()])
                folder = self.ws.state / "ops" / op_id
                if not command:
                    folder.mkdir(parents=True, exist_ok=True)
                try:
                    measured["baseline"] = {} if command else baseline(self.ws, plan, folder)
                except Exception as exc:
                    self._refuse_crashed(op_id, "the baseline", exc)
                measured["env_sha256"] = file_digest(self.ws.env_file)
                evidence = {"checks": report.checks, **measured}
                # a command's preflight only read: its row goes with the step's first write (a kill before that
                # leaves nothing changed, and a resume runs the preflight again)
                self.store.step_finished(op_id, 0, "done", evidence=evidence, name="preflight", defer=bool(command))
                faults.kill_at("preflight:done")
                if not command:
                    evidence = self.store.get(op_id).steps[0].evidence
            else:
                evidence = done[0].evidence
            estimate = float(evidence.get("estimate_s") or 0)
            if not command:
                self.say(f"estimate {estimate:.1f} s ({evidence.get('estimate_source')})")
            self.state = MonitorState()
            monitor = Monitor(self.ws, self.store.path, op_id, plan.monitors, estimate_s=estimate,
                              started_monotonic=started, state=self.state)
            monitor.resume_timer(self.store)
            monitor.start()
            # 1..n: steps
            handle: Any = None
            for i, step in enumerate(steps, start=1):
                row = done.get(i)  # as recorded when this run began: the steps before it ran in this loop
                if row is not None and row.status == "done":
                    handle = row.undo
                    continue
                self._safe_point(op_id, plan)
                faults.kill_at(f"step:{step.name}")
                faults.disk_full_from(step.name)
                self.state.step = step.name
                self.store.step_started(op_id, i, step.name, {"params": plan.step_list()[i - 1][1]},
                                        defer=bool(command))
                self.narrate(f"step {i}/{n}: {step.name}")
                ctx = self._ctx(op_id, i, undo=row.undo if row else None)
                try:
                    if command:  # the command's own capability call reports to its record, not to one of its own
                        with command_call(op.type) as self.calls[i]:
                            handle = step.apply(ctx)
                    else:
                        handle = step.apply(ctx)
                    check = step.verify(self._ctx(op_id, i), handle)
                except Exception as exc:
                    if isinstance(exc, ResourceError) or is_disk_full(exc):
                        message = describe(exc)
                        self.store.step_finished(op_id, i, "stopped", error=message)
                        self.store.set_status(op_id, "stopped", error=message)
                        self._event(op_id, "stopped", {"reason": message})
                        raise ResourceError(f"migration {op_id} stopped in step {step.name}: {message}",
                                            hint=f"free some space, then: mobius migrate resume {op_id} "
                                                 f"(or undo it: mobius migrate rollback {op_id})") from exc
                    self._crashed(op_id, step.name, exc)
                    self.store.step_finished(op_id, i, "failed", error=describe(exc))
                    if command and command.get("on_failure") == "stop":
                        return self._failed(op_id, i, exc)
                    return self._rollback(op_id, plan, reason=f"step {step.name} failed: {describe(exc)}", cause=exc)
                # a command's last step ends in the same commit as the command (a kill before it: the resume
                # runs the step again from its recorded handle, as after a kill inside it)
                self.store.step_finished(op_id, i, "done" if not check.failures() else "failed",
                                         evidence={"checks": check.checks}, undo=handle,
                                         defer=bool(command) and not check.failures())
                for line in check.lines():
                    self.narrate(f"  {line}")
                if check.failures():
                    return self._rollback(op_id, plan, reason=f"step {step.name} did not verify: "
                                          + ", ".join(c.name for c in check.failures()))
                faults.kill_at("between")
            self._safe_point(op_id, plan)
            if command:  # its record's status says completed; no validation, no event
                call = self.calls.get(n)
                self.store.finish(op_id, call.status if call and call.called else "completed",
                                  self._result(op_id, handle), **self._reported(n))
                return self._outcome(op_id, started)
            # n+1: validation
            faults.kill_at("validation")
            self.state.step = "validation"
            self.store.step_started(op_id, n + 1, "validate")
            try:
                report, after = run_validation(self.ws, plan, evidence.get("baseline", {}))
            except Exception as exc:
                self._crashed(op_id, "validation", exc)
                self.store.step_finished(op_id, n + 1, "failed", error=describe(exc))
                return self._rollback(op_id, plan, reason=f"validation failed: {describe(exc)}")
            for line in report.lines():
                self.say(f"  {line}")
            self.store.step_finished(op_id, n + 1, "done" if not report.failures() else "failed",
                                     evidence={"checks": report.checks, "after": after})
            if report.failures():
                return self._rollback(op_id, plan, reason="validation failed: "
                                      + ", ".join(c.name for c in report.failures()))
            self._safe_point(op_id, plan)
            self.store.finish(op_id, "completed", {"seconds": round(time.monotonic() - started, 3)})
            self._event(op_id, "completed", {})
            return self._outcome(op_id, started)
        except _RollbackNow as now:
            return self._rollback(op_id, plan, reason=now.reason)
        except BaseException as exc:
            if command and command.get("on_interrupt") == "rollback" and isinstance(exc, KeyboardInterrupt):
                self._rollback(op_id, plan, reason="interrupted (Ctrl-C)", automatic=False)
                raise
            self._stopped_by(op_id, exc)
            raise
        finally:
            if monitor is not None:
                monitor.stop()
            signal.signal(signal.SIGTERM, previous)

    _UNREAD = object()

    def _result(self, op_id: str, undo: Any = _UNREAD) -> Any:
        """A command's result for its record: what its capability call returned, else what its step's handle put
        under `result` (releases read it). `undo`: the handle, when this run has it (no read of the record)."""
        call = self.calls.get(1)
        if call is not None and call.called:
            return call.result
        if undo is self._UNREAD:
            row = next((s for s in self.store.get(op_id).steps if s.idx == 1), None)
            undo = row.undo if row is not None else None
        return dict((undo or {}).get("result") or {}) if isinstance(undo, dict) else {}

    def _reported(self, idx: int) -> dict[str, Any]:
        """The parameters and journal id a command's capability call reported, for its record's end."""
        call = self.calls.get(idx)
        return {"params": call.params, "ref": call.ref} if call is not None and call.called else {}

    def _failed(self, op_id: str, idx: int, exc: Exception) -> NoReturn:
        """A command whose policy is `stop`: recorded `failed` with what it did (resumable, undoable), then the
        command's own error, with its exit code."""
        message = describe(exc)
        self.store.finish(op_id, "failed", self._result(op_id), error=message, **self._reported(idx))
        self._event(op_id, "failed", {"reason": message})
        if isinstance(exc, MobiusError):
            raise exc
        raise VerificationError(f"{message} (operation {op_id})",
                                hint="run with -v, or see the log in logs/, for where it failed") from exc

    def _crashed(self, op_id: str, where: str, exc: Exception) -> None:
        """An exception that is not one of ours: its traceback goes to the log file, its line to the record."""
        if not isinstance(exc, MobiusError):
            self.log.error("migration.crashed", console=False, operation=op_id, where=where, error=describe(exc),
                           traceback=traceback.format_exc())

    def _refuse_crashed(self, op_id: str, where: str, exc: Exception) -> NoReturn:
        """Before any step ran, nothing changed: record `refused` with the reason, never leave it `running`."""
        self._crashed(op_id, where, exc)
        reason = f"{where} could not complete: {describe(exc)}"
        self.store.step_finished(op_id, 0, "failed", error=reason, name="preflight")
        self.store.finish(op_id, "refused", {"reason": reason}, error=reason)
        if isinstance(exc, MobiusError):
            raise exc
        raise VerificationError(f"migration {op_id} refused: {reason}; nothing was changed",
                                hint="run with -v, or see the log in logs/, for where it failed") from exc

    def _stopped_by(self, op_id: str, exc: BaseException) -> None:
        """Whatever ends the run between the handled points (a closed stdout, Ctrl-C), the record never
        says `running` after this process is gone: `stopped`, so resume or rollback can take it up."""
        with contextlib.suppress(Exception):
            op = self.store.get(op_id)
            if op is not None and op.status == "running":
                reason = f"stopped by {describe(exc) if isinstance(exc, Exception) else type(exc).__name__}"
                self.store.set_status(op_id, "stopped", error=reason)
                self._event(op_id, "stopped", {"reason": reason})

    def _safe_point(self, op_id: str, plan: Plan) -> None:
        """Act on what the monitors and signals asked for, between steps."""
        if self.state.rollback_reason:
            raise _RollbackNow(self.state.rollback_reason)
        if self.state.stop_reason:
            self.store.set_status(op_id, "stopped", error=self.state.stop_reason)
            self._event(op_id, "stopped", {"reason": self.state.stop_reason})
            raise ResourceError(f"migration {op_id} stopped: {self.state.stop_reason}",
                                hint=f"free some space, then: mobius migrate resume {op_id} "
                                     f"(or undo it: mobius migrate rollback {op_id})")
        if self.stop_requested:
            self.store.set_status(op_id, "stopped", error="stopped on request (SIGTERM)")
            self._event(op_id, "stopped", {"reason": "SIGTERM"})
            raise Stopped(f"migration {op_id} stopped on request at a safe point",
                          hint=f"continue: mobius migrate resume {op_id}; undo: mobius migrate rollback {op_id}")

    # rollback
    def _rollback(self, op_id: str, plan: Plan, *, reason: str, automatic: bool = True,
                  cause: BaseException | None = None) -> RunOutcome:
        started = time.monotonic()
        self.store.set_status(op_id, "rolling-back", error=reason)
        self._event(op_id, "rollback.started", {"reason": reason, "automatic": automatic})
        self.say(f"rolling back: {reason}")
        steps: list[Step] = []
        rows: dict = {}
        failure: tuple[int, Report] | None = None
        try:
            steps = self.steps_of(plan, op_id=op_id, undoing=True)
            rows = {s.idx: s for s in self.store.get(op_id).steps}
            for i in range(len(steps), 0, -1):
                row = rows.get(i)
                if row is None or row.status in ("rolled-back", "pending"):
                    continue
                step = steps[i - 1]
                faults.kill_at(f"rollback:{step.name}")
                try:
                    report = step.rollback(self._ctx(op_id, i), row.undo)
                except Exception as exc:  # whatever its type, the rollback stops here and says what is left
                    self._crashed(op_id, f"rollback:{step.name}", exc)
                    report = Report(f"{step.name} rollback")
                    report.add(_failed_check(step.name, describe(exc)))
                self._event(op_id, "rollback.step", {"step": step.name, "idx": i, "ok": not report.failures(),
                                                     "checks": report.checks})
                for line in report.lines():
                    self.say(f"  {line}")
                if report.failures():
                    failure = (i, report)
                    break
                self.store.step_status(op_id, i, "rolled-back")
            env_before = (rows.get(0).evidence if rows.get(0) else {}).get("env_sha256")
            env_now = file_digest(self.ws.env_file)
            if failure is None and env_before and env_now != env_before:
                report = Report(".env rollback")
                report.add(_failed_check(".env", f"sha256 {env_now} differs from {env_before} before the migration"))
                failure = (0, report)
        except BaseException as exc:  # Ctrl-C, or a bug outside a step's own undo: never left `rolling-back` silently
            what = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else describe(exc)
            if isinstance(exc, Exception):
                self._crashed(op_id, "rollback", exc)
            left = _still_applied(steps, rows, len(steps))
            self._event(op_id, "rollback.failed", {"reason": reason, "error": what, "left": left})
            self.store.finish(op_id, "rollback-failed", {"reason": reason, "left": left},
                              error=f"rollback of {op_id} stopped: {what}")
            raise
        if failure is not None:
            return self._rollback_failed(op_id, steps, rows, failure[0], reason, failure[1])
        self._event(op_id, "rollback.done", {"reason": reason, "env_sha256": env_now,
                                             "seconds": round(time.monotonic() - started, 3)})
        self.store.finish(op_id, "rolled-back", {"reason": reason}, error=reason)
        if not automatic:
            return self._outcome(op_id, started)
        error = VerificationError(f"{plan.name if plan.name != TYPE else 'migration'} {op_id} rolled back: {reason}; "
                                  "every step's undo verified (the state before it restored), .env byte-identical",
                                  hint=f"see mobius migrate report {op_id}")
        if isinstance(cause, MobiusError):
            error.exit_code = cause.exit_code  # a timeout stays a timeout (exit 4), after the undo as before it
        raise error

    def _rollback_failed(self, op_id: str, steps: list[Step], rows: dict, at: int, reason: str,
                         report: Report) -> RunOutcome:
        left = _still_applied(steps, rows, at)
        message = f"rollback of {op_id} could not complete at {steps[at - 1].name if at else '.env'}"
        self._event(op_id, "rollback.failed", {"reason": reason, "left": left, "checks": report.checks})
        self.store.finish(op_id, "rollback-failed", {"reason": reason, "left": left}, error=message)
        raise VerificationError(message, details=[c.line() for c in report.failures()] + left,
                                hint=f"after fixing, run mobius migrate rollback {op_id} again")

    def _outcome(self, op_id: str, started: float) -> RunOutcome:
        op = self.store.get(op_id)
        return RunOutcome(op_id, op.status, op.error, [to_jsonable(s) for s in op.steps],
                       seconds=round(time.monotonic() - started, 3))

    def close(self) -> None:
        self.store.close()


class _RollbackNow(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _still_applied(steps: list[Step], rows: dict, at: int) -> list[str]:
    """The steps from `at` down that are not undone, each with how to finish its undo by hand."""
    return [f"{steps[j - 1].name}: still applied; finish by hand: {manual_hint(steps[j - 1].name, rows[j].undo)}"
            for j in range(at, 0, -1) if j in rows and rows[j].status not in ("rolled-back", "pending")]


def _failed_check(name: str, detail: str):  # noqa: ANN202
    from mobius.results import failed

    return failed(f"{name}.rollback", None, detail=detail)


def manual_hint(step: str, handle: Any) -> str:
    handle = handle or {}
    if step == "media.migrate":
        return f"mobius media rollback {handle.get('migration', '<migration id>')} --yes"
    if step == "db.migrate":
        return f"mobius db rollback --to {handle.get('previous_version', '<version>')} --yes"
    if step == "golden.update":
        return (f"mobius golden restore {handle['archive']}" if handle.get("archive")
                else "remove the new goldens in tests/golden (there were none before)")
    if step == "backup":
        return "nothing (a backup changes nothing)"
    if step in ("env.promote", "env.deploy") and handle.get("backup"):
        return f"mobius --env ENV backup restore {handle['backup']} --to LIBRARY --database --yes (ENV: the target)"
    if step == "env.rollback" and handle.get("pre_rollback_backup"):
        return f"mobius rollback --env ENV --backup {handle['pre_rollback_backup']} --yes"
    return "see the step's documentation"


def _not_a_runner_operation(op: Operation) -> tuple[str, str]:
    """Why `migrate resume/rollback` cannot take this record, and what undoes it instead."""
    env = op.params.get("env") or "NAME"
    if op.type in ("env.deploy", "env.promote", "env.rollback"):  # recorded before they ran on the runner
        return (f"{op.id} is an {op.type} recorded by an earlier release of mobius, without the undo handle "
                "`migrate rollback` needs", f"restore its backup with: mobius rollback --env {env} --yes")
    return f"{op.id} is a {op.type}, not a run of the migration runner", "see mobius history " + op.id


def status(ws: Workspace, op_id: str | None = None) -> Operation | list[Operation]:
    with RecordStore.of(ws, read_only=True) as store:
        if op_id:
            op = store.get(store.resolve(op_id, type=TYPE))
            if op is None:
                raise InputError(f"no migration {op_id} in this workspace")
            return op
        return store.list(type=TYPE, limit=20)
