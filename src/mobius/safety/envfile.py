"""Read and edit a dotenv file without losing anything a person wrote in it.

One parser, python-dotenv's own (`dotenv.parser.parse_stream`), so a file reads here exactly as
python-dotenv, docker compose's env_file and a shell user expect: quoted values with a trailing
comment, multi-line quoted values, `export KEY=...`, escapes in double quotes. Our rules on top:
- a duplicated key: the last occurrence wins (as python-dotenv reads it); an edit keeps the first
  occurrence's position, writes the new value there and drops the duplicates;
- no interpolation: `$HOME` in a value is those five characters;
- values are written so they read back exactly: bare when safe, else single-quoted with `\\` and
  `\'` escaped (python-dotenv reads single quotes the same way and does not interpolate them);
- control characters (a newline would inject a second setting) are refused, never written.
Edits keep comments, blank lines and order byte for byte, and land atomically with the file's mode kept.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from dotenv.parser import Binding, parse_stream

from mobius.errors import InputError
from mobius.safety.atomic import atomic_write_text

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=~-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LEADING_SPACE = re.compile(r"^\s*")
NEW_FILE_MODE = 0o600


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


def _read_text(path: Path) -> str:
    if not path.exists():
        return ""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a settings file", hint="move it aside; .env must be a file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})", hint="re-save it as UTF-8") from None


def _bindings(text: str, *, universal_newlines: bool = False) -> Iterator[Binding]:
    """python-dotenv's bindings; their `original.string`s concatenate back to `text` exactly.

    `universal_newlines` reads CR LF and CR as LF, as python-dotenv's own file reading does (it opens
    the file in text mode), so a multi-line value reads the same; an edit keeps the bytes instead.
    """
    return parse_stream(io.StringIO(text, newline=None if universal_newlines else ""))


def read_env_file(path: Path) -> dict[str, str]:
    """Key -> value, as `dotenv_values(path, interpolate=False)` reads it; a key without `=` is skipped."""
    return {b.key: b.value for b in _bindings(_read_text(path), universal_newlines=True)
            if b.key is not None and b.value is not None}


def malformed_lines(path: Path) -> list[int]:
    """Line numbers of what is neither blank, a comment, nor KEY=VALUE (read_env_file skips them silently)."""
    return [_first_line(b) for b in _bindings(_read_text(path))
            if b.error or (b.key is not None and b.value is None)]


def _first_line(binding: Binding) -> int:
    """The line a binding's text starts on, past the blank lines python-dotenv gives to the next binding."""
    leading = _LEADING_SPACE.match(binding.original.string).group(0)
    return binding.original.line + len(re.findall(r"\r\n|\n|\r", leading))


def set_env_values(path: Path, updates: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, with None, remove) keys atomically, keeping the file's mode. Returns previous values.

    The caller holds the settings lock (config.set_setting) so that the read-modify-write is not
    interleaved with another writer's.
    """
    for key, value in updates.items():
        if value is not None:
            refuse_control_characters(key, value)
    text = _read_text(path)
    previous: dict[str, str | None] = dict.fromkeys(updates)
    seen: set[str] = set()
    out: list[str] = []
    for binding in _bindings(text):
        key, original = binding.key, binding.original.string
        if key is None or key not in updates or binding.value is None:
            out.append(original)
            continue
        previous[key] = binding.value  # the last occurrence is the effective one
        leading = _LEADING_SPACE.match(original).group(0)
        if key in seen or updates[key] is None:
            out.append(leading)
            continue
        seen.add(key)
        line_end = original[len(original.rstrip("\r\n")):]
        out.append(f"{leading}{key}={quote_value(updates[key])}{line_end}")
    body = "".join(out)
    for key, value in updates.items():
        if key not in seen and value is not None:
            if body and not body.endswith(("\n", "\r")):
                body += "\n"
            body += f"{key}={quote_value(value)}\n"
    mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else NEW_FILE_MODE
    atomic_write_text(path, body, file_mode=mode)
    return previous
