"""The S3 repository store's client: one per process for the stores of a command, a new one when the AWS
environment it was made from changes, and a missing bucket still one clear line; a new cache's sync, its files
fetched several at once (the suite's moto server); object_client, the small client: its signature against
botocore's signer, when it is chosen, paging, multipart, a stale kept-alive connection, an unreachable endpoint."""

from __future__ import annotations

import os
import secrets
import socket
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
    assert third._client.credentials.access_key == "another-key"
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
            fine = child._client is not parent._client and child.read_bytes("x.json") == b"from the parent" \
                and parent.read_bytes("x.json") == b"from the parent"  # the parent's store: no parent socket
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


@pytest.mark.parametrize(("method", "url", "body", "token"), [
    ("GET", "https://s3.example.com/media?list-type=2&prefix=repo%20x%2By%2F&continuation-token=ab%2Fc%3D%3D"
            "&encoding-type=url&delimiter=%2F", b"", None),
    ("PUT", "http://127.0.0.1:9000/media/odd%20prefix/a%2Bb~c.json", b'{"x": 1}', "session-token"),
    ("HEAD", "http://minio.local/media/packs/ab/ab12.tar.zst", None, None),
])
def test_requests_are_signed_as_botocore_signs_them(method: str, url: str, body: bytes | None,
                                                    token: str | None) -> None:
    """object_client's Signature Version 4 against botocore's signer on the same request (moto checks no
    signature, so this is the test that a real S3 would accept them)."""
    import datetime
    import hashlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    from mobius.backup.object_client import UNSIGNED, Credentials, sign

    payload = UNSIGNED if body is None else hashlib.sha256(body).hexdigest()
    ours = sign(method, url, {}, payload, Credentials("AKIDEXAMPLE", "wJalr/secret+key", token), "eu-west-3",
                datetime.datetime(2026, 12, 5, 12, 30, 1, tzinfo=datetime.UTC))
    request = AWSRequest(method=method, url=url, data=body,
                         headers={k: v for k, v in ours.items() if k != "authorization"})
    request.context["timestamp"] = "20261205T123001Z"
    auth = S3SigV4Auth(BotoCredentials("AKIDEXAMPLE", "wJalr/secret+key", token), "s3", "eu-west-3")
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    assert ours["authorization"] == (f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/eu-west-3/s3/aws4_request, "
                                     f"SignedHeaders={signed}, Signature={expected}")
    assert "secret" not in repr(Credentials("AKIDEXAMPLE", "wJalr/secret+key", token))


def test_botocore_answers_where_the_small_client_cannot_and_both_list_page_by_page(
        s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Credentials from a shared credentials file (not the environment) go through botocore's client; listings
    longer than a page are followed to the end by either client; a multipart upload reads back whole; an
    endpoint nothing listens on is one line."""
    from mobius.backup.object_client import S3Client, S3Error

    prefix = f"s3://media/pages-{secrets.token_hex(4)}"
    small = ObjectStore(prefix, {"endpoint_url": s3_server})
    assert isinstance(small._client, S3Client) and small._client_error is S3Error
    for i in range(5):
        small.put_bytes(f"index/{i} +x.json", b"%d" % i)
    small.put_bytes("index/sub/deeper.json", b"deeper")
    big = tmp_path / "big.pack"
    big.write_bytes(os.urandom(11 << 20))
    monkeypatch.setattr("mobius.backup.store.MULTIPART", 1 << 20)
    monkeypatch.setattr("mobius.backup.store.PART", 5 << 20)  # three parts, the last short
    small.put_file("packs/big.pack", big)
    assert b"".join(small.read("packs/big.pack")) == big.read_bytes()
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    boto = ObjectStore(prefix, {"endpoint_url": s3_server})
    assert not isinstance(boto._client, S3Client) and boto._client_error is not S3Error
    for store in (small, boto):
        store.page_keys = 2
        assert store.names("index") == {f"{i} +x.json" for i in range(5)} | {"sub"}
        assert store.sizes("index") == {**{f"{i} +x.json": 1 for i in range(5)}, "deeper.json": 6}
        assert store.sizes("packs") == {"big.pack": 11 << 20}
        assert store.read_bytes("index/3 +x.json") == b"3" and store.read_bytes("index/none.json") is None
        assert store.size("index/sub/deeper.json") == 6 and store.size("index/none.json") is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(InputError) as caught:
        ObjectStore("s3://media/x", {"endpoint_url": closed, "config_kwargs": {"retries": {"max_attempts": 1}}})
    assert caught.value.message.startswith("cannot reach s3://media/x: ") and "\n" not in caught.value.message


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(s3_server: str) -> None:  # noqa: F811
    """A kept-alive connection the server has closed meanwhile (its keep-alive timeout) fails on first use: the
    request goes again on a new connection, no error and no backoff. (moto closes each connection after its
    answer, so the stale one is put in the pool here.)"""
    import http.client
    from urllib.parse import urlsplit

    from mobius.backup.object_client import S3Client

    store = ObjectStore(f"s3://media/idle-{secrets.token_hex(4)}", {"endpoint_url": s3_server})
    store.put_bytes("a.json", b"a")
    client = store._client
    assert isinstance(client, S3Client)
    stale = http.client.HTTPConnection(urlsplit(s3_server).hostname, urlsplit(s3_server).port)
    stale.connect()
    stale.sock.shutdown(socket.SHUT_RDWR)
    client._idle.append(stale)
    assert store.read_bytes("a.json") == b"a"
    assert stale not in client._idle


def test_the_small_client_is_chosen_only_where_it_answers_as_botocore_would(tmp_path: Path) -> None:
    from mobius.backup.object_client import for_options

    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    options = {"endpoint_url": "https://minio.example:9000", "use_listings_cache": False,
               "config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3}}}
    client = for_options(options, env)
    assert client is not None and (client.region, client.max_attempts) == ("us-east-1", 3)
    assert for_options(options, {**env, "AWS_DEFAULT_REGION": "eu-west-3"}).region == "eu-west-3"
    (tmp_path / "config").write_text("[default]\nregion = eu-west-3\n")
    for other_options, other_env in [
        ({**options, "endpoint_url": None}, env),  # AWS itself: its regions and virtual hosts
        ({**options, "endpoint_url": "https://minio.example/s3"}, env),
        ({**options, "config_kwargs": {"s3": {"addressing_style": "virtual"}}}, env),
        (options, {**env, "AWS_SECRET_ACCESS_KEY": ""}),  # the rest of the credential chain
        (options, {**env, "HTTPS_PROXY": "http://proxy:3128"}),
        (options, {**env, "AWS_CONFIG_FILE": str(tmp_path / "config")}),  # a region only in a profile
    ]:
        assert for_options(other_options, other_env) is None
