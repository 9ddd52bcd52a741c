"""Issue 23 item 13: `mobius --env staging serve` serves staging's database, in every worker."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from api_support import Server, auth, prepare_workspace


def test_serve_with_env_reads_and_writes_that_environment(_sample_template: Path, tmp_path: Path) -> None:
    ws = prepare_workspace(tmp_path / "ws", _sample_template, backup=False)
    shutil.copy2(ws / "mobius.db", ws / "stg.db")
    with sqlite3.connect(ws / "stg.db") as db:
        db.execute("DELETE FROM games WHERE id NOT IN (SELECT MIN(id) FROM games)")
    (ws / "environments").mkdir()
    (ws / "environments" / "staging.env").write_text(f"MOBIUS_DATABASE_URL=sqlite:///{ws}/stg.db\n"
                                                     "MOBIUS_BACKUP_MAX_AGE_HOURS=0\n")
    default_total = sqlite3.connect(ws / "mobius.db").execute("SELECT COUNT(*) FROM games").fetchone()[0]
    assert default_total > 1
    server = Server(ws, workers=2, global_args=("--env", "staging"))
    try:
        for _ in range(6):  # both workers answer
            assert server.get("/api/games").json()["total"] == 1
        game = {"name": "Staging Only", "slug": "staging-only", "min_players": 1, "max_players": 2, "play_time": 10}
        created = server.client.post("/api/games", json=game, headers=auth())
        assert created.status_code == 201, created.text
    finally:
        server.stop()
    assert sqlite3.connect(ws / "stg.db").execute("SELECT COUNT(*) FROM games").fetchone()[0] == 2
    assert sqlite3.connect(ws / "mobius.db").execute("SELECT COUNT(*) FROM games").fetchone()[0] == default_total
