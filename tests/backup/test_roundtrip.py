"""Round trips through real archives: what goes in comes back byte for byte, with modes and mtimes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from backup_support import listing, snapshot, write_sidecar

from mobius.backup import (
    MANIFEST_NAME,
    SUMS_NAME,
    extract_member,
    restore_archive,
    test_restore,
    verify_archive,
    write_archive,
)
from mobius.backup.compression import GZIP, ZSTD


@pytest.mark.parametrize("codec", [None, ZSTD])
def test_round_trip_restores_names_contents_modes_and_mtimes(tree: Path, tmp_path: Path, codec) -> None:
    before = snapshot(tree)
    result = write_archive(tree, tmp_path / "backups", "mobius_library", codec=codec)
    assert result.files == 6 and result.symlinks == 1
    report = verify_archive(result.path)
    assert report.has_manifest and report.ok
    restored = restore_archive(result.path, tmp_path / "restored")
    assert restored.rollback is None
    assert snapshot(tmp_path / "restored") == before


def test_restore_moves_existing_folder_to_rollback_never_deletes(tree: Path, tmp_path: Path) -> None:
    archive = write_archive(tree, tmp_path / "backups", "mobius_library").path
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    result = restore_archive(archive, target)
    assert result.rollback is not None and result.rollback.name.startswith("target.rollback.")
    assert (result.rollback / "precious.txt").read_text() == "keep me"
    assert not (target / "precious.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mobius-restore-")]


def test_archive_layout_manifest_first_sums_last_and_sidecar_checks_with_sha256sum(tree: Path, tmp_path: Path) -> None:
    extra = tmp_path / "dot.env"
    extra.write_text("MOBIUS_ENV=staging\n")
    result = write_archive(tree, tmp_path / "backups", "mobius_library", extra_files={"workspace/.env": extra},
                           codec=ZSTD)
    assert result.path.name.startswith("mobius_library_") and result.path.name.endswith(".tar.zst")
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    check = subprocess.run(["sha256sum", "-c", result.sidecar.name], cwd=result.path.parent, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    plain = tmp_path / "plain.tar"
    subprocess.run(["zstd", "-q", "-d", str(result.path), "-o", str(plain)], check=True)
    with tarfile.open(plain) as tar:
        names = tar.getnames()
        manifest = tar.extractfile(MANIFEST_NAME).read().decode().splitlines()
        sums = tar.extractfile(SUMS_NAME).read().decode()
    assert names[0] == MANIFEST_NAME and names[-1] == SUMS_NAME and "workspace/.env" in names
    entries = {json.loads(line)["path"]: json.loads(line) for line in manifest[1:]}
    assert entries["library/empty dir/nested empty"]["type"] == "dir"
    assert entries["library/link to notes"] == {**entries["library/link to notes"], "type": "symlink",
                                                "target": "a b/notes.txt"}
    assert entries["library/private/secret.txt"]["mode"] == 0o600
    assert entries["library/empty file"]["size"] == 0
    digest = hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()
    assert f"{digest}  library/big.bin\n" in sums
    # A person with only GNU tools can check every file: extract, then sha256sum -c MANIFEST.sha256.
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(plain), "-C", str(out)], check=True)
    by_hand = subprocess.run(["sha256sum", "-c", "--quiet", SUMS_NAME], cwd=out, capture_output=True, text=True)
    assert by_hand.returncode == 0, by_hand.stdout


def test_compression_is_chosen_by_measuring_a_sample(tmp_path: Path) -> None:
    media, text = tmp_path / "media", tmp_path / "text"
    media.mkdir()
    text.mkdir()
    for i in range(5):
        (media / f"clip-{i}.mp4").write_bytes(os.urandom(300_000))
        (text / f"log-{i}.jsonl").write_text('{"card": "maki roll", "score": 3}\n' * 10_000)
    plain = write_archive(media, tmp_path / "backups", "media")
    packed = write_archive(text, tmp_path / "backups", "text")
    assert plain.path.name.endswith(".tar") and plain.compression == "none"
    assert packed.path.name.endswith(".tar.zst") and packed.archive_bytes < packed.bytes / 10
    for result in (plain, packed):
        verify_archive(result.path).raise_if_failed()
def test_the_compression_sample_is_spread_evenly_over_the_bytes_in_one_pass() -> None:
    """Files are picked while walking: the sample stays small and covers the whole library by bytes,
    so a library whose second half is compressible text is not judged by its media half alone."""
    import random

    from mobius.backup.compression import SAMPLE_FILES, SpreadSample
    from mobius.backup.manifest import DIR, FILE, ManifestEntry

    rng = random.Random(9)
    sizes = [rng.randint(1_000, 5_000_000) for _ in range(20_000)]
    sample = SpreadSample()
    sample.offer(ManifestEntry("library", DIR))
    starts, at = {}, 0
    for i, size in enumerate(sizes):
        entry = ManifestEntry(f"library/f{i}", FILE, size)
        starts[entry.path] = at
        at += size
        sample.offer(entry)
    assert SAMPLE_FILES <= len(sample.entries) < 2 * SAMPLE_FILES
    offsets = [starts[e.path] for e in sample.entries]
    assert offsets == sorted(offsets) and all(e.type == FILE for e in sample.entries)
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    assert max(gaps) < 3 * at / len(offsets)  # no stretch of the library left out
    assert offsets[-1] > 0.9 * at


def test_extract_member_returns_an_extra_file_checked_against_the_manifest(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "mobius.db"
    db.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 40)
    archive = write_archive(tree, tmp_path / "backups", "x", extra_files={"database/mobius.db": db}).path
    out = tmp_path / "out" / "copy.db"
    digest = extract_member(archive, "database/mobius.db", out)
    assert out.read_bytes() == db.read_bytes()
    assert digest == hashlib.sha256(db.read_bytes()).hexdigest()


def test_test_restore_compares_every_entry_and_cleans_up(tree: Path, tmp_path: Path) -> None:
    archive = write_archive(tree, tmp_path / "backups", "mobius_library").path
    before = listing(tmp_path)
    report = test_restore(archive)
    assert report.ok and report.files == 6
    assert report.compared == len(snapshot(tree))
    assert listing(tmp_path) == before


@pytest.mark.parametrize("layout", ["folder", "dot"])
def test_legacy_tar_gz_without_manifest_verifies_and_restores(tree: Path, tmp_path: Path, layout: str) -> None:
    backups = tmp_path / "old-backups"
    backups.mkdir()
    archive = backups / "library_20240101.tar.gz"
    if layout == "folder":
        subprocess.run(["tar", "-czf", str(archive), "-C", str(tree.parent), tree.name], check=True)
    else:
        subprocess.run(["tar", "-czf", str(archive), "-C", str(tree), "."], check=True)
    write_sidecar(archive)
    report = verify_archive(archive)
    assert not report.has_manifest and any("no per-file manifest" in note for note in report.notes)
    restore_archive(archive, tmp_path / "restored")
    before, after = snapshot(tree), snapshot(tmp_path / "restored")
    assert before.keys() == after.keys()
    for rel, entry in before.items():  # tar keeps whole seconds only
        restored = after[rel]
        assert entry[:2] == restored[:2] and entry[3:] == restored[3:], rel
        assert entry[2] // 10**9 == restored[2] // 10**9, rel


def test_gzip_archive_with_manifest_still_verifies_per_member(tree: Path, tmp_path: Path) -> None:
    result = write_archive(tree, tmp_path / "backups", "mobius_library", codec=GZIP)
    assert result.path.name.endswith(".tar.gz")
    report = verify_archive(result.path)
    assert report.has_manifest and report.compression == "gzip"
    restore_archive(result.path, tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(tree)


def test_backup_of_a_library_with_a_symlink_leaving_it_is_refused(tmp_path: Path) -> None:
    from mobius.errors import InputError

    library = tmp_path / "library"
    library.mkdir()
    (library / "escape").symlink_to("../elsewhere")
    with pytest.raises(InputError) as caught:
        write_archive(library, tmp_path / "backups", "mobius_library")
    assert "escape" in caught.value.details[0]
    assert not list((tmp_path / "backups").glob("*")) if (tmp_path / "backups").exists() else True


def test_copy_of_tree_is_untouched_by_backup(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    before = snapshot(tree)
    write_archive(tree, tmp_path / "backups", "mobius_library")
    assert snapshot(tree) == before


def test_test_restore_report_names_each_damaged_entry(tmp_path: Path) -> None:
    from mobius.backup.manifest import DIR, FILE
    from mobius.backup.trial_restore import compare_tree
    from mobius.errors import VerificationError

    tree = tmp_path / "restored"
    tree.mkdir()
    (tree / "a.bin").write_bytes(b"a" * 100)

    def reference() -> list[tuple]:
        rows = []
        for rel, kind in (("", DIR), ("a.bin", FILE)):
            st = os.lstat(tree / rel)
            sha = hashlib.sha256((tree / rel).read_bytes()).hexdigest() if kind == FILE else None
            rows.append((rel, kind, st.st_size if kind == FILE else 0, st.st_mode, st.st_mtime_ns, None, sha, True))
        return rows

    rows = reference()
    assert compare_tree(tree, iter(rows), tmp_path / "x.tar").report().ok
    st = os.lstat(tree / "a.bin")
    with open(tree / "a.bin", "r+b") as handle:
        handle.write(b"X")
    os.utime(tree / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    outcome = compare_tree(tree, iter(rows), tmp_path / "x.tar")
    failures = outcome.report().failures()
    assert [(c.name, c.detail) for c in failures] == [("backup.test_restore", "a.bin: sha256 differs")]
    with pytest.raises(VerificationError) as caught:
        outcome.raise_if_failed()
    assert caught.value.exit_code == 2 and "1 restored entries differ from the manifest (x.tar)" in caught.value.message
