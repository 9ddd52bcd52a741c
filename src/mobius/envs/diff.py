"""`env diff A B`: keys only in A, only in B, and changed, without ever printing a secret.

Secrets (names with PASSWORD, SECRET, TOKEN or KEY, and the password inside any URL) are shown as
a short sha256 fingerprint only, so a person can tell *whether* one changed, never *what* it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import environment_file, is_secret_name, mask_text
from mobius.envs.environments import load_environment
from mobius.safety.envfile import read_env_file


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class DiffEntry:
    key: str
    status: str  # only_a, only_b, changed
    a: str | None  # shown form: masked or fingerprinted
    b: str | None
    secret: bool = False

    def line(self, a_name: str, b_name: str) -> str:
        if self.status == "only_a":
            return f"- {self.key}={self.a}  (only in {a_name})"
        if self.status == "only_b":
            return f"+ {self.key}={self.b}  (only in {b_name})"
        if self.secret:
            return f"~ {self.key}: changed ({self.a} -> {self.b})"
        return f"~ {self.key}: {self.a} -> {self.b}"


@dataclass
class EnvDiff:
    a: str
    b: str
    entries: list[DiffEntry] = field(default_factory=list)
    same: int = 0

    @property
    def differs(self) -> bool:
        return bool(self.entries)

    def lines(self) -> list[str]:
        if not self.entries:
            return [f"{self.a} and {self.b} have the same settings ({self.same} keys)"]
        return [e.line(self.a, self.b) for e in self.entries] + [
            f"{len(self.entries)} difference(s), {self.same} key(s) equal"]

    def to_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "differs": self.differs, "same": self.same,
                "entries": [e.__dict__ for e in self.entries]}


def shown(key: str, value: str) -> str:
    """The printable form of one value: a fingerprint for secret names, URLs with their password masked."""
    return fingerprint(value) if is_secret_name(key) else mask_text(value)


def compare(key: str, a: str, b: str) -> DiffEntry:
    if is_secret_name(key):
        return DiffEntry(key, "changed", fingerprint(a), fingerprint(b), secret=True)
    a_shown, b_shown = mask_text(a), mask_text(b)
    if a_shown == b_shown:  # only a password inside the value differs
        return DiffEntry(key, "changed", a_shown + f" [password {fingerprint(a)}]",
                         b_shown + f" [password {fingerprint(b)}]", secret=True)
    if a_shown != a or b_shown != b:
        a_shown += f" [{fingerprint(a)}]"
        b_shown += f" [{fingerprint(b)}]"
    return DiffEntry(key, "changed", a_shown, b_shown)


def diff_values(a_name: str, b_name: str, a: dict[str, str], b: dict[str, str]) -> EnvDiff:
    result = EnvDiff(a_name, b_name)
    for key in sorted(set(a) | set(b)):
        if key not in b:
            result.entries.append(DiffEntry(key, "only_a", shown(key, a[key]), None, is_secret_name(key)))
        elif key not in a:
            result.entries.append(DiffEntry(key, "only_b", None, shown(key, b[key]), is_secret_name(key)))
        elif a[key] != b[key]:
            result.entries.append(compare(key, a[key], b[key]))
        else:
            result.same += 1
    return result


def diff_environments(root: Path, a: str, b: str) -> EnvDiff:
    """Compare the two environment files as written (what `diff -u .env.staging .env.production` showed)."""
    for name in (a, b):
        load_environment(root, name)  # unknown or malformed: one clear line, exit 1
    return diff_values(a, b, read_env_file(environment_file(root, a)), read_env_file(environment_file(root, b)))
