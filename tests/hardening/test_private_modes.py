"""Issue 23 item 22: state/ and logs/ are 0700, mobius.db and environments/*.env 0600, new or old workspaces."""

from __future__ import annotations

import stat
from pathlib import Path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _private(ws: Path) -> dict[str, int]:
    return {"state": _mode(ws / "state"), "logs": _mode(ws / "logs"), "mobius.db": _mode(ws / "mobius.db"),
            "staging.env": _mode(ws / "environments" / "staging.env"), ".env": _mode(ws / ".env")}


EXPECTED = {"state": 0o700, "logs": 0o700, "mobius.db": 0o600, "staging.env": 0o600, ".env": 0o600}


def test_a_new_workspace_keeps_secrets_and_evidence_owner_only(mobius, tmp_path: Path) -> None:
    ws = tmp_path / "fresh"
    assert mobius("init", str(ws)).returncode == 0
    (ws / "environments").mkdir()
    (ws / "environments" / "staging.env").write_text("MOBIUS_LIBRARY_DIR=stg\n")
    (ws / "environments" / "staging.env").chmod(0o644)
    assert mobius("config", "show", "-w", str(ws)).returncode == 0
    assert _private(ws) == EXPECTED


def test_an_existing_workspace_is_made_private_when_loaded(mobius, ws: Path) -> None:
    (ws / "environments").mkdir()
    (ws / "environments" / "staging.env").write_text("MOBIUS_LIBRARY_DIR=stg\n")
    for path, mode in (("state", 0o755), ("logs", 0o755), ("mobius.db", 0o644), ("environments/staging.env", 0o644),
                       (".env", 0o600)):
        (ws / path).chmod(mode)
    proc = mobius("config", "show", "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert _private(ws) == EXPECTED
