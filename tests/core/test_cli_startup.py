"""The CLI's start-up: plain option values are coerced without pydantic, exactly as Typer's own adapters coerce them.

`mobius.cli.typer_coercion` replaces a private Typer method (see its docstring); these tests fail loudly if Typer
moves that API, if a converted value differs from Typer's, or if pydantic creeps back into a start-up.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from mobius.cli import typer_coercion
from mobius.cli.app import COMMANDS, LazyGroup, app

VALUES: dict[str, list[Any]] = {
    "text": ["a", "", " spaced ", "\udcff", "a\x00b", b"bytes", 7, None],
    "flag": [True, False, "true", "no", "", "maybe", 1],
    "count": ["12", " 12", "+3", "-4", "012", "-0", "1_000", "0x10", "1e3", "12.0", "١٢", "", "9" * 30, 5, True,
              2.0, 2.5],
    "ratio": ["0.97", "3", "-0.5", " 1", "1e3", "inf", "nan", ".5", "5.", "1_0.5", "١٢", "x", "", 3, True, 0.25,
              10**20],
    "where": ["", "a/b", "/tmp", "a\x00b", "\udcff", "~", "-", Path("p"), 3],
    "names": [("a", "b"), [], ["a"], ("a", 1)],
}


def _command() -> Any:
    """A command with one parameter of every type Mobius's options use."""
    holder = typer.Typer()

    @holder.command()
    def command(names: list[str] = typer.Argument(None), text: str = "x", flag: bool = False, count: int = 1,
                ratio: float = 1.0, where: Path = Path(".")) -> None:
        """Every plain type."""

    return typer.main.get_command(holder)


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()
    shown = "nan" if isinstance(result, float) and math.isnan(result) else result
    return type(result).__name__, shown


def test_typer_still_has_what_the_plain_coercion_replaces() -> None:
    assert typer_coercion.install() is True, "typer moved its coercion internals: see mobius/cli/typer_coercion.py"
    assert getattr(_TyperParameter.get_runtime_param, "mobius_plain", False)


@pytest.mark.parametrize("name", sorted(VALUES))
def test_plain_coercion_gives_what_typers_adapter_gives(name: str) -> None:
    command = _command()
    ctx = command.make_context("command", [])
    param = next(p for p in command.params if p.name == name)
    assert typer_coercion.is_plain(param.type_descriptor)
    ours = param.get_runtime_param()
    assert isinstance(ours, typer_coercion.PlainRuntimeParam)
    theirs = build_runtime_param(param.type_descriptor)
    for value in VALUES[name]:
        assert _outcome(ours, value, param, ctx) == _outcome(theirs, value, param, ctx), (name, value)


def _text_params() -> tuple[Any, Any, list[tuple[Any, Any, Any]]]:
    """The command, a context, and (parameter, ours, Typer's) for each parameter that takes one text value."""
    command = _command()
    return command, command.make_context("command", []), [
        (p, p.get_runtime_param(), build_runtime_param(p.type_descriptor)) for p in command.params
        if p.name in ("text", "count", "ratio", "where")]


_TEXT_PARAMS = _text_params()
NUMERIC_TEXT = st.one_of(st.text(), st.from_regex(r"\A[ +-]?[0-9_]{0,20}(\.[0-9_]{0,20})?([eE][+-]?[0-9]{1,3})?\Z"),
                         st.floats(allow_nan=False).map(repr), st.integers().map(str))


@settings(max_examples=300, deadline=None)
@given(text=NUMERIC_TEXT)
def test_any_text_gets_typers_result_or_typers_message(text: str) -> None:
    command, ctx, pairs = _TEXT_PARAMS
    for param, ours, theirs in pairs:
        assert _outcome(ours, text, param, ctx) == _outcome(theirs, text, param, ctx), (param.name, text)


def test_other_types_keep_typers_adapter() -> None:
    holder = typer.Typer()

    @holder.command()
    def command(level: int = typer.Option(1, min=0, max=3)) -> None:
        """A ranged option."""

    param = typer.main.get_command(holder).params[0]
    assert not typer_coercion.is_plain(param.type_descriptor)
    assert not isinstance(param.get_runtime_param(), typer_coercion.PlainRuntimeParam)


def test_every_mobius_option_is_plain() -> None:
    """A new option of another type still works (Typer's adapter), but makes its command import pydantic at every
    start: give it a plain type, or extend `typer_coercion` with a test here."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    for name in COMMANDS:
        root.get_command(None, name)
    stack, seen = [root], []
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        seen += [f"{command.name} {p.name}" for p in command.params if not typer_coercion.is_plain(p.type_descriptor)]
    assert not seen


@pytest.mark.parametrize("argv", [["version"], ["golden", "check", "--help"], ["env", "promote", "--help"],
                                  ["backup", "create", "--help"], ["media", "migrate", "--help"]])
def test_a_start_up_imports_no_pydantic(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mobius", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in imported
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core")}


def test_a_bad_value_gets_typers_own_message(mobius) -> None:
    """The value Typer rejects reaches Typer's adapter: its message, exit 1."""
    proc = mobius("history", "--limit", "0x10")
    assert proc.returncode == 1
    assert "Invalid value for '--limit': Input should be a valid integer, unable to parse string as an integer" \
        in proc.stderr


def test_a_backup_create_imports_no_plan_reader_and_only_the_snapshot_writer(sample_workspace: Path) -> None:
    """`mobius backup create` (a snapshot, run as a one-step plan) needs neither yaml (only a plan file is YAML) nor
    the backup modules of the other commands (copy, export, prune, restores, the S3 repository)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mobius", "backup", "create", "--json"],
                          cwd=sample_workspace, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"ok": true' in proc.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"mobius.backup.repository", "mobius.ops.plan"} <= imported
    unneeded = {"yaml", "mobius.ops.plan_yaml"} | {f"mobius.backup.{m}" for m in (
        "copy", "export", "prune", "remote", "store", "object_restore", "snapshot_restore", "trial_restore",
        "repository_check", "restore")}
    assert not imported & unneeded
