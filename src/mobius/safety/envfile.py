"""Read and edit a dotenv file without losing anything a person wrote in it.

Edits keep comments, blank lines and order, replace a key in place, remove later duplicates
of a key, and land atomically (the runbook's `echo KEY=... >> .env` appended duplicates).
"""

from __future__ import annotations

import re
from pathlib import Path

from mobius.safety.atomic import atomic_write_text

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=~-]*$")


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return re.sub(r"\\(.)", r"\1", inner) if raw[0] == '"' else inner
    return raw.split(" #", 1)[0].rstrip()


def quote_value(value: str) -> str:
    """Quote a value only when it needs it, so files stay readable."""
    if _SAFE_VALUE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_env_file(path: Path) -> dict[str, str]:
    """Key -> value; the first occurrence of a duplicated key wins, as python-dotenv's last does not."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        if match and match.group(1) not in values:
            values[match.group(1)] = _unquote(match.group(2))
    return values


def set_env_values(path: Path, updates: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, with None, remove) keys atomically. Returns each key's previous value."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    previous: dict[str, str | None] = {key: None for key in updates}
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        match = _LINE.match(line)
        key = match.group(1) if match else None
        if key is None or key not in updates:
            out.append(line)
            continue
        if key in seen:
            continue  # a duplicate of a key we already wrote
        seen.add(key)
        previous[key] = _unquote(match.group(2))
        if updates[key] is not None:
            out.append(f"{key}={quote_value(updates[key])}")
    for key, value in updates.items():
        if key not in seen and value is not None:
            out.append(f"{key}={quote_value(value)}")
    atomic_write_text(path, "\n".join(out) + "\n" if out else "")
    return previous
