"""Deploy's pipeline self-test on an environment whose library is in object storage (the suite's moto server):
it runs (not skipped) on the objects the specs name, fetched alone, and fails the deploy (exit 2, the
object named, everything put back) when one of them is missing from the bucket."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import seed, write_env

pytestmark = pytest.mark.slow


def _client(endpoint: str):  # noqa: ANN202 - a boto3 S3 client
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _keys(client, bucket: str) -> list[str]:  # noqa: ANN001
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_deploy_self_tests_an_s3_library_from_the_assets_alone(mobius, two_envs: Path, s3_server: str) -> None:
    root, client = two_envs, _client(s3_server)
    bucket = f"envs-s3pipe-{os.getpid()}-{time.monotonic_ns()}"  # its own: other tests share the server
    client.create_bucket(Bucket=bucket)
    for path in sorted((root / "uploads").rglob("*")):
        if path.is_file() and not path.is_symlink():
            client.put_object(Bucket=bucket, Key=f"lib/{path.relative_to(root / 'uploads')}", Body=path.read_bytes())
    write_env(root, "cloud", library_dir=f"s3://{bucket}/lib", s3_endpoint_url=s3_server,
              database_url="sqlite:///cloud.db", backup_dir="cloud/backups", deploy_min_free_mb=1)
    seed(root, "cloud", [("sushi-go", "Sushi Go")])
    spec = (root / "games" / "sushi-go.yaml").read_text(encoding="utf-8")
    named = {line.split("image:", 1)[1].strip() for line in spec.splitlines() if "image:" in line}
    assert named and len(named) < len(_keys(client, bucket))

    code, deployed = mobius.json("deploy", "--env", "cloud", "-w", str(root))
    assert code == 0, deployed
    line = next(s for s in deployed["steps"] if "pipeline test" in json.dumps(s))
    assert "1 game(s) passed" in json.dumps(line), line
    log = "\n".join(p.read_text(encoding="utf-8") for p in (root / "logs").glob("*.jsonl"))
    fetched = [json.loads(x) for x in log.splitlines() if "pipeline.assets_fetched" in x]
    assert fetched and fetched[-1]["objects"] == len(named) == fetched[-1]["named"]  # only what the spec names
    assert not list((root / "out").rglob("*.png")), "the fetched assets are removed with the test's scratch"

    missing = sorted(named)[0]
    client.delete_object(Bucket=bucket, Key=f"lib/{missing}")
    before = _keys(client, bucket)
    proc = mobius("deploy", "--env", "cloud", "-w", str(root))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"s3://{bucket}/lib/{missing}" in proc.stderr, proc.stderr
    assert _keys(client, bucket) == before
