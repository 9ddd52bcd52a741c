"""What a member may be, checked by us for every member (tar-slip), never left to tarfile's filters.

Python 3.11.7 predates fixes for known bypasses of tarfile's extraction filters
(CVE-2024-12718, CVE-2025-4138, CVE-2025-4330, CVE-2025-4517), so verify and restore both
apply these rules themselves: regular files, folders, and relative symlinks whose target stays
inside the tree; no absolute names, no `..`, no hardlinks, devices, FIFOs or sparse files.
"""

from __future__ import annotations

import posixpath
import tarfile

ALLOWED = "regular files, folders and symlinks that stay inside"
_PLAIN_FILE = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE))  # sparse too when PAX GNU.sparse records say so


def normalize(name: str) -> str:
    """The member name without `./` and repeated slashes (the form `tar -czf dir` and `tar -C d .` write)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def kind(info: tarfile.TarInfo) -> str:
    if info.type in _PLAIN_FILE and info.sparse is None:  # most members, without two method calls
        return "file"
    if info.isreg() and not info.issparse():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "fifo"
    if info.issparse():
        return "sparse file"
    return f"type {info.type!r}"


def name_problem(raw_name: str) -> str | None:
    """Why a member name is unsafe to extract, or None."""
    if not raw_name or "\0" in raw_name:
        return "empty or NUL in name"
    if raw_name.startswith("/") or (len(raw_name) > 1 and raw_name[1] == ":"):
        return "absolute path"
    if ".." in raw_name.split("/"):
        return "'..' in path"
    return None  # the archive's root "." itself is fine too


def link_target_problem(name: str, target: str, root: str = "") -> str | None:
    """Why a symlink at `name` (normalized) with `target` would point outside `root`, or None."""
    if not target or "\0" in target:
        return "empty symlink target"
    if target.startswith("/"):
        return f"symlink to absolute path {target}"
    rel = name[len(root) + 1:] if root and name.startswith(root + "/") else name
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink escapes the target folder ({target})"
    return None


def member_problem(info: tarfile.TarInfo, root: str = "") -> str | None:
    """Why this member must not be extracted (name, type or link), or None."""
    problem = name_problem(info.name)
    if problem:
        return problem
    what = kind(info)
    if what in ("file", "dir"):
        return None
    if what == "symlink":
        return link_target_problem(normalize(info.name), info.linkname, root)
    if what == "hardlink":
        return f"hardlink to {info.linkname} (only {ALLOWED} are restored)"
    return f"{what} (only {ALLOWED} are restored)"


def ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
