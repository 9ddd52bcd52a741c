"""Environments as two databases in the suite's real PostgreSQL server, and a library on the local S3 server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import seed, table_rows, tree, write_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_promote_between_two_postgres_databases(mobius, two_envs: Path, postgres) -> None:
    root = two_envs
    staging_db, prod_db = postgres.create_database(), postgres.create_database()
    write_env(root, "staging", library_dir="staging/uploads", database_url=postgres.url(staging_db),
              backup_dir="staging/backups", backup_keep=4, deploy_min_free_mb=1)
    write_env(root, "production", library_dir="prod/uploads", database_url=postgres.url(prod_db),
              backup_dir="prod/backups", deploy_min_free_mb=1)
    seed(root, "staging", [("sushi-go", "Sushi Go"), ("azul", "Azul")])
    seed(root, "production", [("catan", "Catan")])
    code, out = mobius.json("env", "validate", "production", "-w", str(root))
    assert code == 0, out
    assert "postgresql" in out["checks"][4]["detail"]
    rows, library = table_rows(root, "production"), tree(root / "prod" / "uploads")
    settings = (root / "environments" / "production.env").read_bytes()
    proc = mobius("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root),
                  env={"MOBIUS_FAULT": "fail@done:library sync"})
    assert proc.returncode == 2, proc.stderr
    assert table_rows(root, "production") == rows and tree(root / "prod" / "uploads") == library
    assert (root / "environments" / "production.env").read_bytes() == settings
    code, out = mobius.json("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root))
    assert code == 0, out
    assert table_rows(root, "production") == table_rows(root, "staging")
    assert tree(root / "prod" / "uploads") == tree(root / "staging" / "uploads")


def test_s3_library_validates_and_unreachable_bucket_is_one_line(mobius, two_envs: Path, s3_server: str) -> None:
    import boto3

    root = two_envs
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"envs-validate-{os.getpid()}-{time.monotonic_ns()}"  # its own: other tests share the server
    client.create_bucket(Bucket=bucket)
    write_env(root, "media", library_dir=f"s3://{bucket}/library", s3_endpoint_url=s3_server, deploy_min_free_mb=1)
    code, out = mobius.json("env", "validate", "media", "-w", str(root))
    assert code == 0, out
    s3 = next(c for c in out["checks"] if c["name"] == "library (s3)")
    assert s3["verdict"] == "pass" and "probe" in s3["detail"]
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # the probe object was deleted
    write_env(root, "nobucket", library_dir="s3://no-such-bucket/library", s3_endpoint_url=s3_server,
              deploy_min_free_mb=1)
    proc = mobius("env", "validate", "nobucket", "-w", str(root))
    assert proc.returncode == 2 and "library (s3)" in proc.stderr.splitlines()[-1]
    proc = mobius("env", "promote", "--from", "nobucket", "--to", "production", "--yes", "-w", str(root))
    assert proc.returncode == 1 and "cannot list s3://no-such-bucket/library" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_row_digest_on_the_server_tells_equal_databases_from_one_changed_row(two_envs: Path, postgres) -> None:
    from sqlalchemy import text

    from mobius.config import load_workspace
    from mobius.db import sync_databases
    from mobius.db.engine import connect, target_for
    from mobius.envs.state import database_digest

    root = two_envs
    for env in ("staging", "production"):
        write_env(root, env, library_dir=f"{env}/uploads", database_url=postgres.url(postgres.create_database()),
                  backup_dir=f"{env}/backups", deploy_min_free_mb=1)
    seed(root, "staging", [("azul", "Azul"), ("catan", "Catan")])
    staging, production = (load_workspace(root, env=env) for env in ("staging", "production"))
    sync_databases(staging, staging.database_url, production.database_url, dump_target=False)  # a promote's copy
    assert database_digest(staging) == database_digest(production)
    for statement in ("UPDATE games SET name = 'Azul!' WHERE slug = 'azul'",  # one value
                      "UPDATE games SET name = 'Azul' WHERE slug = 'azul'"):  # and back
        with connect(target_for(production)) as conn, conn.begin():
            conn.execute(text(statement))
        assert (database_digest(staging) == database_digest(production)) == statement.endswith("'Azul' WHERE "
                                                                                               "slug = 'azul'")
