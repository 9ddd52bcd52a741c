"""The snapshot repository on real files: round trips, increments, dedup, packs opened by GNU tools, damage, prune."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, packs, restore_to, restore_via_export

from mobius.backup.index import RepositoryIndex
from mobius.backup.prune import RetentionPolicy, prune_repository
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.repository_check import check_snapshots, verify_snapshots
from mobius.backup.snapshot import SnapshotEntry, SnapshotHeader, read_entries
from mobius.backup.snapshot_restore import extract_snapshot_member
from mobius.errors import InputError, ResourceError, VerificationError
from mobius.results import Verdict


def test_round_trip_of_every_kind_of_entry(tree: Path, tmp_path: Path) -> None:
    (tree / "odd\tname\\with 'quotes' and \"more\"").write_bytes(b"odd")
    (tree / "-starts-with-dash").write_bytes(b"dash")
    (tree / "line\nbreak \x1b[31mred").write_bytes(b"control characters")
    os.mkdir(os.path.join(os.fsencode(tree), b"latin1-\xe9t\xe9"))  # not UTF-8
    (tree / os.fsdecode(b"latin1-\xe9t\xe9") / "inside").write_bytes(b"x")
    (tree / ("long-" * 40)).mkdir()
    (tree / ("long-" * 40) / "inside").write_bytes(os.urandom(100))
    age(tree)
    expected = snapshot(tree)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    assert made.new_files == made.files and made.reused_files == 0
    restored = restore_to(repo, made.id, tmp_path / "restored")
    assert snapshot(restored) == expected
    verify_snapshots(repo, made.id, read_data=True)
    assert snapshot(restore_via_export(repo, made.id, tmp_path / "via-export")) == expected


def test_not_enough_space_exits_before_writing_anything(tree: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBIUS_FAULT", "free-bytes@disk=1000")
    repo = Repository(tmp_path / "backups")
    with pytest.raises(ResourceError):
        write_snapshot_of(repo, tree)
    assert packs(repo) == [] and repo.snapshot_ids() == []


def test_an_unchanged_library_is_not_read_again_and_stores_nothing(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, tree)
    second = write_snapshot_of(repo, tree)
    assert second.parent == first.id
    assert (second.read_files, second.new_files, second.stored_bytes, second.packs) == (0, 0, 0, [])
    assert second.reused_files == second.files == first.files
    (tree / "a b" / "notes.txt").write_text("changed\n")
    age(tree / "a b" / "notes.txt")
    third = write_snapshot_of(repo, tree)
    assert (third.read_files, third.new_files, third.new_bytes) == (1, 1, len("changed\n"))
    forced = write_snapshot_of(repo, tree, force_read=True)
    assert forced.read_files == forced.files and forced.new_files == 0


def test_a_file_rewritten_with_its_size_and_mtime_put_back_is_read_again(tree: Path, tmp_path: Path) -> None:
    """The walk's own lstat decides "unchanged" (no second stat): its ctime and inode must count, not only size
    and mtime."""
    age(tree)
    repo = Repository(tmp_path / "backups")
    write_snapshot_of(repo, tree)
    target = tree / "a b" / "notes.txt"
    before = target.stat()
    target.write_bytes(bytes(b ^ 0xFF for b in target.read_bytes()))  # same size, other bytes
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back; ctime moved on
    again = write_snapshot_of(repo, tree)
    assert again.read_files == 1 and again.new_files == 1
    entry = next(e for e in read_entries(repo.snapshot_file(again.id)) if e.path == "library/a b/notes.txt")
    assert entry.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert (entry.ino, entry.ctime_ns) == (target.stat().st_ino, target.stat().st_ctime_ns)
    replaced = tree / "a b" / "replaced.txt"
    shutil.copy2(target, replaced)
    os.replace(replaced, target)  # a new inode, same bytes, size and mtime
    third = write_snapshot_of(repo, tree)
    assert third.read_files == 1 and third.new_files == 0


def test_a_file_touched_in_the_parents_last_second_is_read_again(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "fresh.txt").write_text("written just now")
    repo = Repository(tmp_path / "backups")
    write_snapshot_of(repo, library)
    again = write_snapshot_of(repo, library)
    assert again.read_files == 1 and again.new_files == 0  # racily clean: read, and found in the repository


def test_same_content_is_stored_once_and_small_files_share_few_packs(tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "copies").mkdir(parents=True)
    for i in range(600):
        (library / f"f{i:04d}.bin").write_bytes(os.urandom(1500))
    same = os.urandom(50_000)
    for i in range(5):
        (library / "copies" / f"c{i}.bin").write_bytes(same)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    assert made.new_files == 601 and made.reused_files == 4
    assert len(packs(repo)) == 1
    assert made.stored_bytes < 600 * 1500 + 50_000 + 600 * 600  # headers and frames, not 4 KiB per file


def test_a_pack_opens_with_zstd_and_tar_and_holds_the_file_under_its_sha256(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    write_snapshot_of(repo, tree)
    content = (tree / "a b" / "notes.txt").read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    (pack,) = packs(repo)
    listed = subprocess.run(f"zstd -dc '{pack}' | tar -t", shell=True, capture_output=True, text=True, check=True)
    assert sha in listed.stdout.split()
    one = subprocess.run(f"zstd -dc '{pack}' | tar -xO {sha}", shell=True, capture_output=True, check=True)
    assert one.stdout == content
    index = json.loads((repo.index / f"{pack.name.removesuffix('.tar.zst')}.json").read_text())
    assert sha in {row[0] for row in index["blobs"]}
    assert hashlib.sha256(pack.read_bytes()).hexdigest() == pack.name.removesuffix(".tar.zst")


def test_repository_files_are_private(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    for path in [made.path, *packs(repo), *repo.index.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_snapshot_n_restores_exactly_after_five_more_snapshots_changed_deleted_and_readded(
        tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    states: list[tuple[str, dict]] = []
    removed = {}
    for step in range(6):
        if step == 1:
            (tree / "a b" / "notes.txt").write_text("new notes\n")
        elif step == 2:
            removed["big"] = (tree / "big.bin").read_bytes()
            (tree / "big.bin").unlink()
        elif step == 3:
            (tree / "big.bin").write_bytes(removed["big"])  # re-added: the same content, a new inode
            shutil.rmtree(tree / "empty dir")
        elif step == 4:
            os.chmod(tree / "tool.sh", 0o700)
            (tree / "new folder").mkdir()
            (tree / "new folder" / "card.png").write_bytes(os.urandom(9000))
        elif step == 5:
            os.unlink(tree / "link to notes")
            os.symlink("tool.sh", tree / "link to notes")
        age(tree, 3600 * (10 - step))
        made = write_snapshot_of(repo, tree)
        states.append((made.id, snapshot(tree)))
        if step == 3:
            assert made.new_bytes == 0  # the re-added file's bytes were still in the repository
    for snapshot_id, expected in states:
        restored = restore_to(repo, snapshot_id, tmp_path / f"restored-{snapshot_id}")
        assert snapshot(restored) == expected, snapshot_id


def test_a_damaged_pack_byte_is_found_by_read_data_naming_the_files_it_affects(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for i in range(40):
        (library / f"card{i:02d}.png").write_bytes(os.urandom(40_000))  # 1.6 MB: two frames of small files
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    assert verify_snapshots(repo, read_data=True).report().verdict == Verdict.PASS
    (pack,) = packs(repo)
    index = RepositoryIndex.load(repo.index)
    content = (library / "card33.png").read_bytes()
    target = index.get(hashlib.sha256(content).hexdigest())
    data = bytearray(pack.read_bytes())
    inside = data.find(content[20_000:20_032], target.offset, target.offset + target.length)  # stored as is
    assert inside > 0
    data[inside] ^= 0x40
    pack.write_bytes(bytes(data))
    verify_snapshots(repo)  # structure and references are intact: same size, same names
    with pytest.raises(VerificationError) as caught:
        verify_snapshots(repo, read_data=True)
    damaged = " ".join(caught.value.details)
    assert "library/card33.png" in damaged and f"snapshot {made.id}" in damaged
    assert "library/card00.png" not in damaged  # the first frame is intact: the damage is named per frame
    found = check_snapshots(repo, read_data=True)  # the same findings, returned instead of raised
    assert not found.ok and found.problems == caught.value.details
    report = found.report()
    assert report.verdict == Verdict.FAIL and any("library/card33.png" in c.detail for c in report.failures())
    with pytest.raises(VerificationError) as again:
        found.raise_if_failed()
    assert (again.value.message, again.value.exit_code) == (caught.value.message, 2)
    with pytest.raises(VerificationError):
        restore_to(repo, made.id, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_missing_pack_fails_the_structure_check_naming_a_file(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    packs(repo)[0].unlink()
    with pytest.raises(VerificationError) as caught:
        verify_snapshots(repo, made.id)
    assert "missing: pack" in " ".join(caught.value.details)


def test_a_changed_snapshot_file_fails_its_own_checksum(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    made.path.write_text(made.path.read_text().replace('"mode":493', '"mode":2541'))
    with pytest.raises(VerificationError) as caught:
        verify_snapshots(repo, made.id)
    assert "checksum" in " ".join(caught.value.details)


def _headers(ids_and_times: list[tuple[str, str]]) -> list[SnapshotHeader]:
    return [SnapshotHeader(id=i, created=t, source="x") for i, t in ids_and_times]


def test_retention_policy_keeps_last_and_the_newest_of_each_day() -> None:
    headers = _headers([("d", "2026-12-04T10:00:00Z"), ("c", "2026-12-04T09:00:00Z"),
                        ("b", "2026-12-03T23:00:00Z"), ("a", "2026-12-01T08:00:00Z")])
    assert RetentionPolicy(last=1).kept(headers) == {"d"}
    assert RetentionPolicy(daily=2).kept(headers) == {"d", "b"}
    assert RetentionPolicy(last=2, daily=3).kept(headers) == {"d", "c", "b", "a"}
    with pytest.raises(InputError):
        RetentionPolicy().check()


def test_prune_removes_what_no_kept_snapshot_needs_and_every_kept_one_restores(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    repo = Repository(tmp_path / "backups")
    states = []
    for step in range(4):
        for old in library.iterdir():
            if step >= 2 and old.name.startswith("gone"):
                old.unlink()
        for i in range(30):
            (library / f"{'gone' if step == 0 else 'keep'}-{step}-{i}.bin").write_bytes(os.urandom(5000))
        age(library)
        made = write_snapshot_of(repo, library)
        states.append((made.id, snapshot(library)))
    size_before = sum(p.stat().st_size for p in packs(repo))
    result = prune_repository(repo, RetentionPolicy(last=2))
    assert result.removed == [states[1][0], states[0][0]] and result.kept == [states[3][0], states[2][0]]
    assert result.packs_removed >= 1 and result.bytes_freed > 0
    assert sum(p.stat().st_size for p in packs(repo)) < size_before
    assert repo.snapshot_ids() == sorted([states[2][0], states[3][0]])
    verify_snapshots(repo, read_data=True)
    for snapshot_id, expected in states[2:]:
        assert snapshot(restore_to(repo, snapshot_id, tmp_path / f"r-{snapshot_id}")) == expected
    again = prune_repository(repo, RetentionPolicy(last=2))
    assert (again.removed, again.packs_removed) == ([], 0)


def test_prune_keeps_a_protected_snapshot(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, tree)
    write_snapshot_of(repo, tree)
    (repo.root / "retention-protected-release.txt").write_text(first.id + "\n")
    result = prune_repository(repo, RetentionPolicy(last=1))
    assert first.id in result.kept and result.removed == []


def test_snapshot_entries_carry_the_blob_and_the_file_identity(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    files = {e.path: e for e in read_entries(made.path) if e.sha256}
    st = (tree / "big.bin").stat()
    entry = files["library/big.bin"]
    assert (entry.size, entry.mtime_ns, entry.ino, entry.ctime_ns) == (st.st_size, st.st_mtime_ns, st.st_ino,
                                                                       st.st_ctime_ns)
    assert entry.sha256 == hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()


def test_restore_through_an_export_gives_the_same_tree(tree: Path, tmp_path: Path) -> None:
    age(tree)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    assert snapshot(restore_via_export(repo, made.id, tmp_path / "a")) == snapshot(tree)


def _forge(repo: Repository, snapshot_id: str, change) -> None:  # noqa: ANN001 - a function on entry records
    """Rewrite a snapshot file as a hostile repository would: entries changed, checksum line recomputed."""
    path = repo.snapshot_file(snapshot_id)
    lines = path.read_bytes().splitlines(keepends=True)
    body = [lines[0]] + [(json.dumps(change(json.loads(line))) + "\n").encode() for line in lines[1:-1]]
    digest = hashlib.sha256(b"".join(body)).hexdigest()
    path.write_bytes(b"".join(body) + (json.dumps({"end": digest}) + "\n").encode())


@pytest.mark.parametrize("change", [
    lambda r: {**r, "path": r["path"].replace("library/a b", "library/../escape")},
    lambda r: {**r, "target": "../../outside"} if r["type"] == "symlink" else r,
    lambda r: {**r, "path": "library/a b/./../../x"} if r["path"].endswith("notes.txt") else r,
    lambda r: {**r, "type": "hardlink"} if r["path"].endswith("notes.txt") else r,
])
def test_restore_refuses_a_forged_snapshot_and_writes_nothing_outside(tree: Path, tmp_path: Path, change) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    _forge(repo, made.id, change)
    verify_snapshots(repo, made.id)  # its checksum matches: only the restore's member rules stop it
    before = set(tmp_path.rglob("*"))
    with pytest.raises(VerificationError, match="restore refused"):
        restore_to(repo, made.id, tmp_path / "restored")
    assert set(tmp_path.rglob("*")) == before


def test_one_file_of_a_snapshot_is_extracted_checked(tree: Path, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    out = tmp_path / "notes.copy"
    digest = extract_snapshot_member(repo, made.id, "library/a b/notes.txt", out)
    assert out.read_bytes() == (tree / "a b" / "notes.txt").read_bytes()
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    with pytest.raises(InputError):
        extract_snapshot_member(repo, made.id, "database/mobius.dump", out)


@pytest.mark.parametrize("entry", [
    SnapshotEntry("library/a \"quoted\" \x1b\n é 日本", "file", 5, 0o644, 1, None, "ab" * 32, 7, 9),
    SnapshotEntry("library/link", "symlink", 0, 0o777, 2, "../x\u2028y"),
    SnapshotEntry("library/" + os.fsdecode(b"\xe9"), "dir", 0, 0o755, 3),
    SnapshotEntry("library/o", "file", 1, 0o644, 4, None, "cd" * 32, etag='"etag-1"'),
])
def test_a_snapshot_line_is_what_json_writes_and_reads_back(entry: SnapshotEntry) -> None:
    assert entry.to_line() == entry.to_record_line()
    assert SnapshotEntry.from_record(json.loads(entry.to_line())) == entry
