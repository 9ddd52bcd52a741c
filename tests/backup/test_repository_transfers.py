"""Packs of an s3:// repository go up and down through the project's executor (the suite's moto server):
several packs at once on the local pool's threads, and the same bucket byte for byte with `MOBIUS_EXECUTOR=dask`."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

import mobius.backup.pack as pack_module
import mobius.backup.transfer as transfer_module
from mobius.backup.api import create_snapshot, restore_snapshot, verify_snapshot
from mobius.config import load_workspace


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """40 incompressible files of 24 KiB: with packs of 128 KiB, about eight packs."""
    monkeypatch.setattr(pack_module, "PACK_TARGET", 128 << 10)
    monkeypatch.setattr(pack_module, "GROUP_TARGET", 32 << 10)
    root = tmp_path / "library"
    for n in range(40):
        (root / f"set-{n % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"set-{n % 4}" / f"card {n:02d}.webp").write_bytes(os.urandom(24 << 10))
    age(root)
    return root


def _workspace(tmp_path: Path, library: Path, endpoint: str, url: str, executor: str):  # noqa: ANN202
    root = tmp_path / f"ws-{executor}"
    root.mkdir()
    (root / ".env").write_text(f"MOBIUS_LIBRARY_DIR={library}\nMOBIUS_BACKUP_DIR={url}\n"
                               f"MOBIUS_S3_ENDPOINT_URL={endpoint}\nMOBIUS_EXECUTOR={executor}\n")
    return load_workspace(root)


def _objects(endpoint: str, url: str, folder: str) -> dict[str, bytes]:
    import fsspec

    fs = fsspec.filesystem("s3", endpoint_url=endpoint, use_listings_cache=False, skip_instance_cache=True)
    base = f"{url.removeprefix('s3://')}/{folder}"
    return {key.removeprefix(base): fs.cat_file(key) for key in fs.find(base)}


def _watch_threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(operation, thread name) of every pack transfer."""
    seen: list[tuple[str, str]] = []
    real = transfer_module.transfer_pack

    def watched(ws, item):  # noqa: ANN001, ANN202
        seen.append((item.op, threading.current_thread().name))
        return real(ws, item)

    monkeypatch.setattr(transfer_module, "transfer_pack", watched)
    return seen


def test_packs_go_up_and_down_on_the_executors_threads(tmp_path: Path, library: Path, s3_server: str,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"s3://media/transfers-{secrets.token_hex(6)}"
    ws = _workspace(tmp_path, library, s3_server, url, "local")
    seen = _watch_threads(monkeypatch)
    made = create_snapshot(ws, database=False)
    packs = _objects(s3_server, url, "packs")
    assert len(made.packs) == len(packs) >= 5
    assert len(_objects(s3_server, url, "index")) == len(packs)
    puts = [name for op, name in seen if op == "put"]
    assert len(puts) == len(packs) and all(name.startswith("mobius-item") for name in puts)  # the executor's pool
    seen.clear()
    restored = restore_snapshot(ws, made.id, tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(library) and restored.files == 40
    gets = [name for op, name in seen if op == "get"]
    assert len(gets) == len(packs) and all(name.startswith("mobius-item") for name in gets)
    checked = verify_snapshot(ws, made.id, read_data=True)
    assert checked.packs_read == len(packs)


def test_a_damaged_pack_in_the_bucket_fails_the_upload_check_and_nothing_names_it(
        tmp_path: Path, library: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """An upload is read back whole before its index is put: a store that damages one pack leaves no snapshot and
    no index naming it."""
    from mobius.backup.store import ObjectStore
    from mobius.errors import VerificationError

    url = f"s3://media/transfers-{secrets.token_hex(6)}"
    ws = _workspace(tmp_path, library, s3_server, url, "local")
    real_put = ObjectStore.put_file
    damaged: list[str] = []

    def put_file(self, key: str, local: Path) -> None:  # noqa: ANN001
        real_put(self, key, local)
        if key.startswith("packs/") and not damaged:
            damaged.append(key.rsplit("/", 1)[-1].removesuffix(".tar.zst"))
            data = bytearray(self.read_bytes(key))
            data[len(data) // 2] ^= 0xFF
            self.put_bytes(key, bytes(data))

    monkeypatch.setattr(ObjectStore, "put_file", put_file)
    with pytest.raises(VerificationError):
        create_snapshot(ws, database=False)
    assert _objects(s3_server, url, "snapshots") == {}
    assert not any(damaged[0] in key for key in _objects(s3_server, url, "index"))


@pytest.mark.slow
def test_dask_moves_the_same_packs_byte_for_byte(tmp_path: Path, library: Path, s3_server: str,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dask.distributed")
    urls = {kind: f"s3://media/transfers-{kind}-{secrets.token_hex(6)}" for kind in ("local", "dask")}
    made = {kind: create_snapshot(_workspace(tmp_path, library, s3_server, url, kind), database=False)
            for kind, url in urls.items()}
    # the last pack holds the workspace's .env, which names its own URL and executor: every other is the same
    same = made["local"].packs[:-1]
    assert len(same) >= 4 and same == made["dask"].packs[:-1]
    for folder in ("packs", "index"):
        local, dask = (_objects(s3_server, urls[kind], folder) for kind in ("local", "dask"))
        assert len(local) == len(dask) == len(made["local"].packs)
        for key, data in local.items():
            if any(name in key for name in same):
                assert dask[key] == data
    restore_snapshot(load_workspace(tmp_path / "ws-dask"), made["dask"].id, tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(library)
