"""Fixtures for media tests: a library with every edge case, and an S3 server (moto) on localhost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from media_support import add_edge_cases  # noqa: E402


@pytest.fixture
def media_ws(sample_workspace: Path) -> Path:
    add_edge_cases(sample_workspace / "uploads")
    return sample_workspace


@pytest.fixture
def s3_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """moto's S3 server on a free localhost port, dummy credentials, a bucket named `media`."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=_moto_endpoint, region_name="us-east-1").create_bucket(Bucket="media")
    return _moto_endpoint
