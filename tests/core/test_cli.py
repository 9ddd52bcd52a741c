"""The CLI contract every command shares: global options anywhere, one JSON object, one error line."""

from __future__ import annotations

import json
from pathlib import Path

from mobius.cli.context import lift_global_options


def test_global_options_are_lifted_wherever_they_stand() -> None:
    before, rest_before = lift_global_options(["--workspace", "W", "--json", "backup", "create"])
    after, rest_after = lift_global_options(["backup", "create", "--workspace=W", "--json", "-v"])
    assert rest_before == rest_after == ["backup", "create"]
    assert before.workspace_option == after.workspace_option == "W"
    assert before.json and after.json
    assert after.verbosity == 1


def test_options_after_double_dash_are_left_alone() -> None:
    ctx, rest = lift_global_options(["x", "--", "--json"])
    assert not ctx.json
    assert rest == ["x", "--", "--json"]


def test_config_show_same_result_before_and_after_subcommand(mobius, sample_workspace: Path) -> None:
    code1, first = mobius.json("--workspace", str(sample_workspace), "config", "show")
    proc = mobius("config", "show", "--workspace", str(sample_workspace), "--json")
    assert code1 == proc.returncode == 0
    assert json.loads(proc.stdout) == first
    assert first["workspace"] == str(sample_workspace)


def test_config_show_reports_source_and_masks_password(mobius, sample_workspace: Path) -> None:
    url = "postgresql://mobius:hunter2@db.example/mobius"
    code, out = mobius.json("config", "show", "-w", str(sample_workspace),
                            env={"MOBIUS_DATABASE_URL": url, "MOBIUS_ENV": "staging"})
    assert code == 0
    rows = {row["name"]: row for row in out["settings"]}
    assert rows["MOBIUS_DATABASE_URL"]["value"] == "postgresql://mobius:****@db.example/mobius"
    assert rows["MOBIUS_DATABASE_URL"]["source"] == "environment"
    assert rows["MOBIUS_ENV"] == {"name": "MOBIUS_ENV", "value": "staging", "source": "environment"}
    assert rows["MOBIUS_LIBRARY_DIR"]["source"] == str(sample_workspace / ".env")
    assert "hunter2" not in json.dumps(out)


def test_invalid_setting_is_one_line_exit_1(mobius, sample_workspace: Path) -> None:
    (sample_workspace / ".env").write_text("MOBIUS_ENV=moon/../x\n")
    proc = mobius("config", "show", "-w", str(sample_workspace))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "MOBIUS_ENV" in proc.stderr and "Traceback" not in proc.stderr


def test_config_set_refuses_bad_value_and_leaves_env_untouched(mobius, sample_workspace: Path) -> None:
    env = sample_workspace / ".env"
    before = env.read_bytes()
    proc = mobius("config", "set", "MOBIUS_ENV", "moon/../x", "-w", str(sample_workspace))
    assert proc.returncode == 1
    assert env.read_bytes() == before
    proc = mobius("config", "set", "env", "production", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert "MOBIUS_ENV=production" in env.read_text().splitlines()
    assert env.read_text().startswith("# Mobius workspace settings")


def test_unknown_option_is_input_error_exit_1(mobius, tmp_path: Path) -> None:
    proc = mobius("config", "show", "--no-such-option")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr


def test_errors_under_json_still_print_one_object(mobius, sample_workspace: Path) -> None:
    (sample_workspace / ".env").write_text("MOBIUS_ENV=moon/../x\n")
    code, out = mobius.json("config", "show", "-w", str(sample_workspace))
    assert code == 1
    assert out["ok"] is False and out["exit_code"] == 1


def test_every_run_appends_json_lines_to_workspace_logs(mobius, sample_workspace: Path) -> None:
    before = set((sample_workspace / "logs").iterdir())
    assert mobius("config", "show", "-w", str(sample_workspace)).returncode == 0
    new = set((sample_workspace / "logs").iterdir()) - before
    assert len(new) == 1
    events = [json.loads(line) for line in new.pop().read_text().splitlines()]
    assert events[-1]["event"] == "command.finished" and events[-1]["exit_code"] == 0


def test_log_format_json_writes_json_lines_on_stderr(mobius, sample_workspace: Path) -> None:
    proc = mobius("config", "show", "-w", str(sample_workspace), "--log-format", "json")
    assert proc.returncode == 0
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert events and events[-1]["event"] == "command.finished"


def test_help_lists_exit_codes(mobius) -> None:
    proc = mobius("--help")
    assert proc.returncode == 0
    assert "5 not enough disk space" in " ".join(proc.stdout.split())


def test_init_sample_creates_layout_and_library(mobius, tmp_path: Path) -> None:
    code, out = mobius.json("init", str(tmp_path / "w"), "--sample")
    assert code == 0, out
    root = tmp_path / "w"
    for name in (".env", "uploads", "backups", "games", "out", "tests/golden", "logs", "state"):
        assert (root / name).exists(), name
    files = [p for p in (root / "uploads").rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".jpg" for p in files)
    assert any(p.suffix == ".mp4" for p in files)
    assert any(" " in p.name for p in files) and any(not p.name.isascii() for p in files)
    assert {"sushi-go", "love-letter", "hanamikoji"} <= {p.name for p in (root / "uploads").iterdir()}
