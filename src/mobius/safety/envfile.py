"""Read and edit a dotenv file without losing anything a person wrote in it.

One parser, one rule, used by the settings loader and by every writer:
- a duplicated key: the last occurrence wins (as a shell's `source` and python-dotenv read it);
  an edit keeps the first line's position, writes the new value there and drops the duplicates;
- no interpolation: `$HOME` in a value is those five characters;
- values are written so they read back exactly: bare when safe, else single-quoted with `\\` and
  `\'` escaped (python-dotenv reads single quotes the same way and does not interpolate them);
- control characters (a newline would inject a second setting) are refused, never written.
Edits keep comments, blank lines and order, and land atomically with the file's mode kept.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from mobius.errors import InputError
from mobius.safety.atomic import atomic_write_text

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=~-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NEW_FILE_MODE = 0o600


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        if raw[0] == "'":
            return re.sub(r"\\([\\'])", r"\1", inner)
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), inner)
    return raw.split(" #", 1)[0].rstrip()


def refuse_control_characters(name: str, value: str) -> None:
    """One clear line instead of writing a value that would read back as something else."""
    if _CONTROL.search(value):
        raise InputError(f"{name} contains a control character (newline, tab or similar): {value!r}",
                         hint="use a value without control characters")


def quote_value(value: str) -> str:
    """Bare when safe, else single-quoted so it reads back byte for byte, with no interpolation."""
    if _SAFE_VALUE.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a settings file", hint="move it aside; .env must be a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})", hint="re-save it as UTF-8") from None


def read_env_file(path: Path) -> dict[str, str]:
    """Key -> value; a duplicated key takes its last value."""
    values: dict[str, str] = {}
    for line in _read_lines(path):
        match = _LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            values[match.group(1)] = _unquote(match.group(2))
    return values


def malformed_lines(path: Path) -> list[int]:
    """Line numbers that are neither blank, a comment, nor KEY=VALUE (read_env_file skips them silently)."""
    return [number for number, line in enumerate(_read_lines(path), 1)
            if line.strip() and not line.lstrip().startswith("#") and not _LINE.match(line)]


def set_env_values(path: Path, updates: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, with None, remove) keys atomically, keeping the file's mode. Returns previous values.

    The caller holds the settings lock (config.set_setting) so that the read-modify-write is not
    interleaved with another writer's.
    """
    for key, value in updates.items():
        if value is not None:
            refuse_control_characters(key, value)
    lines = _read_lines(path)
    previous: dict[str, str | None] = dict.fromkeys(updates)
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        match = _LINE.match(line)
        key = match.group(1) if match and not line.lstrip().startswith("#") else None
        if key is None or key not in updates:
            out.append(line)
            continue
        previous[key] = _unquote(match.group(2))  # the last occurrence is the effective one
        if key in seen:
            continue
        seen.add(key)
        if updates[key] is not None:
            out.append(f"{key}={quote_value(updates[key])}")
    for key, value in updates.items():
        if key not in seen and value is not None:
            out.append(f"{key}={quote_value(value)}")
    mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else NEW_FILE_MODE
    atomic_write_text(path, "\n".join(out) + "\n" if out else "", file_mode=mode)
    return previous
