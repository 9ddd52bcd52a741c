"""Environments whose library is in object storage (the suite's moto server): deploy backs the bucket up in its
restore point, and a rollback (or a failed deploy) puts exactly the snapshot's objects back."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from .conftest import seed, table_rows, write_env

pytestmark = pytest.mark.slow


def _client(endpoint: str):  # noqa: ANN202 - a boto3 S3 client
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _bucket_tree(client, bucket: str) -> dict[str, str]:  # noqa: ANN001
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: hashlib.sha256(client.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() for k in keys}


def _s3_env(root: Path, name: str, endpoint: str, client) -> str:  # noqa: ANN001
    bucket = f"envs-s3lib-{os.getpid()}-{time.monotonic_ns()}"  # its own: other tests share the server
    client.create_bucket(Bucket=bucket)
    for path in sorted((root / "uploads").rglob("*")):
        if path.is_file() and not path.is_symlink():
            client.put_object(Bucket=bucket, Key=f"lib/{path.relative_to(root / 'uploads')}", Body=path.read_bytes())
    write_env(root, name, library_dir=f"s3://{bucket}/lib", s3_endpoint_url=endpoint,
              database_url=f"sqlite:///{name}.db", backup_dir=f"{name}/backups", deploy_min_free_mb=1)
    return bucket


def test_rollback_and_failed_deploy_restore_an_s3_library_exactly(mobius, two_envs: Path, s3_server: str) -> None:
    root, client = two_envs, _client(s3_server)
    # no self-test render here (test_s3_pipeline_test has it): this test is about the library's restore
    (root / "games" / "sushi-go.yaml").unlink()
    bucket = _s3_env(root, "cloud", s3_server, client)
    seed(root, "cloud", [("azul", "Azul")])
    code, deployed = mobius.json("deploy", "--env", "cloud", "-w", str(root))
    assert code == 0, deployed
    before, rows = _bucket_tree(client, bucket), table_rows(root, "cloud")
    assert len(before) > 3
    first, second = sorted(before)[:2]
    client.put_object(Bucket=bucket, Key=first, Body=b"changed after the deploy")
    client.delete_object(Bucket=bucket, Key=second)
    client.put_object(Bucket=bucket, Key="lib/extra/new.bin", Body=b"new")

    code, back = mobius.json("rollback", "--env", "cloud", "--yes", "-w", str(root))
    assert code == 0, back
    assert _bucket_tree(client, bucket) == before
    assert table_rows(root, "cloud") == rows

    client.put_object(Bucket=bucket, Key="lib/extra/again.bin", Body=b"x")  # in the next deploy's backup
    with_extra = _bucket_tree(client, bucket)
    proc = mobius("deploy", "--env", "cloud", "-w", str(root), env={"MOBIUS_FAULT": "fail@done:migrations"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _bucket_tree(client, bucket) == with_extra and table_rows(root, "cloud") == rows



def _files(folder: Path, prefix: str = "lib/") -> dict[str, str]:
    """A folder's files as _bucket_tree names them (`lib/<path>` -> sha256)."""
    return {prefix + str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_promote_into_and_out_of_an_s3_library(mobius, two_envs: Path, s3_server: str) -> None:
    root, client = two_envs, _client(s3_server)
    staging = root / "staging" / "uploads"
    for link in [p for p in staging.rglob("*") if p.is_symlink()]:  # a bucket holds no links
        link.unlink()
    bucket = _s3_env(root, "cloud", s3_server, client)
    seed(root, "cloud", [("catan", "Catan")])
    client.put_object(Bucket=bucket, Key="lib/only-in-cloud.txt", Body=b"old")
    before, rows = _bucket_tree(client, bucket), table_rows(root, "cloud")

    # a failed check (ours), then a TypeError (a bug, not ours): either way the bucket and rows are restored
    for fault in ("fail@done:library sync", "crash@done:library sync"):
        proc = mobius("env", "promote", "--from", "staging", "--to", "cloud", "--yes", "-w", str(root),
                      env={"MOBIUS_FAULT": fault})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (fault, proc.stderr)
        assert _bucket_tree(client, bucket) == before and table_rows(root, "cloud") == rows, fault

    code, out = mobius.json("env", "promote", "--from", "staging", "--to", "cloud", "--yes", "-w", str(root))
    assert code == 0, out
    assert _bucket_tree(client, bucket) == _files(staging)
    assert table_rows(root, "cloud") == table_rows(root, "staging")

    first = sorted(p for p in staging.rglob("*") if p.is_file())[0]
    first.write_bytes(b"changed in staging")
    (staging / "added.txt").write_text("added")
    code, out = mobius.json("env", "promote", "--from", "staging", "--to", "cloud", "--yes", "-w", str(root))
    assert code == 0, out
    assert _bucket_tree(client, bucket) == _files(staging)

    code, out = mobius.json("env", "promote", "--from", "cloud", "--to", "production", "--yes", "-w", str(root))
    assert code == 0, out
    assert _files(root / "prod" / "uploads") == _files(staging)
    assert table_rows(root, "production") == table_rows(root, "staging")


def test_promote_refuses_two_environments_on_one_prefix(mobius, two_envs: Path, s3_server: str) -> None:
    root, client = two_envs, _client(s3_server)
    bucket = _s3_env(root, "cloud", s3_server, client)
    write_env(root, "inner", library_dir=f"s3://{bucket}/lib/inner", s3_endpoint_url=s3_server,
              database_url="sqlite:///inner.db", backup_dir="inner/backups", deploy_min_free_mb=1)
    proc = mobius("env", "promote", "--from", "cloud", "--to", "inner", "--yes", "-w", str(root))
    assert proc.returncode == 1 and "nested libraries" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("then", ["resume", "rollback"])
def test_promote_into_s3_killed_after_the_library_sync_is_finished_or_undone_from_the_record(
        mobius, two_envs: Path, s3_server: str, then: str) -> None:
    from mobius.config import load_workspace
    from mobius.records import RecordStore

    root, client = two_envs, _client(s3_server)
    staging = root / "staging" / "uploads"
    for link in [p for p in staging.rglob("*") if p.is_symlink()]:
        link.unlink()
    bucket = _s3_env(root, "cloud", s3_server, client)
    seed(root, "cloud", [("catan", "Catan")])
    before, rows = _bucket_tree(client, bucket), table_rows(root, "cloud")
    proc = mobius("env", "promote", "--from", "staging", "--to", "cloud", "--yes", "-w", str(root),
                  env={"MOBIUS_FAULT": "kill@done:library sync"})
    assert proc.returncode == -9, proc.stderr
    assert _bucket_tree(client, bucket) == _files(staging)  # the kill came after the objects were written
    with RecordStore.of(load_workspace(root)) as store:
        op_id = store.list(type="env.promote", limit=1)[0].id
    if then == "resume":
        proc = mobius("migrate", "resume", op_id, "-w", str(root))
        assert proc.returncode == 0, proc.stderr
        assert _bucket_tree(client, bucket) == _files(staging)
        assert table_rows(root, "cloud") == table_rows(root, "staging")
    else:
        proc = mobius("migrate", "rollback", op_id, "--yes", "-w", str(root))
        assert proc.returncode == 0, proc.stderr
        assert _bucket_tree(client, bucket) == before and table_rows(root, "cloud") == rows
