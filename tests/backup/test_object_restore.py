"""A snapshot restored into an s3:// library (the suite's moto server): the bucket ends holding exactly the
snapshot's objects, unchanged ones are not written again, and a restore cut between its writes and its
deletions is finished by running it again."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

from mobius.backup.object_library import ObjectLibrary
from mobius.backup.object_restore import restore_snapshot_objects
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.errors import InputError, VerificationError

pytestmark = pytest.mark.slow


def _fs(endpoint: str):  # noqa: ANN202 - an s3fs filesystem
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)


def _bucket(fs) -> str:  # noqa: ANN001
    name = f"objrestore-{os.getpid()}-{time.monotonic_ns()}"  # its own: other tests share the server
    fs.mkdir(name)
    return name


def _objects(fs, prefix: str) -> dict[str, str]:  # noqa: ANN001
    fs.invalidate_cache()
    return {k[len(prefix) + 1:]: hashlib.sha256(fs.cat_file(k)).hexdigest() for k in fs.find(prefix)}


def test_restore_into_s3_rewrites_changed_readds_deleted_and_removes_extra(tmp_path: Path, s3_server: str  # noqa: F811
                                                                           ) -> None:
    fs = _fs(s3_server)
    prefix = f"{_bucket(fs)}/lib"
    originals = {f"game/card {i}.png": os.urandom(2000 + i) for i in range(12)}
    originals["top.txt"] = b"top"
    for rel, data in originals.items():
        fs.pipe_file(f"{prefix}/{rel}", data)
    library = ObjectLibrary(f"s3://{prefix}", fs)
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, library)
    expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in originals.items()}
    fs.pipe_file(f"{prefix}/top.txt", b"changed")  # changed
    fs.rm(f"{prefix}/game/card 3.png")  # deleted
    fs.pipe_file(f"{prefix}/game/new.png", b"new")  # extra
    fs.pipe_file(f"{prefix}/extra/deep/x.bin", b"x")  # extra, in a folder of its own

    result = restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))

    assert _objects(fs, prefix) == expected
    assert (result.files, result.written, result.unchanged, result.deleted) == (13, 2, 11, 2)
    again = restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert (again.written, again.deleted, again.unchanged) == (0, 0, 13)


def test_local_snapshot_restored_into_s3_large_objects_read_back(tmp_path: Path, s3_server: str,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mobius.backup.object_restore.SMALL_OBJECT", 1)  # every object through the streamed path
    fs = _fs(s3_server)
    prefix = f"{_bucket(fs)}/uploads"
    source = tmp_path / "uploads"
    (source / "clips").mkdir(parents=True)
    files = {"clips/intro.mp4": os.urandom(6 << 20), "a.txt": b"a", "empty.bin": b""}  # 6 MiB: a multipart upload
    for rel, data in files.items():
        (source / rel).write_bytes(data)
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, source)
    fs.pipe_file(f"{prefix}/a.txt", b"b")  # same size, other content: rewritten
    result = restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert _objects(fs, prefix) == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    assert result.written == 3


def test_restore_cut_before_its_deletions_is_finished_by_running_again(tmp_path: Path, s3_server: str,  # noqa: F811
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _fs(s3_server)
    prefix = f"{_bucket(fs)}/lib"
    for i in range(5):
        fs.pipe_file(f"{prefix}/f{i}.bin", os.urandom(500))
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, ObjectLibrary(f"s3://{prefix}", fs))
    expected = _objects(fs, prefix)
    fs.pipe_file(f"{prefix}/f0.bin", b"changed")
    fs.pipe_file(f"{prefix}/extra.bin", b"extra")

    def cut(*args: object, **kwargs: object) -> None:  # the process dies between the writes and the deletions
        raise KeyboardInterrupt

    monkeypatch.setattr(fs, "rm", cut)
    with pytest.raises(KeyboardInterrupt):
        restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    left = _objects(fs, prefix)
    assert {k: v for k, v in left.items() if k != "extra.bin"} == expected and "extra.bin" in left
    monkeypatch.undo()
    result = restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert _objects(fs, prefix) == expected and (result.written, result.deleted) == (0, 1)


def test_snapshot_with_a_symlink_is_refused_before_anything_is_written(tmp_path: Path, s3_server: str  # noqa: F811
                                                                       ) -> None:
    fs = _fs(s3_server)
    prefix = f"{_bucket(fs)}/lib"
    fs.pipe_file(f"{prefix}/keep.txt", b"keep")
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.txt").write_text("a")
    (source / "link").symlink_to("a.txt")
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, source)
    with pytest.raises(InputError) as caught:
        restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert "library/link" in " ".join(caught.value.details)
    assert _objects(fs, prefix) == {"keep.txt": hashlib.sha256(b"keep").hexdigest()}


def test_damaged_pack_writes_no_partial_object(tmp_path: Path, s3_server: str) -> None:  # noqa: F811
    fs = _fs(s3_server)
    prefix = f"{_bucket(fs)}/lib"
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(4000))
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, source)
    for pack in (tmp_path / "backups" / "packs").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
    with pytest.raises(VerificationError):
        restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert _objects(fs, prefix) == {}


def test_missing_bucket_is_refused_and_an_empty_prefix_is_an_empty_library(tmp_path: Path, s3_server: str  # noqa: F811
                                                                           ) -> None:
    fs = _fs(s3_server)
    source = tmp_path / "uploads"
    source.mkdir()
    (source / "a.txt").write_text("a")
    repo = Repository(tmp_path / "backups")
    taken = write_snapshot_of(repo, source)
    with pytest.raises(InputError) as caught:
        restore_snapshot_objects(repo, taken.id, ObjectLibrary("s3://no-such-bucket-objrestore/lib", fs))
    assert "does not exist" in caught.value.message
    prefix = f"{_bucket(fs)}/empty"
    result = restore_snapshot_objects(repo, taken.id, ObjectLibrary(f"s3://{prefix}", fs))
    assert result.written == 1 and _objects(fs, prefix) == {"a.txt": hashlib.sha256(b"a").hexdigest()}
