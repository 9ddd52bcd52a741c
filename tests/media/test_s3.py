"""Migration to object storage (s3://) against moto's S3 server, started by the test on localhost."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobius.safety.envfile import read_env_file

pytestmark = pytest.mark.slow


def _s3_env(endpoint: str) -> dict[str, str]:
    return {"MOBIUS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


def test_s3_round_trip_migrate_rerun_damage_rollback(mobius, sample_workspace: Path, s3_server: str):
    import boto3

    ws, env = sample_workspace, _s3_env(s3_server)
    library = ws / "uploads"
    (library / "empty.bin").write_bytes(b"")
    (library / "empty folder").mkdir()
    target = "s3://media/libraries/main"
    code, out = mobius.json("media", "migrate", "--to", target, "--no-backup", "--yes", "-w", str(ws), env=env)
    assert code == 0, out
    assert read_env_file(ws / ".env")["MOBIUS_LIBRARY_DIR"] == target
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    objects = client.list_objects_v2(Bucket="media", Prefix="libraries/main/")["Contents"]
    files = [p for p in library.rglob("*") if p.is_file()]
    assert len(objects) == len(files) == out["migration"]["files"]
    some = files[0]
    key = "libraries/main/" + str(some.relative_to(library))
    assert client.get_object(Bucket="media", Key=key)["Body"].read() == some.read_bytes()

    code, again = mobius.json("media", "migrate", "--to", target, "--no-backup", "--yes", "-w", str(ws), env=env)
    assert code == 0 and again["nothing_to_do"] is True

    client.put_object(Bucket="media", Key=key, Body=b"damaged")
    proc = mobius("media", "finalize", out["migration"]["id"], "--yes", "-w", str(ws), env=env)
    assert proc.returncode == 2 and str(some.relative_to(library)) in proc.stderr
    assert library.is_dir()

    code, back = mobius.json("media", "rollback", "-w", str(ws), env=env)
    assert code == 0, back
    assert read_env_file(ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"


def test_s3_refuses_a_missing_bucket_and_symlinks_it_cannot_store(mobius, sample_workspace: Path, s3_server: str):
    code, out = mobius.json("media", "migrate", "--to", "s3://no-such-bucket/x", "--no-backup", "--yes",
                            "-w", str(sample_workspace), env=_s3_env(s3_server))
    assert code == 1 and "does not exist" in out["error"]
    (sample_workspace / "uploads" / "alias").symlink_to("sushi-go")
    code, out = mobius.json("media", "migrate", "--to", "s3://media/x", "--no-backup", "--yes",
                            "-w", str(sample_workspace), env=_s3_env(s3_server))
    assert code == 1 and "symlinks" in out["error"]


def test_s3_without_the_extra_is_an_environment_problem(mobius, sample_workspace: Path, tmp_path: Path):
    blocker = tmp_path / "no-s3fs"
    blocker.mkdir()
    (blocker / "s3fs.py").write_text("raise ImportError('s3fs is not installed')\n")
    code, out = mobius.json("media", "migrate", "--to", "s3://media/x", "--no-backup", "--yes",
                            "-w", str(sample_workspace), env={"PYTHONPATH": str(blocker)})
    assert code == 3 and "pip install 'mobius[s3]'" in out["error"]
