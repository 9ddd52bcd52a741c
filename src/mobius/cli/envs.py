"""`mobius env ...`, `mobius deploy`, `mobius rollback`, `mobius releases`: see mobius.envs."""

from __future__ import annotations

import typer

from mobius.cli.context import current
from mobius.cli.options import DRY_RUN, YES, changes
from mobius.cli.output import confirm, emit, say
from mobius.errors import EXIT_VERIFY

env_app = typer.Typer(help="Named environments: list, show, diff, validate, promote.", no_args_is_help=True)


def _envs():  # noqa: ANN202
    """The envs library, imported when one of its commands runs."""
    from mobius import envs

    return envs


def _root():  # noqa: ANN202
    from mobius.config import find_workspace_root

    return find_workspace_root(current.workspace_option)


def _emit_report(result: dict, lines: list[str], ok: bool, message: str, code: int = EXIT_VERIFY) -> None:
    """Print the result; on failure under --json one object with ok false, then the exit code."""
    if ok:
        emit(result, lines)
        return
    if current.json:
        emit({**result, "ok": False, "exit_code": code, "error": message})
    else:
        emit({}, lines)
    import sys

    sys.stderr.write(f"mobius: error: {message}\n")
    raise typer.Exit(code)


@env_app.command("list")
def list_command() -> None:
    """The environments of this workspace (environments/*.env) and the places each owns.

    Example: mobius env list
    Needs first: mobius env new staging
    """
    infos = _envs().list_environments(_root())
    lines = [f"{len(infos)} environment(s)"] + [
        f"  {i.name:<12} library {i.library}  database {i.database}  backups {i.backups}"
        + (f"  service {i.service_url}" if i.service_url else "") for i in infos]
    emit({"environments": infos}, lines)


@env_app.command("new")
@changes
def new_command(name: str = typer.Argument(..., help="Environment name, e.g. staging"),
                copy: bool = typer.Option(False, "--copy", help="Start as a verified copy of the workspace's "
                                                                "database and library.")) -> None:
    """Create environments/NAME.env with a database, library and backups of its own under environments/NAME/.

    Example: mobius env new staging --copy
    """
    from mobius.envs.create import create_environment

    made = create_environment(_root(), name, copy=copy, progress=current.progress())
    copied = (f"; copied {sum(made.copied_rows.values())} rows and {made.copied_files} files, verified"
              if made.copied_rows is not None else "")
    emit(made, [f"environment {made.name}: {made.file}{copied}", f"  database {made.database_url}",
                f"  library  {made.library}", f"  backups  {made.backups}"])


@env_app.command("show")
def show(name: str = typer.Argument(..., help="Environment name, e.g. staging")) -> None:
    """One environment's settings file (secrets masked) and its effective places.

    Example: mobius env show production
    Needs first: mobius env new production
    """
    shown = _envs().show_environment(_root(), name)
    info = shown["environment"]
    lines = [f"environment {info.name} ({info.file})", f"  library  {info.library}", f"  database {info.database}",
             f"  backups  {info.backups}", f"  service  {info.service_url or 'not configured'}"]
    lines += [f"  {k}={v}" for k, v in shown["values"].items()]
    emit(shown, lines)


@env_app.command("diff")
def diff(a: str = typer.Argument(..., help="First environment"), b: str = typer.Argument(..., help="Second")) -> None:
    """Keys only in A, only in B, changed; secrets only as a sha256 fingerprint. Exit 0 same, 2 differs.

    Example: mobius env diff staging production --json   # exit 2: they differ
    Needs first: mobius env new staging --copy && mobius env new production
    """
    result = _envs().diff_environments(_root(), a, b)
    emit(result.to_dict(), result.lines())
    if result.differs:
        raise typer.Exit(EXIT_VERIFY)


@env_app.command("validate")
def validate(name: str = typer.Argument(..., help="Environment name")) -> None:
    """Settings parse, folders writable, database reachable (schema version), s3 probe, free disk, codecs.

    Example: mobius env validate production
    Needs first: mobius env new production
    """
    envs = _envs()
    report = envs.validate_environment(envs.load_environment(_root(), name))
    bad = [c.name + (f" ({c.detail})" if c.detail else "") for c in report.failures()]
    _emit_report(report.to_dict(), report.lines(), not bad,
                 f"environment {name}: {len(bad)} check(s) failed: {'; '.join(bad)}")


@env_app.command("promote")
@changes
def promote(source: str = typer.Option(..., "--from", help="Environment to promote, e.g. staging"),
            target: str = typer.Option(..., "--to", help="Environment to replace, e.g. production"),
            dry_run: bool = DRY_RUN, yes: bool = YES) -> None:
    """Plan, back up the target (verified), copy the database, sync the library, carry settings, validate.

    Any failure restores the target from its backup.

    Example: mobius env promote --from staging --to production --yes
    Needs first: mobius env new staging --copy && mobius env new production
    """
    from mobius.ops.commands import promote as run_promote

    result = run_promote(_root(), source, target, dry_run=dry_run, say=say, progress=current.progress(),
                         confirm=lambda question: confirm(question, yes=yes))
    tail = ("dry run: nothing was changed" if dry_run else
            f"promoted {source} to {target} (backup {result.backup}; operation {result.operation})")
    emit(result.__dict__, tail)


def _env_workspace(env: str | None):  # noqa: ANN202
    """deploy/rollback/releases name their environment: --env (global) or the command's own --env."""
    if env is not None:
        current.env_name = env
        current._workspace = None
    ws = current.workspace()
    if ws.environment is None:
        from mobius.errors import InputError

        raise InputError("name the environment: --env NAME", hint="see `mobius env list`")
    return ws


@changes
def deploy_command(dry_run: bool = DRY_RUN,
                   no_backup: bool = typer.Option(False, "--no-backup", help="Skip the backup (recorded)."),
                   force: bool = typer.Option(False, "--force", help="Deploy despite failed preflight checks."),
                   env: str = typer.Option(None, "--env", help="Environment (same as the global --env)."),
                   resume: str = typer.Option(None, "--resume", help="Continue a killed deploy (its id, or latest) "
                                              "from its record, as `mobius migrate resume ID`.")) -> None:
    """Preflight, backup, migrations (rehearsed first), pipeline self-test, release record, restart, health gate.

    Exit 4 when the service does not become ready in time. A killed deploy continues with `--resume ID`
    (finished phases are not redone) or is undone with `mobius migrate rollback ID`.

    Example: mobius deploy --env production
    Needs first: mobius env new production --copy
    """
    from mobius.ops.commands import deploy

    if resume is not None and (dry_run or no_backup or force):
        from mobius.errors import InputError

        raise InputError("--resume continues a deploy with the options it was started with",
                         hint=f"drop --dry-run, --no-backup and --force: mobius deploy --resume {resume}")
    ws = _env_workspace(env) if resume is None or env is not None or current.env_name else current.workspace()
    result = deploy(ws, dry_run=dry_run, backup=not no_backup, force=force, resume=resume, say=say,
                    progress=current.progress())
    gate = "passed" if result.health is not None else "not configured (MOBIUS_SERVICE_URL)"
    tail = ("dry run: nothing was changed" if dry_run else
            f"deployed release {result.release} to {result.env}; health gate {gate}")
    emit(result.__dict__, tail)


@changes
def rollback_command(to: str = typer.Option(None, "--to", help="Release id to return to (see mobius releases)."),
                     archive: str = typer.Option(None, "--backup", help="Backup archive to restore instead."),
                     yes: bool = YES,
                     env: str = typer.Option(None, "--env", help="Environment (same as the global --env).")) -> None:
    """Verify the backup, back up the current state, restore library + database + settings, health gate.

    Without --to/--backup: the state before the newest release.

    Example: mobius rollback --env production --yes
    Needs first: mobius env new production --copy && mobius deploy --env production
    """
    from mobius.ops.commands import rollback

    ws = _env_workspace(env)
    result = rollback(ws, to=to, archive=archive, say=say, progress=current.progress(),
                      confirm=lambda question: confirm(question, yes=yes))
    emit(result.__dict__, f"rolled {ws.environment} back to {result.archive} (operation {result.operation}); "
                          f"the state before is in {result.pre_rollback_backup}")


def releases_command(env: str = typer.Option(None, "--env", help="Environment (same as the global --env).")) -> None:
    """Deploys and rollbacks of an environment, newest first, with the backup each one took.

    Example: mobius releases --env production --json
    Needs first: mobius env new production --copy && mobius deploy --env production
    """
    from mobius.envs.releases import list_releases

    ws = _env_workspace(env)
    found = list_releases(ws)
    emit({"env": ws.environment, "releases": found},
         [f"{len(found)} release(s) of {ws.environment}"] + [r.line() for r in found])


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(env_app, name="env")
    app.command("deploy")(deploy_command)
    app.command("rollback")(rollback_command)
    app.command("releases")(releases_command)
