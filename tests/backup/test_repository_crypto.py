"""An encrypted repository (age recipients): packs open with Debian's `age` CLI + zstd + tar; keys never shown."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import packs, restore_to

from mobius.backup.crypto import AGE_MAGIC, RepositoryKeys
from mobius.backup.prune import RetentionPolicy, prune_repository
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.repository_check import verify_snapshots
from mobius.errors import InputError, VerificationError

pytest.importorskip("pyrage")
needs_age = pytest.mark.skipif(shutil.which("age") is None or shutil.which("age-keygen") is None,
                               reason="Debian's age package is not installed")


def _keypair(folder: Path) -> tuple[Path, str, str]:
    key = folder / "backup-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    text = key.read_text()
    public = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# public key: "))
    secret = next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    return key, public, secret


@needs_age
def test_an_encrypted_pack_opens_with_age_zstd_and_tar_and_the_repository_round_trips(tree: Path,
                                                                                      tmp_path: Path) -> None:
    key, public, _ = _keypair(tmp_path)
    keys = RepositoryKeys.from_settings(public, str(key), tmp_path)
    repo = Repository(tmp_path / "backups", keys)
    expected = snapshot(tree)
    made = write_snapshot_of(repo, tree)
    notes = (tree / "a b" / "notes.txt").read_bytes()
    for path in [made.path, *packs(repo), *repo.index.iterdir()]:
        data = path.read_bytes()
        assert data.startswith(AGE_MAGIC), path
        assert b"notes.txt" not in data and notes[:40] not in data
    sha = hashlib.sha256(notes).hexdigest()
    (pack,) = packs(repo)
    assert hashlib.sha256(pack.read_bytes()).hexdigest() == pack.name.removesuffix(".tar.zst")
    out = subprocess.run(f"age -d -i '{key}' '{pack}' | zstd -dc | tar -xO {sha}", shell=True, capture_output=True,
                         check=True)
    assert out.stdout == notes
    verify_snapshots(repo, read_data=True)
    assert snapshot(restore_to(repo, made.id, tmp_path / "restored")) == expected
    again = write_snapshot_of(repo, tree)
    assert again.parent == made.id and again.new_files == 0 and again.read_files == 0
    prune_repository(repo, RetentionPolicy(last=1))
    verify_snapshots(repo, read_data=True)


@needs_age
def test_without_the_identity_an_encrypted_repository_refuses_in_one_line(tree: Path, tmp_path: Path) -> None:
    key, public, secret = _keypair(tmp_path)
    with pytest.raises(InputError) as caught:  # a backup decrypts what it wrote to check it
        write_snapshot_of(Repository(tmp_path / "backups", RepositoryKeys.from_settings(public, None, tmp_path)),
                          tree)
    assert "MOBIUS_BACKUP_IDENTITY_FILE" in caught.value.one_line() and not packs(Repository(tmp_path / "backups"))
    made = write_snapshot_of(Repository(tmp_path / "backups", RepositoryKeys.from_settings(public, str(key),
                                                                                           tmp_path)), tree)
    with pytest.raises(InputError) as caught:
        verify_snapshots(Repository(tmp_path / "backups"), made.id)
    assert "MOBIUS_BACKUP_IDENTITY_FILE" in caught.value.one_line()
    (tmp_path / "other").mkdir()
    other_key, _, _ = _keypair(tmp_path / "other")
    wrong = RepositoryKeys.from_settings(None, str(other_key), tmp_path)
    with pytest.raises(InputError) as caught:
        verify_snapshots(Repository(tmp_path / "backups", wrong), made.id)
    assert "does not decrypt" in caught.value.message and secret not in caught.value.one_line()
    with pytest.raises(InputError) as caught:
        RepositoryKeys.from_settings("age1notakey", None, tmp_path)
    assert "age1notakey" not in caught.value.one_line()


@needs_age
def test_a_damaged_byte_in_an_encrypted_pack_is_found_naming_the_files(tmp_path: Path) -> None:
    key, public, _ = _keypair(tmp_path)
    repo = Repository(tmp_path / "backups", RepositoryKeys.from_settings(public, str(key), tmp_path))
    library = tmp_path / "library"
    library.mkdir()
    (library / "card.png").write_bytes(b"x" * 200_000)
    made = write_snapshot_of(repo, library)
    (pack,) = packs(repo)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 1
    pack.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as caught:
        verify_snapshots(repo, read_data=True)
    assert any("library/card.png" in line and made.id in line for line in caught.value.details)


@needs_age
def test_keys_never_reach_output_logs_or_records(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    key, public, secret = _keypair(sample_workspace.parent)
    env = {"MOBIUS_BACKUP_RECIPIENTS": public, "MOBIUS_BACKUP_IDENTITY_FILE": str(key)}
    outputs = []
    for args in (["backup", "create", "--snapshot"], ["backup", "list"], ["backup", "verify", "--read-data"],
                 ["config", "show"]):
        for extra in ([], ["--json"]):
            proc = mobius(*args, *extra, "-w", ws, env=env)
            assert proc.returncode == 0, (args, proc.stderr)
            outputs.append(proc.stdout + proc.stderr)
    code, listed = mobius.json("backup", "list", "-w", ws, env=env)
    proc = mobius("backup", "test-restore", listed["snapshots"][0]["id"], "-w", ws, env=env)
    assert proc.returncode == 0, proc.stderr
    outputs.append(proc.stdout + proc.stderr)
    stored = [p.read_bytes() for p in sample_workspace.rglob("*") if p.is_file() and p.parent.name != "uploads"]
    for text in outputs:
        assert public not in text and secret not in text
    for data in stored:
        assert public.encode() not in data and secret.encode() not in data
