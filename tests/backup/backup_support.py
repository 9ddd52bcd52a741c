"""Helpers for the backup tests: real trees, snapshots, crafted (hostile) tar archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

MTIME_NS = 1_600_000_000_123_456_789


def build_tree(root: Path) -> Path:
    """Unicode and space names, empty files and folders, modes, ns mtimes, a symlink, a multi-MiB file."""
    root.mkdir(parents=True)
    (root / "a b" / "ç 日本").mkdir(parents=True)
    (root / "a b" / "ç 日本" / "carte à jouer.png").write_bytes(os.urandom(3000))
    (root / "a b" / "notes.txt").write_text("sushi go\n" * 200, encoding="utf-8")
    (root / "empty file").write_bytes(b"")
    (root / "empty dir" / "nested empty").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "tool.sh", 0o755)
    (root / "private").mkdir()
    (root / "private" / "secret.txt").write_text("s")
    os.chmod(root / "private" / "secret.txt", 0o600)
    os.symlink("a b/notes.txt", root / "link to notes")
    for i, path in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(path, ns=(MTIME_NS + i, MTIME_NS + i * 1000 + 7), follow_symlinks=False)
    os.chmod(root / "private", 0o750)
    os.utime(root / "private", ns=(MTIME_NS, MTIME_NS + 99))
    os.utime(root, ns=(MTIME_NS, MTIME_NS + 5))
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything a restore must bring back: type, mode, mtime_ns, and content or link target."""
    out: dict[str, tuple] = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, hashlib.sha256(path.read_bytes()).digest())
    return out


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def write_sidecar(archive: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")


def hostile_archive(path: Path, members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A .tar.gz holding exactly `members` (crafted, as an attacker would), with a matching sidecar."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info, data = member if isinstance(member, tuple) else (member, None)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    write_sidecar(path)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.mtime = 1_600_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info
