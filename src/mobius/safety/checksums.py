"""Files in `sha256sum` format, so `sha256sum -c FILE` checks what Mobius wrote.

GNU sha256sum escapes a name holding a backslash or newline by starting the line with `\\`
and writing `\\\\` and `\\n`; we write and read the same form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from mobius.errors import InputError
from mobius.safety.atomic import atomic_write

PLAIN_LINE = re.compile(r"[0-9a-fA-F]{64} [ *]")
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")  # issuperset(str) checks the 64 characters in C


def format_line(digest: str, name: str) -> str:
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def parse_line(line: str) -> tuple[str, str]:
    """(digest, name) from one line; raises ValueError on a malformed line."""
    if PLAIN_LINE.match(line):  # the common case, checked in C: 64 hex digits, "  " or " *", a name
        return line[:64].lower(), line[66:].rstrip("\n")
    line = line.rstrip("\n")
    escaped = line.startswith("\\")
    if escaped:
        line = line[1:]
    digest, sep, name = line[:64], line[64:66], line[66:]
    if len(digest) != 64 or sep not in ("  ", " *") or not HEX_DIGITS.issuperset(digest):
        raise ValueError(line)
    if escaped:
        name = _unescape(name)
    return digest.lower(), name


def _unescape(name: str) -> str:
    out, i = [], 0
    while i < len(name):
        if name[i] == "\\" and i + 1 < len(name):
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(name[i + 1], name[i + 1]))
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def write_checksum_file(path: Path, entries: Iterable[tuple[str, str]]) -> None:
    """Write (digest, name) pairs atomically."""
    with atomic_write(path, "w") as handle:
        for digest, name in entries:
            handle.write(format_line(digest, name))


def read_checksum_file(path: Path) -> Iterator[tuple[str, str]]:
    """Yield (digest, name) pairs; a malformed line is an input error naming its line number."""
    try:
        handle = open(path, encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise InputError(f"cannot read checksum file {path}: {exc.strerror}", hint="check the path") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield parse_line(line)
            except ValueError:
                raise InputError(
                    f"{path}:{number}: not a sha256sum line", hint="expected '<64 hex digits>  <name>'"
                ) from None
