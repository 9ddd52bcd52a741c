"""The S3 repository store's client: one per process for the stores of a command, a new one when the AWS
environment it was made from changes, and a missing bucket still one clear line (the suite's moto server)."""

from __future__ import annotations

import pytest
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

from mobius.backup.store import ObjectStore
from mobius.errors import InputError


def test_stores_of_one_process_share_a_client_until_the_aws_environment_changes(
        s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    options = {"endpoint_url": s3_server}
    first, second = ObjectStore("s3://media/a", options), ObjectStore("s3://media/b", options)
    assert first._client is second._client
    first.put_bytes("x.json", b"{}")
    assert second.names("") == set() and first.read_bytes("x.json") == b"{}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    third = ObjectStore("s3://media/a", options)
    assert third._client is not first._client
    assert third._client._request_signer._credentials.access_key == "another-key"
    assert third.read_bytes("x.json") == b"{}"


def test_a_missing_bucket_is_one_line_for_each_store_that_names_it(s3_server: str) -> None:  # noqa: F811
    options = {"endpoint_url": s3_server}
    ObjectStore("s3://media/a", options)  # the client made, its bucket reached
    for _ in range(2):  # not remembered as reached
        with pytest.raises(InputError) as caught:
            ObjectStore("s3://no-such-bucket/repo", options)
        assert caught.value.message == "bucket no-such-bucket does not exist"
