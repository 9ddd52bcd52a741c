"""Issue 23 item 21: the workspace `.env` reader reads every form python-dotenv reads, the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from mobius.safety.envfile import read_env_file, set_env_values

FORMS = {
    "quoted with a trailing comment": 'MOBIUS_BACKUP_KEEP="7" # keep a week\n',
    "single-quoted with a trailing comment": "MOBIUS_DATABASE_URL='sqlite:///p.db'   # prod\n",
    "bare with a trailing comment": "A=plain # note\n",
    "bare with a hash inside": "A=pass#word\n",
    "export": "export MOBIUS_ENV=staging\n",
    "export with quotes and spaces": "export   A = \"x y\"  \n",
    "multi-line double-quoted": 'A="line one\nline two"\nB=after\n',
    "multi-line single-quoted": "A='one\n  two'\nB=2\n",
    "escapes in double quotes": 'A="tab\\there \\"q\\" back\\\\slash"\n',
    "escapes in single quotes": "A='it\\'s \\\\ raw \\n'\n",
    "no interpolation": "HOME_COPY=${HOME}/x\nB=\"$HOME\"\n",
    "empty values": "A=\nB=''\nC=\"\"\n",
    "duplicates: the last wins": "A=1\nA=2\n",
    "comments and blank lines": "# top\n\n  # indented\nA=1\n\n",
    "CRLF line ends": "A=1\r\nB=\"two\"\r\n",
    "CRLF inside a multi-line value": "A=\"one\r\ntwo\"\r\nB=3\r\n",
    "no final newline": "A=last",
    "spaces around =": "A = spaced value  \n",
    "quoted key": "'A'=1\n",
    "equals in the value": "A=postgresql://u:p@h/db?x=1&y=2\n",
}


@pytest.mark.parametrize("text", FORMS.values(), ids=FORMS.keys())
def test_reads_every_form_as_python_dotenv_does(tmp_path: Path, text: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(text.encode("utf-8"))
    expected = {key: value for key, value in dotenv_values(env, interpolate=False).items() if value is not None}
    assert read_env_file(env) == expected


@pytest.mark.parametrize("text", FORMS.values(), ids=FORMS.keys())
def test_an_edit_keeps_every_other_setting_as_python_dotenv_reads_it(tmp_path: Path, text: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(text.encode("utf-8"))
    before = dotenv_values(env, interpolate=False)
    set_env_values(env, {"MOBIUS_NEW": "a b 'c' # d", "B": None})
    after = dotenv_values(env, interpolate=False)
    before.pop("B", None)
    assert after == {**before, "MOBIUS_NEW": "a b 'c' # d"}


def test_a_quoted_number_with_a_comment_is_a_setting(mobius, ws: Path) -> None:
    (ws / ".env").write_text('MOBIUS_BACKUP_KEEP="7" # keep a week\n'
                             'MOBIUS_LIBRARY_DIR="media" # prod\n')
    code, shown = mobius.json("config", "show", "-w", str(ws))
    assert code == 0, shown
    values = {row["name"]: row["value"] for row in shown["settings"]}
    assert values["MOBIUS_BACKUP_KEEP"] == 7
    assert values["MOBIUS_LIBRARY_DIR"] == "media"
