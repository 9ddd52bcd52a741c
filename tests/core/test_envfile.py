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
    assert previous == {"MOBIUS_LIBRARY_DIR": "uploads"}
    assert lines == [
        "# Mobius settings",
        "MOBIUS_ENV=staging",
        "",
        "# where the library lives",
        'MOBIUS_LIBRARY_DIR="/new/media path"',
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
