"""Issue 23 item 8: a password with `/` or a space is masked everywhere; a field named `key` is kept."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from mobius.api.app import create_app
from mobius.config import load_workspace
from mobius.records import RecordStore

PASSWORD = "Hunt/R2 pw9"
URL = f"postgresql://app2:{PASSWORD}@127.0.0.1:1/db"


def test_a_password_with_a_slash_and_a_space_is_never_shown(mobius, ws: Path) -> None:
    (ws / "environments").mkdir()
    (ws / "environments" / "staging.env").write_text(f"MOBIUS_DATABASE_URL='{URL}'\n")
    (ws / "environments" / "production.env").write_text("MOBIUS_DATABASE_URL='postgresql://app2:other pw@h/db'\n")
    outputs = []
    for args in (["config", "show"], ["--env", "staging", "config", "show"], ["env", "show", "staging"],
                 ["env", "diff", "staging", "production"]):
        for json_flag in ([], ["--json"]):
            proc = mobius(*args, *json_flag, "-w", str(ws))
            assert proc.returncode in (0, 2), proc.stderr
            outputs.append(proc.stdout + proc.stderr)
    shown = "\n".join(outputs)
    assert "app2:****@127.0.0.1:1/db" in shown
    for piece in (PASSWORD, "Hunt", "pw9", "other pw"):
        assert piece not in shown


def test_records_mask_url_passwords_and_keep_a_field_named_key(ws: Path) -> None:
    workspace = load_workspace(ws)
    with RecordStore.of(workspace) as store:
        op_id = store.start("db.check", {"database": URL, "key": "id", "table": "games",
                                         "MOBIUS_API_TOKEN": "tok-123"})
        store.finish(op_id, "completed", {"message": f"could not reach {URL}: refused"})
    stored = sqlite3.connect(workspace.state / "operations.sqlite").execute(
        "SELECT params || result FROM operations WHERE id = ?", (op_id,)).fetchone()[0]
    assert PASSWORD not in stored and "pw9" not in stored and "tok-123" not in stored
    answer = TestClient(create_app(workspace)).get(f"/api/operations/{op_id}")
    assert answer.status_code == 200
    body = json.dumps(answer.json())
    assert "pw9" not in body and "Hunt" not in body
    assert answer.json()["params"]["key"] == "id"
    assert answer.json()["params"]["database"] == "postgresql://app2:****@127.0.0.1:1/db"
    assert answer.json()["params"]["MOBIUS_API_TOKEN"] == "****"


URLS = ["postgresql://app2:Hunt/R2 pw9@127.0.0.1:5432/db", "postgresql+psycopg://u:p%40ss:w@h/db?sslmode=require",
        "mysql://root:a b/c d@localhost", "postgresql://u:@h/db", "postgresql://u@h/db?password=x/y&host=h",
        "sqlite:////tmp/a b/mobius.db", "s3://bucket/prefix"]


def test_masked_urls_parse_as_the_same_place_without_the_password() -> None:
    from sqlalchemy.engine import make_url

    from mobius.config import mask_text

    for url in URLS:
        parsed, masked = make_url(url), make_url(mask_text(url))
        assert (masked.drivername, masked.username, masked.host, masked.port, masked.database) == (
            parsed.drivername, parsed.username, parsed.host, parsed.port, parsed.database), url
        assert masked.password == (None if parsed.password is None else "****"), url
        assert "x/y" not in mask_text(url)
    # a URL make_url cannot parse (a port that is not a number) is read by urllib: userinfo to the last @
    assert mask_text("http://u:p@ss@host:abc/x") == "http://u:****@host:abc/x"
