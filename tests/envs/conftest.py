"""Two environments in one workspace: staging and production, each with its own database, library and backups."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import built_once_per_run

from mobius.config import load_workspace


def _load(name: str, path: Path):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_db = _load("envs_db_fixtures", Path(__file__).parents[1] / "db" / "conftest.py")
_media = _load("envs_media_fixtures", Path(__file__).parents[1] / "media" / "conftest.py")
postgres = _db.postgres
s3_server = _media.s3_server


def write_env(root: Path, name: str, **settings: object) -> Path:
    path = root / "environments" / f"{name}.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"MOBIUS_{k.upper()}={v}\n" for k, v in settings.items()))
    return path


def seed(root: Path, env: str, games: list[tuple[str, str]]) -> None:
    """Apply the built-in migrations and insert games rows, in-process (fast)."""
    from mobius.db import migrate_database
    from mobius.db.engine import connect, target_for

    ws = load_workspace(root, env=env)
    migrate_database(ws, backup=False)
    with connect(target_for(ws)) as conn, conn.begin():
        for slug, name in games:
            conn.execute(text("INSERT INTO games (slug, name, play_time, min_players, max_players)"
                              " VALUES (:slug, :name, 30, 2, 4)"), {"slug": slug, "name": name})


def table_rows(root: Path, env: str) -> dict[str, list]:
    """Every row of every table but the append-only migration event log, sorted."""
    from sqlalchemy import inspect

    from mobius.db.engine import connect, target_for

    with connect(target_for(load_workspace(root, env=env))) as conn, conn.begin():
        return {t: sorted(map(tuple, conn.exec_driver_sql(f'SELECT * FROM "{t}"').fetchall()), key=repr)
                for t in sorted(inspect(conn).get_table_names()) if t != "schema_migration_events"}


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of the content (or 'dir' / 'link:target')."""
    import hashlib

    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + str(path.readlink())
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def _two_envs_template(_sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make_two_envs` once per run (it migrates and seeds two databases, with fsyncs): tests get copies."""
    def build(folder: Path) -> str:
        root = folder / "ws"
        shutil.copytree(_sample_template, root, symlinks=True)
        return str(make_two_envs(root))

    return Path(built_once_per_run(tmp_path_factory, "two-envs", build))


@pytest.fixture
def two_envs(sample_workspace: Path, _two_envs_template: Path) -> Path:
    """staging: staging.db + staging/uploads (sample library); production: prod.db + prod/uploads (+ an old file).
    The sample workspace itself becomes them (a copy of `make_two_envs` run once per worker)."""
    shutil.rmtree(sample_workspace)
    shutil.copytree(_two_envs_template, sample_workspace, symlinks=True)
    return sample_workspace


def make_two_envs(root: Path) -> Path:
    """Turn an initialized sample workspace into the two environments of `two_envs`."""
    shutil.copytree(root / "uploads", root / "staging" / "uploads", symlinks=True)
    shutil.copytree(root / "uploads", root / "prod" / "uploads", symlinks=True)
    (root / "prod" / "uploads" / "old").mkdir(parents=True)
    (root / "prod" / "uploads" / "old" / "poster.txt").write_text("last year's poster\n")
    write_env(root, "staging", library_dir="staging/uploads", database_url="sqlite:///staging.db",
              backup_dir="staging/backups", backup_keep=4, deploy_min_free_mb=1)
    write_env(root, "production", library_dir="prod/uploads", database_url="sqlite:///prod.db",
              backup_dir="prod/backups", deploy_min_free_mb=1)
    for spec in (root / "games").glob("*.yaml"):  # one game keeps deploy's pipeline self-test real and short
        if spec.stem != "sushi-go":
            spec.unlink()
    seed(root, "staging", [("sushi-go", "Sushi Go"), ("azul", "Azul"), ("carcassonne", "Carcassonne")])
    seed(root, "production", [("sushi-go", "Sushi Go")])
    return root


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        code = self.server.status if self.path == "/ready" else 404  # type: ignore[attr-defined]
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"no")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP service answering /ready with `server.status` (200 unless a test changes it)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
