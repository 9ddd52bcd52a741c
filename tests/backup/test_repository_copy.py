"""`backup copy`: into another folder and into S3 (the suite's moto server), incremental, verified, killable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, packs, restore_to, temp_files
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

from mobius.backup.copy import copy_snapshots
from mobius.backup.index import RepositoryIndex
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.repository_check import verify_snapshots
from mobius.backup.store import FolderStore
from mobius.errors import VerificationError

COPY_POINTS = ["copy:start", "copy:pack-put", "copy:pack-checked", "copy:index-put", "copy:snapshot-put",
               "copy:done"]


def _two_snapshots(tmp_path: Path) -> tuple[Repository, Path, dict[str, dict]]:
    library = tmp_path / "library"
    library.mkdir()
    repo = Repository(tmp_path / "backups")
    states = {}
    for step in range(2):
        for i in range(40):
            (library / f"s{step}-{i}.bin").write_bytes(os.urandom(3000))
        age(library, 3600 * (3 - step))
        made = write_snapshot_of(repo, library)
        states[made.id] = snapshot(library)
    return repo, library, states


def test_copy_to_a_folder_is_incremental_and_the_copy_is_a_working_repository(tmp_path: Path) -> None:
    repo, library, states = _two_snapshots(tmp_path)
    first_id = next(iter(states))  # ids made in one second do not sort by time
    offsite = FolderStore(tmp_path / "offsite")
    one = copy_snapshots(repo, offsite, [first_id])
    assert one.verified and one.snapshots_copied == 1 and one.packs_copied == 1
    everything = copy_snapshots(repo, offsite)
    assert everything.snapshots_copied == 1 and everything.packs_copied == 1  # only what the target lacked
    again = copy_snapshots(repo, offsite)
    assert (again.snapshots_copied, again.packs_copied, again.bytes_copied) == (0, 0, 0)
    copy = Repository(tmp_path / "offsite")
    verify_snapshots(copy, read_data=True)
    for snapshot_id, expected in states.items():
        assert snapshot(restore_to(copy, snapshot_id, tmp_path / f"r-{snapshot_id}")) == expected


def test_copy_to_s3_then_read_back_verifies(tmp_path: Path, s3_server: str) -> None:  # noqa: F811
    from mobius.backup.store import ObjectStore

    repo, _, states = _two_snapshots(tmp_path)
    target = ObjectStore("s3://media/offsite", {"endpoint_url": s3_server, "use_listings_cache": False,
                                                "skip_instance_cache": True})
    result = copy_snapshots(repo, target)
    assert result.verified and result.snapshots_copied == 2 and result.packs_copied == len(packs(repo))
    assert target.names("snapshots") == {f"{i}.jsonl" for i in states}
    again = copy_snapshots(repo, target)
    assert (again.packs_copied, again.snapshots_copied) == (0, 0)
    key = f"snapshots/{next(iter(states))}.jsonl"
    original = target.read_bytes(key)
    target.put_bytes(key, b"torn")  # a damaged object at the target is sent again
    assert copy_snapshots(repo, target).snapshots_copied == 1 and target.read_bytes(key) == original
    target.put_bytes(key, original.replace(b'"type":"file"', b'"type":"fil_"', 1))  # same size, other bytes
    with pytest.raises(VerificationError) as caught:
        copy_snapshots(repo, target)
    assert f"snapshot {next(iter(states))} differs at the target" in caught.value.details


@pytest.mark.slow
@pytest.mark.parametrize("point", COPY_POINTS)
def test_kill_during_copy_leaves_the_target_valid_and_the_next_copy_finishes(point: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "uploads").mkdir(parents=True)
    (ws / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    _, _, states = _two_snapshots(ws)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")} | {"MOBIUS_FAULT": f"kill@{point}"}
    command = [sys.executable, "-m", "mobius", "backup", "copy", "--to", str(tmp_path / "offsite"), "-w", str(ws)]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    copy = Repository(tmp_path / "offsite")
    if copy.snapshot_ids():
        verify_snapshots(copy, read_data=True)
    env.pop("MOBIUS_FAULT")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(copy.snapshot_ids()) == sorted(states)
    assert temp_files(copy) == [] and copy.orphan_packs(RepositoryIndex.load(copy.index)) == []
    verify_snapshots(copy, read_data=True)
    for snapshot_id, expected in states.items():
        assert snapshot(restore_to(copy, snapshot_id, tmp_path / f"r-{snapshot_id}")) == expected
