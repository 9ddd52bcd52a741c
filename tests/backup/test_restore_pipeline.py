"""A snapshot restore reads on while earlier groups of small files are still being written: every file lands
exactly, and a failure with groups in flight leaves no target, no staging folder and no open descriptor."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, packs, restore_to

from mobius.backup.extract import STAGING_PREFIX, _SmallFiles
from mobius.backup.index import RepositoryIndex
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.errors import VerificationError


def _many_folders(root: Path) -> Path:
    for i in range(600):
        folder = root / f"set-{i // 20:02d}" / ("deep" if i % 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"card-{i:04d}.png").write_bytes(os.urandom(4000 + i * 4))
    (root / "set-05" / "big.bin").write_bytes(os.urandom((1 << 20) + 5))  # streamed between queued groups
    age(root)
    return root


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_SmallFiles, "MAX_FILES", 8)  # 75 groups, several in flight at once


def test_restore_with_groups_in_flight_is_exact(tmp_path: Path, small_groups: None) -> None:
    library = _many_folders(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    assert snapshot(restore_to(repo, made.id, tmp_path / "restored")) == snapshot(library)


def test_a_damaged_blob_with_groups_in_flight_leaves_nothing_behind(tmp_path: Path, small_groups: None) -> None:
    library = _many_folders(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    where = RepositoryIndex.load(repo.index).get(
        hashlib.sha256((library / "set-29" / "deep" / "card-0590.png").read_bytes()).hexdigest())
    (pack,) = packs(repo)
    data = bytearray(pack.read_bytes())
    data[where.offset + where.length // 2] ^= 0x40  # a frame of small files far into the restore
    pack.write_bytes(bytes(data))
    descriptors = len(os.listdir("/proc/self/fd"))
    with pytest.raises(VerificationError):
        restore_to(repo, made.id, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(os.listdir("/proc/self/fd")) == descriptors
