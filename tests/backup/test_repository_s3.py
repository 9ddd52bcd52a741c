"""A library in S3 (the suite's moto server) backed up into the snapshot repository: objects streamed,
unchanged objects not read again, restored exactly into a folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

from mobius.backup.object_library import ObjectLibrary
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.repository_check import verify_snapshots
from mobius.backup.snapshot_restore import restore_snapshot_tree
from mobius.errors import InputError


def _fs(endpoint: str):  # noqa: ANN202 - an s3fs filesystem
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=endpoint, use_listings_cache=False, skip_instance_cache=True)


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def test_an_s3_library_is_backed_up_incrementally_and_restored(tmp_path: Path, s3_server: str,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mobius.backup.repository.SMALL_FILE", 64 << 10)  # the large-object path, on small data
    fs = _fs(s3_server)
    objects = {f"media/lib/sushi-go/cards/card {i}.png": os.urandom(3000) for i in range(30)}
    objects["media/lib/sushi-go/clips/intro.mp4"] = os.urandom(300_000)
    objects["media/lib/top.txt"] = b"top"
    for key, data in objects.items():
        fs.pipe_file(key, data)
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, ObjectLibrary("s3://media/lib", fs))
    assert first.files == 32 and first.new_files == 32 and first.dirs == 4  # library, sushi-go, cards, clips
    second = write_snapshot_of(repo, ObjectLibrary("s3://media/lib", fs))
    assert (second.read_files, second.new_files, second.parent) == (0, 0, first.id)
    fs.pipe_file("media/lib/top.txt", b"changed")
    third = write_snapshot_of(repo, ObjectLibrary("s3://media/lib", fs))
    assert (third.read_files, third.new_files) == (1, 1)
    verify_snapshots(repo, read_data=True)
    restored = restore_snapshot_tree(repo, first.id, tmp_path / "restored").to
    assert _tree(restored) == {k[len("media/lib/"):]: hashlib.sha256(v).hexdigest() for k, v in objects.items()}
    assert not list((tmp_path / "backups").glob(".mobius-tmp-*"))


def test_an_object_key_that_cannot_be_a_file_name_is_refused_up_front(tmp_path: Path, s3_server: str  # noqa: F811
                                                                      ) -> None:
    fs = _fs(s3_server)
    fs.pipe_file("media/lib/ok.txt", b"ok")
    fs.pipe_file("media/lib/a/../escape.txt", b"x")
    with pytest.raises(InputError) as caught:
        write_snapshot_of(Repository(tmp_path / "backups"), ObjectLibrary("s3://media/lib", fs))
    assert "escape.txt" in " ".join(caught.value.details)
    assert not (tmp_path / "backups" / "snapshots").exists()


def test_backup_create_snapshot_of_an_s3_library_from_the_cli(sample_workspace: Path, s3_server: str,  # noqa: F811
                                                              mobius) -> None:
    fs = _fs(s3_server)
    for i in range(5):
        fs.pipe_file(f"media/uploads/game/card{i}.png", os.urandom(2000))
    env = {"MOBIUS_LIBRARY_DIR": "s3://media/uploads", "MOBIUS_S3_ENDPOINT_URL": s3_server,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    ws = str(sample_workspace)
    code, made = mobius.json("backup", "create", "--snapshot", "-w", ws, env=env)
    assert code == 0 and made["files"] == 5 + len(made["extras"])
    target = sample_workspace / "restored"
    proc = mobius("backup", "restore", made["id"], "--to", str(target), "--yes", "-w", ws, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (target / "game").iterdir()) == [f"card{i}.png" for i in range(5)]
    proc = mobius("backup", "create", "--archive", "-w", ws, env=env)  # a full archive still needs a local library
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
