"""`mobius migrate` and `mobius history`: see mobius.ops (the runbook as one executable plan)."""

from __future__ import annotations

from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.options import WORKERS, YES, changes
from mobius.cli.output import confirm, emit, say

migrate_app = typer.Typer(help="Run the migration runbook as one plan: preflight, steps, monitors, validation, "
                               "automatic rollback, reports.", no_args_is_help=True)

_PLAN = typer.Argument(..., help="The plan YAML file (see docs/migrate.md).")
MIGRATION = "migrate.run"  # ops.orchestrator.TYPE, named here so that start-up does not import the runner
WATCH = typer.Option(False, "--watch", help="Follow it live until it ends; exit with its exit code.")
_ID = typer.Argument(..., help="The migration id (printed first by `migrate run`; see `mobius history`), "
                                   "or `latest`.")


def _orchestrator():  # noqa: ANN202
    from mobius.ops.orchestrator import Orchestrator

    return Orchestrator(current.workspace(), say=say, progress=current.progress())


def _lines(outcome) -> list[str]:  # noqa: ANN001
    return [f"migration {outcome.id}: {outcome.status} in {outcome.seconds:.1f} s"]


@migrate_app.command("plan")
def plan_command(plan: Path = _PLAN, force: bool = typer.Option(False, "--force", help="Treat the window and "
                                                                  "notice checks as passed.")) -> None:
    """The dry run: validate the plan, run every preflight check with its evidence, print what each step would do.

    Exit 0 when every check passes, 2 when any fails.

    Example: mobius migrate plan plans/media-to-v2.yaml
    """
    from mobius.ops.orchestrator import Orchestrator
    from mobius.ops.plan import load_plan
    from mobius.ops.preflight import run_preflight

    loaded, _ = load_plan(plan)
    ws = current.workspace()
    report, measured = run_preflight(ws, loaded, Orchestrator.steps_of(loaded), force=force)
    lines = [f"plan {loaded.name} ({loaded.type}, risk {loaded.risk}): {len(loaded.steps)} step(s)"]
    lines += [f"  step {i}: {p['step']}: {p['summary']}" for i, p in enumerate(measured["plans"], start=1)]
    lines += [f"  {line}" for line in report.lines()]
    lines += [probe_line(name, cost) for name, cost in measured["probes"].items()] or [
        "  probes: none (the plan's steps change nothing a probe measures)"]
    lines.append(f"estimate {measured['estimate_s']:.1f} s ({measured['estimate_source']})")
    result = {"plan": loaded.name, "report": report, **measured}
    if report.failures():
        for line in lines:  # the human lines; under --json the one object is the error's
            say(line)
        report.raise_if_failed(hint="fix what the failed checks name, then plan again")
    emit(result, lines + ["all checks passed"])


def probe_line(name: str, cost: dict) -> str:
    """`  probe library_listing: ~0.1 s (measured: one listing; 3 sample(s) before and after)`."""
    if "skipped" in cost:
        return f"  probe {name}: skipped ({cost['skipped']})"
    return f"  probe {name}: ~{cost['seconds']:.1f} s ({cost['how']})"


@migrate_app.command("run")
@changes
def run_command(plan: Path = _PLAN, yes: bool = YES,
                force: bool = typer.Option(False, "--force", help="Run outside the window / before the notice "
                                                                  "lead time."),
                workers: int = WORKERS) -> None:
    """Preflight, then the steps with monitors, validation, record; automatic rollback on failure.

    Prints the migration id first.

    Example: mobius migrate run plans/media-to-v2.yaml --yes
    """
    from mobius.ops.plan import load_plan

    loaded, _ = load_plan(plan)
    if not confirm(f"run migration {loaded.name} ({len(loaded.steps)} steps) on {current.workspace().root}?",
                   yes=yes):
        raise typer.Exit(1)
    orchestrator = _orchestrator()
    orchestrator.workers = workers
    try:
        outcome = orchestrator.run(plan, force=force)
    finally:
        orchestrator.close()
    emit(outcome, _lines(outcome))


@migrate_app.command("resume")
@changes
def resume_command(migration: str = _ID, workers: int = WORKERS) -> None:
    """Continue a killed or stopped migration from its last checkpoint (finished steps are not redone).

    Example: mobius migrate resume latest   # exit 1: it finished, nothing to resume
    Needs first: mobius migrate run plans/media-to-v2.yaml --yes
    """
    orchestrator = _orchestrator()
    orchestrator.workers = workers
    try:
        outcome = orchestrator.resume(orchestrator.store.resolve(migration, type=MIGRATION))
    finally:
        orchestrator.close()
    emit(outcome, _lines(outcome))


@migrate_app.command("rollback")
@changes
def rollback_command(migration: str = _ID, yes: bool = YES) -> None:
    """Undo the migration's finished steps in reverse with their handles, verifying each.

    Example: mobius migrate rollback latest --yes
    Needs first: mobius migrate run plans/media-to-v2.yaml --yes
    """
    orchestrator = _orchestrator()
    try:
        migration = orchestrator.store.resolve(migration, type=MIGRATION)
        if not confirm(f"roll back migration {migration}?", yes=yes):
            raise typer.Exit(1)
        outcome = orchestrator.rollback(migration)
    finally:
        orchestrator.close()
    emit(outcome, _lines(outcome))


@migrate_app.command("status")
def status_command(migration: str = typer.Argument(None, help="A migration id or `latest` (default: the recent "
                                                              "ones)."), watch: bool = WATCH) -> None:
    """One migration's steps, or the recent migrations; `--watch` follows one live until it ends.

    Example: mobius migrate status latest --watch
    Needs first: mobius migrate run plans/media-to-v2.yaml --yes
    """
    from mobius.ops.orchestrator import status

    if watch:
        _watch(status(current.workspace(), migration or "latest").id)
    found = status(current.workspace(), migration)
    if isinstance(found, list):
        emit({"migrations": found}, [f"{op.id}  {op.status:<15} {op.started}  {op.params.get('plan', {}).get('name')}"
                                     + ("  (orphaned: resume or roll back)" if op.orphaned else "")
                                     for op in found] or ["no migrations"])
        return
    lines = [f"{found.id}: {found.status}" + (" (orphaned: its process is gone)" if found.orphaned else "")
             + (f"; {found.error}" if found.error else "")]
    lines += [f"  {s.idx}. {s.name:<15} {s.status}" for s in found.steps]
    emit({"migration": found, "orphaned": found.orphaned}, lines)


@migrate_app.command("report")
def report_command(
    migration: str = typer.Argument(..., help="A migration id or `latest`, or (with --kind pre) the plan YAML file."),
    fmt: str = typer.Option("md", "--format", help="md or html."),
    kind: str = typer.Option("post", "--kind", help="pre (the notice) or post (the report)."),
    out: Path = typer.Option(None, "--out", help="Write the report here (default: print it)."),
) -> None:
    """The runbook's pre-migration notice or post-migration report, from the record, in Markdown or HTML.

    `--kind pre PLAN.yaml` records when the notice was produced (high-risk plans need it 48 h ahead).

    Example: mobius migrate report latest --format html --out report.html
    Needs first: mobius migrate run plans/media-to-v2.yaml --yes
    """
    from mobius.errors import InputError
    from mobius.ops import notice, report
    from mobius.safety.atomic import atomic_write_text

    if fmt not in ("md", "html") or kind not in ("pre", "post"):
        raise InputError("--format is md or html, --kind is pre or post")
    ws = current.workspace()
    op_id = migration
    if kind == "pre" and Path(migration).is_file():
        op_id = notice.record_notice(ws, Path(migration))
    text = report.render(ws, op_id, kind=kind, fmt=fmt)
    if out:
        atomic_write_text(out.expanduser().resolve(), text)
        emit({"migration": op_id, "kind": kind, "format": fmt, "out": out.resolve()}, f"wrote {out}")
    else:
        emit({"migration": op_id, "kind": kind, "format": fmt, "text": text}, text.splitlines())


def _watch(op_id: str) -> None:
    """Follow `op_id` until it ends; print its record under --json; exit with its exit code."""
    from mobius.cli.watch import follow

    op, events, code = follow(current.workspace(), op_id, draw=not current.json)
    if current.json:
        emit({"operation": op, "events": events, "exit_code": code})
    raise typer.Exit(code)


def history_command(
    operation: str = typer.Argument(None, help="An operation id (or `latest`): its steps and events."),
    type_: str = typer.Option(None, "--type", "-t", help="Only this type (e.g. migrate, backup, media.migrate)."),
    limit: int = typer.Option(50, "--limit", help="At most this many operations."),
    watch: bool = WATCH,
) -> None:
    """Every operation Mobius recorded in this workspace (state/operations.sqlite), newest first.

    Example: mobius history latest --json
    """
    from mobius.errors import InputError
    from mobius.records import RecordStore

    if watch and not operation:
        raise InputError("--watch follows one operation: give its id, or `latest`",
                         hint="mobius history latest --watch")
    with RecordStore.of(current.workspace(), read_only=True) as store:
        if operation:
            operation = store.resolve(operation, type=type_)
            if watch:
                store.close()
                _watch(operation)
            op = store.get(operation)
            if op is None:
                raise InputError(f"no operation {operation} in this workspace", hint="see mobius history")
            events = store.events(operation)
            lines = [f"{op.id}  {op.type}  {op.status}  {op.started} -> {op.finished or '-'}"
                     + (f"  ref {op.ref}" if op.ref else "") + (f"  error: {op.error}" if op.error else "")]
            lines += [f"  step {s.idx} {s.name:<15} {s.status}" for s in op.steps]
            lines += [f"  event {e.time} {e.kind} {e.data.get('value', '')}" for e in events]
            emit({"operation": op, "events": events}, lines)
            return
        ops = store.list(type=type_, limit=limit)
    emit({"operations": ops}, [f"{op.id}  {op.type:<16} {op.status:<14} {op.started}"
                               + (f"  {op.duration_s:.1f} s" if op.duration_s is not None else "")
                               + (f"  ref {op.ref}" if op.ref else "") for op in ops] or ["no operations recorded"])


def register(app: typer.Typer) -> None:
    app.add_typer(migrate_app, name="migrate")
    app.command("history")(history_command)
