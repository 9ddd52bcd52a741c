"""Shared options, declared once: every command that changes something takes -y/--yes and --dry-run, and a dry
run changes no file; the root help lists every command without importing the command modules."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from tests.core.conftest import NeedsCache

from mobius.cli.app import COMMANDS, app
from mobius.cli.context import lift_global_options
from mobius.cli.options import CHANGES

CLI = Path(__file__).resolve().parents[2] / "src" / "mobius" / "cli"
SHARED = ("--yes", "-y", "--dry-run", "--workers", "--executor", "--json")

# Commands that change nothing a person keeps (they read, check, report or serve). Every other command must be
# marked @changes: a new command that writes something and is not marked fails here.
READS = {
    "version", "config show", "backup verify", "backup test-restore", "backup list", "media verify",
    "media migrations", "db status", "db verify", "db check", "db validate", "pipeline test", "golden check",
    "golden check-all", "migrate plan", "migrate status", "migrate report", "history", "serve", "library dupes",
    "library similar", "library metrics", "env list", "env show", "env diff", "env validate", "releases",
    "notify test",  # sends one message to each destination; changes no workspace data (only records attempts)
}


def _leaf_commands() -> dict[str, object]:
    """Every command a user can run, by its path ("db migrate"), through the group's own API (lazy or not)."""
    found: dict[str, object] = {}

    def walk(command, path: list[str]) -> None:  # noqa: ANN001
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


LEAVES = _leaf_commands()
CHANGING = sorted(name for name, command in LEAVES.items() if getattr(command.callback, CHANGES, False))


def _plans_its_dry_run(command) -> bool:  # noqa: ANN001
    """The command's body takes `dry_run` (it plans and checks); else `@changes` describes the run itself."""
    return "dry_run" in inspect.signature(inspect.unwrap(command.callback)).parameters


def _example(command) -> list[str]:  # noqa: ANN001
    """The first `Example:` line's mobius command, as argv after `mobius` (up to a shell operator or comment)."""
    line = next(line.split("Example:", 1)[1] for line in (command.help or "").splitlines() if "Example:" in line)
    words = shlex.split(line.split("#", 1)[0].split("&&", 1)[0].split("|", 1)[0])
    assert words[0] == "mobius"
    return words[1:]


def _tree_digest(root: Path) -> dict[str, str]:
    """Every entry under root: its bytes' sha256 (or link target) and its mode."""
    digest: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = os.readlink(path) if path.is_symlink() else \
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        digest[str(path.relative_to(root))] = f"{kind} {oct(info.st_mode)}"
    return digest


def test_every_command_is_classified() -> None:
    unknown = sorted(set(LEAVES) - set(READS) - set(CHANGING))
    assert not unknown, f"mark these commands @changes (mobius.cli.options) or list them in READS: {unknown}"
    assert not set(READS) & set(CHANGING), "a command cannot both read only and change something"
    assert not set(READS) - set(LEAVES), f"READS names commands that do not exist: {set(READS) - set(LEAVES)}"


def test_every_changing_command_shows_yes_and_dry_run() -> None:
    for name in CHANGING:
        options = {opt for param in LEAVES[name].params for opt in [*param.opts, *param.secondary_opts]}
        assert {"--yes", "-y", "--dry-run"} <= options, f"mobius {name} lacks -y/--yes or --dry-run"


def test_shared_options_are_declared_only_in_options_py() -> None:
    """`typer.Option(..., "--workers", ...)` and friends appear once, in cli/options.py."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("Option", "Argument"):
                names = {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
                found += [f"{path.name}:{node.lineno} {n}" for n in names & set(SHARED)]
    assert not found, f"declare these with mobius.cli.options instead: {found}"


def test_global_options_are_one_table_and_one_parser() -> None:
    ctx, rest = lift_global_options(["db", "migrate", "-y", "--env", "staging", "--log-format=json", "-vv"])
    assert rest == ["db", "migrate", "-y"]
    assert (ctx.env_name, ctx.log_format, ctx.verbosity) == ("staging", "json", 2)


def test_root_help_lists_every_command_without_importing_them() -> None:
    code = ("import sys\nfrom mobius.cli.app import run\ncode = run(['--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('mobius.cli.') or m == 'mobius.config'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    help_text, modules = proc.stdout.rsplit("\n", 2)[0], proc.stdout.rsplit("\n", 2)[1]
    for name in COMMANDS:
        assert f"\n  {name} " in help_text, f"`mobius --help` does not list {name}"
    loaded = set(json.loads(modules.replace("'", '"')))
    assert not loaded & {entry.module for entry in COMMANDS.values()}, loaded
    assert "mobius.config" not in loaded


def test_one_line_helps_in_the_table_are_the_commands_own() -> None:
    for name, entry in COMMANDS.items():
        command = LEAVES.get(name) or typer.main.get_command(app).get_command(None, name)
        assert command.get_short_help_str(10**6) == entry.help, f"COMMANDS[{name!r}].help differs from its help"


def test_every_command_a_module_registers_is_in_the_table() -> None:
    """A command added to a module's register() but not to COMMANDS would be missing from `mobius --help`."""
    for module_name in {entry.module for entry in COMMANDS.values()}:
        holder = typer.Typer()
        importlib.import_module(module_name).register(holder)
        names = {info.name for info in holder.registered_commands} | {info.name for info in holder.registered_groups}
        assert names, module_name
        assert {(name, COMMANDS[name].module if name in COMMANDS else None) for name in names} == \
            {(name, module_name) for name in names}, f"{module_name} registers commands COMMANDS lacks: {names}"


def test_db_migrate_takes_short_yes(mobius, sample_workspace: Path) -> None:
    proc = mobius("db", "migrate", "-y", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr


# Dry runs that still change a file, each in a library another change owns; strict: fixing one fails here
# until its line is removed.
DRY_RUN_CHANGES: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=DRY_RUN_CHANGES[n], strict=True))
                                  if n in DRY_RUN_CHANGES else n for n in CHANGING])
def test_dry_run_with_yes_is_accepted_and_changes_no_file(name: str, mobius, needs_cache: NeedsCache) -> None:
    """A command that plans its dry run gets what its example needs first; one that does not never runs its body."""
    command = LEAVES[name]
    # a fresh sample workspace, after the help's `Needs first:` commands (each exited 0) for a planned dry run
    planned = _plans_its_dry_run(command)
    sample_workspace = needs_cache.after(command.help or "") if planned else needs_cache.workspace(())
    argv = _example(command)
    before = _tree_digest(sample_workspace)
    proc = mobius(*argv, "-y", "--dry-run", "--json", "-w", str(sample_workspace), cwd=sample_workspace)
    assert "No such option" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, f"mobius {shlex.join(argv)} -y --dry-run: {proc.stderr}"
    out = json.loads(proc.stdout)
    assert out["ok"] is True
    assert _tree_digest(sample_workspace) == before, f"mobius {name} --dry-run changed the workspace"


def test_a_mistyped_command_gets_a_suggestion_from_every_command(mobius) -> None:
    proc = mobius("bakup")
    assert proc.returncode == 1
    assert "Did you mean 'backup'?" in proc.stderr  # backup's module is not imported to suggest it


def test_a_group_alone_prints_its_help_not_an_escaped_error(mobius) -> None:
    proc = mobius("db")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: mobius db") and "\n  migrate " in proc.stdout
    assert proc.stderr == ""


def test_a_described_dry_run_shows_no_secret(mobius, sample_workspace: Path) -> None:
    proc = mobius("config", "set", "MOBIUS_API_TOKEN", "s3cr3t-value", "--dry-run", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t-value" not in proc.stdout + proc.stderr and "MOBIUS_API_TOKEN" in proc.stdout
    code, out = mobius.json("db", "sync", "--from", "postgresql://u:hunter2@db.example/a", "--to",
                            "sqlite:///copy.db?password=zz", "--dry-run", "-w", str(sample_workspace))
    assert code == 0
    assert "hunter2" not in json.dumps(out) and "zz" not in json.dumps(out)
    assert out["options"]["from_url"] == "postgresql://u:****@db.example/a"


def test_a_dry_run_leaves_the_workspace_upkeep_to_the_next_real_run(mobius, sample_workspace: Path) -> None:
    """A planned dry run loads the workspace without its sweep, mode fixes and log file; a real run does them."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is gone: its temp file is a leftover
    leftover = sample_workspace / "backups" / f".mobius-tmp-{dead.pid}-x"
    leftover.write_bytes(b"half a dump")
    logs = sorted((sample_workspace / "logs").glob("*")) if (sample_workspace / "logs").is_dir() else []
    proc = mobius("db", "migrate", "--dry-run", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert leftover.exists()
    assert (sorted((sample_workspace / "logs").glob("*")) if (sample_workspace / "logs").is_dir() else []) == logs
    proc = mobius("db", "status", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert not leftover.exists()
