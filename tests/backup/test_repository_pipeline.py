"""The pipelined seal of a backup (a pack fsynced and checked on a worker thread while the next one fills) and the
threaded writes of a restore: a failure on a worker, of any type, fails the command, leaves no snapshot and no
temp file, and the repository verifies; many packs and large files round-trip exactly."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, packs, restore_to, temp_files

from mobius.backup import pack as pack_module
from mobius.backup import snapshot_restore
from mobius.backup.extract import STAGING_PREFIX
from mobius.backup.index import RepositoryIndex
from mobius.backup.pack import PackWriter
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.repository_check import verify_snapshots
from mobius.errors import VerificationError

SMALL_PACKS = 256 << 10


def _library(root: Path) -> Path:
    """About 2.5 MiB: small files (grouped frames), files of 1-2 MiB (a frame each, stored), compressible text."""
    root.mkdir(parents=True)
    for i in range(40):
        (root / f"card{i:02d}.png").write_bytes(os.urandom(30_000))
    for i in range(3):
        (root / "clips").mkdir(exist_ok=True)
        (root / "clips" / f"clip{i}.mp4").write_bytes(os.urandom((1 << 20) + 1000 * i))
    (root / "notes.txt").write_bytes(b"sushi go nigiri maki " * 20_000)
    age(root)
    return root


def _assert_repository_valid(repo: Repository, states: dict[str, dict], tmp_path: Path) -> None:
    verify_snapshots(repo, read_data=True)
    assert temp_files(repo) == []
    assert repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    for snapshot_id, expected in states.items():
        assert snapshot(restore_to(repo, snapshot_id, tmp_path / f"restored-{snapshot_id}")) == expected


def test_many_packs_sealed_on_the_worker_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_module, "PACK_TARGET", SMALL_PACKS)
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    assert len(made.packs) >= 8 and len(packs(repo)) == len(made.packs)
    _assert_repository_valid(repo, {made.id: snapshot(library)}, tmp_path)


def test_a_pack_that_reads_back_wrong_on_the_worker_fails_the_create(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The device hands back other bytes for the third pack: found by its check on the worker thread."""
    monkeypatch.setattr(pack_module, "PACK_TARGET", SMALL_PACKS)
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    first_state = snapshot(library)
    for i in range(40):
        (library / f"new{i:02d}.png").write_bytes(os.urandom(30_000))
    (library / "clips" / "new.mp4").write_bytes(os.urandom(3 << 20))
    age(library)
    sealed_count = 0
    seal = PackWriter.seal

    def flipping_seal(self: PackWriter):  # noqa: ANN202 - a SealedPack
        nonlocal sealed_count
        sealed = seal(self)
        sealed_count += 1
        if sealed_count == 3:
            with open(sealed.stored, "r+b") as handle:
                handle.seek(sealed.size // 2)
                byte = handle.read(1)
                handle.seek(sealed.size // 2)
                handle.write(bytes([byte[0] ^ 0x01]))
        return sealed

    monkeypatch.setattr(PackWriter, "seal", flipping_seal)
    with pytest.raises(VerificationError, match="does not read back as written"):
        write_snapshot_of(repo, library)
    assert sealed_count >= 3
    assert repo.snapshot_ids() == [first.id]
    monkeypatch.setattr(PackWriter, "seal", seal)
    _assert_repository_valid(repo, {first.id: first_state}, tmp_path)
    again = write_snapshot_of(repo, library)
    _assert_repository_valid(repo, {first.id: first_state, again.id: snapshot(library)}, tmp_path)


@pytest.mark.parametrize("fault", ["crash@backup:pack-sealed", "crash@backup:pack-checked"])
def test_an_exception_of_any_type_while_sealing_leaves_no_snapshot(fault: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_module, "PACK_TARGET", SMALL_PACKS)
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    monkeypatch.setenv("MOBIUS_FAULT", fault)
    with pytest.raises(TypeError, match="injected crash"):
        write_snapshot_of(repo, library)
    monkeypatch.delenv("MOBIUS_FAULT")
    assert repo.snapshot_ids() == []
    assert temp_files(repo) == []
    assert repo.orphan_packs(RepositoryIndex.load(repo.index)) == []  # what was published is indexed
    made = write_snapshot_of(repo, library)
    _assert_repository_valid(repo, {made.id: snapshot(library)}, tmp_path)


def test_a_failed_check_on_the_worker_is_exit_2_and_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _library(ws / "uploads")
    (ws / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["MOBIUS_FAULT"] = "fail@backup:pack-sealed"
    done = subprocess.run([sys.executable, "-m", "mobius", "backup", "create", "--no-database", "-w", str(ws)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "fault injected at backup:pack-sealed" in done.stderr
    repo = Repository(ws / "backups")
    assert repo.snapshot_ids() == [] and temp_files(repo) == [] and packs(repo) == []


def _no_leftovers(tmp_path: Path, descriptors: int) -> None:
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(os.listdir("/proc/self/fd")) == descriptors


def test_a_damaged_large_blob_fails_the_restore_with_writes_in_flight(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    content = (library / "clips" / "clip2.mp4").read_bytes()
    (pack,) = packs(repo)
    data = bytearray(pack.read_bytes())
    inside = data.find(content[-5000:-4968])  # stored as is, near its end: earlier chunks are already handed over
    assert inside > 0
    data[inside] ^= 0x40
    pack.write_bytes(bytes(data))
    target = tmp_path / "restored"
    target.mkdir()
    (target / "kept.txt").write_bytes(b"the target before")
    descriptors = len(os.listdir("/proc/self/fd"))
    with pytest.raises(VerificationError, match="clip2.mp4"):
        restore_to(repo, made.id, target)
    assert sorted(os.listdir(target)) == ["kept.txt"]
    assert (target / "kept.txt").read_bytes() == b"the target before"
    _no_leftovers(tmp_path, descriptors)


class _FailingWrite:
    """`module.pwrite_all` failing with `error` at its nth call, as a device failing one write; else writing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: object, nth: int, error: Exception):
        self.monkeypatch, self.module, self.nth, self.error = monkeypatch, module, nth, error
        self.real = module.pwrite_all
        self.calls = 0
        monkeypatch.setattr(module, "pwrite_all", self)

    def __call__(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        self.calls += 1
        if self.calls == self.nth:
            raise self.error
        self.real(fd, data, offset)

    def undo(self) -> None:
        self.monkeypatch.setattr(self.module, "pwrite_all", self.real)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), TypeError("not ours")])
def test_a_failing_write_on_a_restore_thread_leaves_the_target_untouched(error: Exception, direct: bool,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Large files are written by threads: with O_DIRECT (a DirectAppender's thread) or without (pool threads)."""
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    target = tmp_path / "restored"
    target.mkdir()
    (target / "kept.txt").write_bytes(b"the target before")
    failing = _FailingWrite(monkeypatch, pack_module if direct else snapshot_restore, 4, error)
    if not direct:
        monkeypatch.setattr(pack_module.DirectAppender, "open", classmethod(lambda cls, path: None))
    descriptors = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    with pytest.raises(type(error)):
        restore_to(repo, made.id, target)
    assert failing.calls >= 4
    assert sorted(os.listdir(target)) == ["kept.txt"]
    assert (target / "kept.txt").read_bytes() == b"the target before"
    _no_leftovers(tmp_path, descriptors)
    assert threading.active_count() <= threads


def test_direct_and_page_cache_writes_make_the_same_pack(tmp_path: Path) -> None:
    blobs = [os.urandom(n) for n in (5000, (4 << 20) - 7, 1, 300_000, (9 << 20) + 4095)] + [b"maki " * 50_000]
    names = []
    for direct in (True, False):
        writer = PackWriter(tmp_path / f"packs-{direct}", direct=direct)
        if writer.direct != direct:
            writer.abort()
            pytest.skip("the file system under tmp_path has no O_DIRECT")
        for data in blobs:
            sha = hashlib.sha256(data).hexdigest()
            if len(data) > 1 << 20:
                writer.add_stream(sha, len(data), [data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)])
            else:
                writer.add(sha, data)
        info = writer.finish()
        path = pack_module.pack_path(tmp_path / f"packs-{direct}", info.name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info.name
        assert pack_module.check_pack(path, info.blobs).damaged == {}
        names.append(info.name)
    assert names[0] == names[1]


def test_large_new_media_goes_into_a_stored_frame_as_it_is_hashed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the file system has no O_DIRECT (packs then go through the page cache): a new 5 MiB clip is written
    into a stored frame while it is hashed, its tar header written once its sha256 is known (the pack opens with
    zstd and tar); a second new copy of it is taken back out of the pack, and a new path holding bytes the
    repository has is recognised: neither takes space."""
    monkeypatch.setattr(pack_module.DirectAppender, "open", classmethod(lambda cls, path: None))
    unhashed = []
    add_unhashed = PackWriter.add_unhashed
    monkeypatch.setattr(PackWriter, "add_unhashed", lambda self, *a: unhashed.append(1) or add_unhashed(self, *a))
    library = tmp_path / "library"
    library.mkdir()
    clip = os.urandom((5 << 20) + 123)
    (library / "a.mp4").write_bytes(clip)
    (library / "b.mp4").write_bytes(clip)
    (library / "c.mp4").write_bytes(os.urandom(5 << 20))
    (library / "small.png").write_bytes(os.urandom(5000))  # after the clips: a frame written after a take-back
    age(library)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    first_state = snapshot(library)
    assert made.new_files == 3 and made.reused_files == 1 and len(unhashed) == 3
    assert made.stored_bytes < 2 * (5 << 20) + (1 << 20)
    (pack,) = packs(repo)
    sha = hashlib.sha256(clip).hexdigest()
    out = subprocess.run(f"zstd -dc '{pack}' | tar -xO {sha}", shell=True, capture_output=True, check=True)
    assert out.stdout == clip
    listed = subprocess.run(f"zstd -dc '{pack}' | tar -t", shell=True, capture_output=True, text=True, check=True)
    assert len(listed.stdout.split()) == 3
    (library / "d.mp4").write_bytes(clip)
    age(library)
    again = write_snapshot_of(repo, library)
    assert again.new_files == 0 and again.new_bytes == 0 and again.packs == []
    _assert_repository_valid(repo, {made.id: first_state, again.id: snapshot(library)}, tmp_path)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), TypeError("not ours")])
def test_a_failing_direct_write_on_the_pack_thread_fails_the_create(error: Exception, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The device fails the third 4 MiB write of a pack (written by its own thread): the create fails with that
    error, leaves no snapshot and no temp file, and the next one succeeds."""
    monkeypatch.setattr(pack_module, "PACK_TARGET", 8 << 20)
    library = tmp_path / "library"
    library.mkdir()
    for i in range(6):
        (library / f"clip{i}.mp4").write_bytes(os.urandom(3 << 20))
    age(library)
    failing = _FailingWrite(monkeypatch, pack_module, 3, error)
    repo = Repository(tmp_path / "backups")
    with pytest.raises(type(error)):
        write_snapshot_of(repo, library)
    assert failing.calls >= 3
    failing.undo()
    assert repo.snapshot_ids() == [] and temp_files(repo) == []
    assert repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    made = write_snapshot_of(repo, library)
    _assert_repository_valid(repo, {made.id: snapshot(library)}, tmp_path)


def test_a_device_that_refuses_an_o_direct_write_gets_it_through_the_page_cache(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    refused = []
    pwrite_all = pack_module.pwrite_all

    def picky(fd: int, view: memoryview, at: int) -> None:  # EINVAL for every O_DIRECT write, as a device might
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(at)
            raise OSError(errno.EINVAL, "Invalid argument")
        pwrite_all(fd, view, at)

    monkeypatch.setattr(pack_module, "pwrite_all", picky)
    library = _library(tmp_path / "library")
    (library / "clips" / "long.mp4").write_bytes(os.urandom(9 << 20))
    age(library)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, library)
    assert refused
    monkeypatch.setattr(pack_module, "pwrite_all", pwrite_all)
    _assert_repository_valid(repo, {made.id: snapshot(library)}, tmp_path)


@pytest.mark.parametrize("error", [MemoryError(), KeyError("not ours")])
def test_a_failure_compressing_a_group_on_its_thread_fails_the_create(error: BaseException, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of small files are compressed on a thread of their own: the third group fails there, with an
    error of any type; the create fails with it, leaves no snapshot, no temp file and no thread behind, and the
    next one succeeds and round-trips."""
    library = tmp_path / "library"
    library.mkdir()
    for i in range(400):  # compressible: groups zstd shrinks go to the thread (stored ones are written inline)
        (library / f"card{i:03d}.txt").write_bytes(f"card {i} nigiri maki tempura ".encode() * 400)
    age(library)
    whole = pack_module.FrameChooser.whole
    calls = []

    def failing(self, data) -> bytes:  # noqa: ANN001
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise error
        return whole(self, data)

    monkeypatch.setattr(pack_module.FrameChooser, "whole", failing)
    repo = Repository(tmp_path / "backups")
    with pytest.raises(type(error)):
        write_snapshot_of(repo, library)
    assert len(calls) >= 3 and calls[2].startswith("pack-zstd")
    assert not [t for t in threading.enumerate() if t.name.startswith("pack-zstd")]
    monkeypatch.setattr(pack_module.FrameChooser, "whole", whole)
    assert repo.snapshot_ids() == [] and temp_files(repo) == []
    assert repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    made = write_snapshot_of(repo, library)
    _assert_repository_valid(repo, {made.id: snapshot(library)}, tmp_path)
