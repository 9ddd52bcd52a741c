"""`.env` edits keep what a person wrote and never duplicate a key."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.envfile import read_env_file, set_env_values

ORIGINAL = """# Mobius settings
MOBIUS_ENV=staging

# where the library lives
MOBIUS_LIBRARY_DIR=uploads   # inline note
OTHER_TOOL=keep-me
MOBIUS_LIBRARY_DIR=/old/duplicate
"""


def test_set_replaces_in_place_keeps_comments_and_removes_duplicates(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ORIGINAL)
    previous = set_env_values(env, {"MOBIUS_LIBRARY_DIR": "/new/media path"})
    lines = env.read_text().splitlines()
    assert previous == {"MOBIUS_LIBRARY_DIR": "/old/duplicate"}  # the effective (last) value
    assert lines == [
        "# Mobius settings",
        "MOBIUS_ENV=staging",
        "",
        "# where the library lives",
        "MOBIUS_LIBRARY_DIR='/new/media path'",
        "OTHER_TOOL=keep-me",
    ]
    assert read_env_file(env)["MOBIUS_LIBRARY_DIR"] == "/new/media path"


def test_set_appends_new_key_and_remove_deletes_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    set_env_values(env, {"B": "2"})
    assert env.read_text() == "A=1\nB=2\n"
    previous = set_env_values(env, {"A": None})
    assert previous == {"A": "1"}
    assert env.read_text() == "B=2\n"


def test_set_leaves_no_temp_file_and_keeps_inode_replaced(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    before = os.stat(env).st_ino
    set_env_values(env, {"A": "2"})
    assert os.stat(env).st_ino != before  # replaced by rename, not rewritten in place
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=200, deadline=None)
@given(value=values)
def test_any_value_round_trips(tmp_path_factory, value: str) -> None:
    env = tmp_path_factory.mktemp("env") / ".env"
    env.write_text("# keep\nX=1\n")
    set_env_values(env, {"MOBIUS_LIBRARY_DIR": value})
    assert read_env_file(env)["MOBIUS_LIBRARY_DIR"] == value
    assert env.read_text().startswith("# keep\nX=1\n")


def test_duplicate_key_one_rule_for_settings_and_writers(tmp_path: Path) -> None:
    """The settings loader and the writers agree on which duplicate is in effect (the last)."""
    from mobius.config import load_workspace, set_setting

    (tmp_path / ".env").write_text("MOBIUS_LIBRARY_DIR=first\nMOBIUS_LIBRARY_DIR=second\n")
    ws = load_workspace(tmp_path)
    assert ws.settings.library_dir == "second"
    change = set_setting(ws, "MOBIUS_LIBRARY_DIR", "third")
    assert change.previous == "second"
    change.undo()
    assert load_workspace(tmp_path).settings.library_dir == "second"
    assert (tmp_path / ".env").read_text() == "MOBIUS_LIBRARY_DIR=second\n"


def test_values_read_back_exactly_without_interpolation(tmp_path: Path) -> None:
    from mobius.config import load_workspace, set_setting

    (tmp_path / ".env").write_text("")
    for value in ["../t${HOME}x", "$HOME", "it's", "a\\b", 'q"x', "x # y", " lead"]:
        set_setting(load_workspace(tmp_path), "MOBIUS_LIBRARY_DIR", value)
        assert load_workspace(tmp_path).settings.library_dir == value


def test_control_characters_are_refused_and_nothing_written(tmp_path: Path) -> None:
    import pytest

    from mobius.config import load_workspace, set_setting
    from mobius.errors import InputError

    env = tmp_path / ".env"
    env.write_text("MOBIUS_ENV=staging\n")
    with pytest.raises(InputError, match="control character"):
        set_setting(load_workspace(tmp_path), "MOBIUS_LIBRARY_DIR", "uploads\nMOBIUS_DATABASE_URL=sqlite:///evil.db #")
    assert env.read_text() == "MOBIUS_ENV=staging\n"


def test_edit_keeps_the_file_mode(tmp_path: Path) -> None:
    from mobius.config import load_workspace, set_setting

    env = tmp_path / ".env"
    env.write_text("MOBIUS_ENV=staging\n")
    env.chmod(0o600)
    set_setting(load_workspace(tmp_path), "MOBIUS_BACKUP_KEEP", "3")
    assert env.stat().st_mode & 0o777 == 0o600
