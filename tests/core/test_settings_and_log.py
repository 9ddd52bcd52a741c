"""Settings are read from text by each field's type, and every logged event is one masked JSON line
with its level, UTC timestamp and the run's command and pid."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from mobius import log
from mobius.config import SettingError, Settings


def test_settings_convert_text_by_type_and_explicit_values_win_over_the_environment() -> None:
    environ = {"MOBIUS_BACKUP_KEEP": "9", "mobius_golden_per_os": "Yes", "MOBIUS_HEALTH_TIMEOUT_S": " 2.5 ",
               "MOBIUS_NOT_A_SETTING": "x", "OTHER_BACKUP_KEEP": "1"}
    settings = Settings.read({"backup_keep": "3", "executor_workers": None}, environ=environ)
    assert settings.backup_keep == 3  # the .env value passed in beats the environment, as before
    assert settings.golden_per_os is True and settings.health_timeout_s == 2.5
    assert settings.executor_workers is None and settings.library_dir == "uploads"
    assert Settings.read({}, environ={"MOBIUS_BACKUP_KEEP": "9"}).backup_keep == 9
    assert Settings.read({"golden_per_os": "off"}, environ={}).golden_per_os is False


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("backup_keep", "many", "whole number"), ("health_interval_s", "soon", "number"),
    ("golden_per_os", "maybe", "true or false"), ("env", "moon/../x", "environment name"),
    ("executor_workers", "", "whole number"), ("backup_keep", None, "must be set")])
def test_a_value_that_does_not_fit_names_its_setting(name: str, value: str | None, reason: str) -> None:
    with pytest.raises(SettingError) as caught:
        Settings.read({name: value}, environ={})
    assert caught.value.name == name and reason in caught.value.reason


def test_settings_repr_masks_secrets() -> None:
    settings = Settings.read({"api_token": "tok-123", "database_url": "postgresql://u:hunter2@h/db"}, environ={})
    assert "tok-123" not in repr(settings) and "hunter2" not in repr(settings)
    assert settings.to_dict()["api_token"] == "tok-123"


def test_bad_typed_setting_in_env_file_is_one_line_exit_1(mobius, sample_workspace: Path) -> None:
    env = sample_workspace / ".env"
    env.write_text(env.read_text() + "MOBIUS_BACKUP_KEEP=many\n")
    proc = mobius("config", "show", "-w", str(sample_workspace))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid setting MOBIUS_BACKUP_KEEP: should be a whole number" in proc.stderr


def test_an_event_is_one_masked_json_line_with_level_time_command_and_pid(tmp_path: Path) -> None:
    log.configure(command="test run")
    path = log.attach_log_file(tmp_path / "logs", "test run")
    try:
        log.get_logger().info("demo.done", url="postgresql://u:hunter2@h/db", files=3, command="override")
        log.get_logger().debug("demo.detail")  # below the file sink's level
    finally:
        log._sinks.file.close()
        log._sinks.file = None
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "demo.done" and event["level"] == "info" and event["files"] == 3
    assert event["command"] == "override" and event["pid"] == os.getpid()  # an event's own field wins
    assert event["url"] == "postgresql://u:****@h/db" and "hunter2" not in lines[0]
    stamp = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60
