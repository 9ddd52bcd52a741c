"""The S3 repository store's client: one per process for the stores of a command, a new one when the AWS
environment it was made from changes, and a missing bucket still one clear line; a new cache's sync, its files
fetched several at once (the suite's moto server)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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


def test_a_forked_child_makes_its_own_client(s3_server: str) -> None:  # noqa: F811
    options = {"endpoint_url": s3_server}
    parent = ObjectStore("s3://media/fork", options)
    parent.put_bytes("x.json", b"from the parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a client of its own (not the parent's pooled sockets), working
        try:
            child = ObjectStore("s3://media/fork", options)
            fine = child._client is not parent._client and child.read_bytes("x.json") == b"from the parent"
            os.write(write, b"1" if fine else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert ObjectStore("s3://media/fork", options)._client is parent._client


def test_a_missing_bucket_is_one_line_for_each_store_that_names_it(s3_server: str) -> None:  # noqa: F811
    options = {"endpoint_url": s3_server}
    ObjectStore("s3://media/a", options)  # the client made, its bucket reached
    for _ in range(2):  # not remembered as reached
        with pytest.raises(InputError) as caught:
            ObjectStore("s3://no-such-bucket/repo", options)
        assert caught.value.message == "bucket no-such-bucket does not exist"


def test_a_new_cache_fetches_every_index_and_snapshot_file_whole_and_a_failed_fetch_leaves_none_torn(
        tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from mobius.backup.remote import RemoteRepository

    store = ObjectStore(f"s3://media/cache-{secrets.token_hex(6)}", {"endpoint_url": s3_server})
    held = {f"snapshots/20261205T1200{i:02d}Z-abcdef.jsonl": os.urandom(3000 + i) for i in range(5)}
    held |= {f"index/{secrets.token_hex(32)}.json": os.urandom(500 + i) for i in range(12)}
    for key, data in held.items():
        store.put_bytes(key, data)
    cache = RemoteRepository(store, tmp_path / "cache").sync()
    assert {str(p.relative_to(cache.root)): p.read_bytes() for p in cache.root.rglob("*") if p.is_file()
            and not p.name.startswith(".")} == held
    assert cache.snapshot_ids() == sorted(k[len("snapshots/"):-len(".jsonl")] for k in held if "snapshots/" in k)

    real_get = ObjectStore.get_file
    failing = sorted(k for k in held if k.startswith("index/"))[5]

    def get_file(self: ObjectStore, key: str, local: Path) -> None:
        if key == failing:
            raise ConnectionError("connection reset")
        real_get(self, key, local)

    monkeypatch.setattr(ObjectStore, "get_file", get_file)
    with pytest.raises(ConnectionError):
        RemoteRepository(store, tmp_path / "fresh").sync()
    fetched = {str(p.relative_to(p.parents[1])): p.read_bytes() for p in (tmp_path / "fresh").rglob("*")
               if p.is_file() and p.parent.name in ("index", "snapshots")}
    assert failing not in fetched and all(held[key] == data for key, data in fetched.items())  # none torn
    monkeypatch.setattr(ObjectStore, "get_file", real_get)
    again = RemoteRepository(store, tmp_path / "fresh").sync()
    assert len(list(again.index.iterdir())) == 12 and len(again.snapshot_ids()) == 5
