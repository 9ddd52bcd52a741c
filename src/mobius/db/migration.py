"""Migration files: `NNNN_name.sql` with `-- migrate:<section>` markers.

Sections: `up`, `down`, `verify` (queries that must each return one row whose first value is 0 or
true), and for phased migrations `backfill` (an UPDATE run in committed batches over a key range)
and `no-transaction` (statements such as CREATE INDEX CONCURRENTLY). `-- migrate:irreversible`
declares that the migration has no down section; its rollback restores the dump taken before it.
A section marker may name a dialect (`-- migrate:up sqlite`, `-- migrate:up postgresql`); that
section then replaces the plain one on that engine.

Where files come from: the migrations shipped inside the package (`mobius/db/migrations/`) and the
workspace's `migrations/` folder, merged by version; a version defined twice is an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mobius.config import Workspace
from mobius.db.sqltext import Statement, split_statements, strip_comments
from mobius.errors import InputError
from mobius.safety.atomic import atomic_write_text

MAX_VERSION_DIGITS = 9  # the version is an INTEGER column: 20 digits would overflow it
FILE_NAME = re.compile(r"^(\d{4,})_([a-z0-9][a-z0-9_]*)\.sql$")
MARKER = re.compile(r"^--\s*migrate:([a-z-]+)(.*)$")
SECTIONS = ("up", "down", "verify", "backfill", "no-transaction")
FLAGS = ("irreversible",)
DIALECTS = ("sqlite", "postgresql")
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "END", "START", "SAVEPOINT", "RELEASE"}

TEMPLATE = """\
-- {version:04d}_{name}: describe what this migration changes and why.
--
-- Each section is plain SQL. Up, verify and the history row commit in one transaction:
-- a failing statement or a failing verify leaves schema, data and history as they were.
-- Do not write BEGIN/COMMIT: the runner does.

-- migrate:up
-- ALTER TABLE games ADD COLUMN example TEXT;

-- migrate:down
-- ALTER TABLE games DROP COLUMN example;

-- migrate:verify
-- Each query returns one row whose first value is 0 (e.g. a count of bad rows) or true.
-- SELECT COUNT(*) FROM games WHERE example IS NULL;

-- Optional, for big tables (see docs/db.md, "Phased migrations"):
-- -- migrate:backfill table=games key=id batch=10000
-- UPDATE games SET example = 'x' WHERE id >= :lo AND id < :hi AND example IS NULL;
-- -- migrate:no-transaction
-- CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_games_example ON games(example);
-- -- migrate:irreversible    (no down section; rollback restores the dump taken before it)
"""


@dataclass(frozen=True)
class Backfill:
    """A batched UPDATE: `sql` uses :lo and :hi, the half-open key range of one batch."""

    table: str
    key: str
    batch: int
    statements: tuple[Statement, ...]


@dataclass
class Migration:
    """One parsed migration file."""

    version: int
    name: str
    path: Path
    checksum: str
    sections: dict[str, dict[str | None, list[Statement]]] = field(default_factory=dict)
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    irreversible: bool = False
    builtin: bool = False

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, section: str, dialect: str) -> list[Statement]:
        """The section's statements for `dialect` (its dialect-specific variant when there is one)."""
        variants = self.sections.get(section, {})
        return list(variants.get(dialect, variants.get(None, [])))

    def backfill(self, dialect: str) -> Backfill | None:
        statements = self.statements("backfill", dialect)
        if not statements:
            return None
        opts = self.options.get("backfill", {})
        return Backfill(opts.get("table", ""), opts.get("key", "id"), int(opts.get("batch", "10000")),
                        tuple(statements))

    def is_phased(self, dialect: str) -> bool:
        return bool(self.statements("backfill", dialect) or self.statements("no-transaction", dialect))

    def problems(self) -> list[str]:
        """Why this file cannot be applied yet (a fresh `mobius db new` template, say); empty when it can."""
        found = []
        if "up" not in self.sections:
            found.append(f"{self.path}: no statements under -- migrate:up (write the SQL that makes the change)")
        if not self.irreversible and "down" not in self.sections:
            found.append(f"{self.path}: no -- migrate:down section (write it, or declare -- migrate:irreversible: "
                         "its rollback then restores the dump taken before it)")
        return found


def file_checksum(data: bytes) -> str:
    """sha256 of the file with line endings normalized, so a CRLF checkout is not drift."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


def parse_migration(path: Path, data: bytes | None = None, *, builtin: bool = False) -> Migration:
    """Parse one file; a malformed file is an input error naming the file and line."""
    match = FILE_NAME.match(path.name)
    if not match:
        raise InputError(f"migration file name {path.name!r} is not NNNN_name.sql ({path})",
                         hint="rename it like 0003_add_publisher.sql (lower case, digits, underscores)")
    if len(match.group(1)) > MAX_VERSION_DIGITS:
        raise InputError(f"migration version {match.group(1)} in {path.name!r} has more than {MAX_VERSION_DIGITS} "
                         "digits", hint="number migrations 0001, 0002, ... (mobius db new picks the next number)")
    if data is None:
        if not path.is_file():
            raise InputError(f"{path} is not a file", hint="a migration is one NNNN_name.sql file; move the folder "
                                                            "out of migrations/")
        data = path.read_bytes()
    try:
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", hint="save the migration as UTF-8") from None
    migration = Migration(int(match.group(1)), match.group(2), path, file_checksum(data), builtin=builtin)
    current: tuple[str, str | None] | None = None
    chunks: dict[tuple[str, str | None], list[tuple[int, str]]] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        marker = MARKER.match(line.strip())
        if not marker:
            if current is not None:
                chunks[current].append((number, line))
            elif strip_comments(line):
                raise InputError(f"{path}:{number}: SQL before the first -- migrate:up marker",
                                 hint="put statements under -- migrate:up, -- migrate:down or -- migrate:verify")
            continue
        section, args = marker.group(1), marker.group(2).split()
        if section in FLAGS:
            migration.irreversible = True
            current = None
            continue
        if section not in SECTIONS:
            raise InputError(f"{path}:{number}: unknown section '-- migrate:{section}'",
                             hint=f"use one of: {', '.join(SECTIONS + FLAGS)}")
        dialect = None
        for arg in args:
            if "=" in arg:
                key, value = arg.split("=", 1)
                migration.options.setdefault(section, {})[key] = value
            elif arg in DIALECTS:
                dialect = arg
            else:
                raise InputError(f"{path}:{number}: unexpected {arg!r} after -- migrate:{section}",
                                 hint="a marker takes a dialect (sqlite, postgresql) and key=value options")
        current = (section, dialect)
        if current in chunks:
            raise InputError(f"{path}:{number}: section -- migrate:{section} {dialect or ''} appears twice".strip())
        chunks[current] = []
    for (section, dialect), lines in chunks.items():
        body = "\n".join(line for _, line in lines)
        first = lines[0][0] if lines else 1
        statements = split_statements(body, first_line=first)
        for statement in statements:
            head = strip_comments(statement.sql).split(None, 1)[0].upper().rstrip(";")
            if head in TRANSACTION_CONTROL:
                raise InputError(f"{path}:{statement.line}: {head} in a migration",
                                 hint="remove BEGIN/COMMIT: the runner wraps each migration in its own transaction")
        if statements:
            migration.sections.setdefault(section, {})[dialect] = statements
    _check_shape(migration)
    return migration


def _check_shape(m: Migration) -> None:
    if m.irreversible and "down" in m.sections:
        raise InputError(f"{m.path}: declared irreversible but has a down section",
                         hint="remove one of them: -- migrate:irreversible or the down section")
    if "backfill" in m.sections:
        opts = m.options.get("backfill", {})
        if not opts.get("table"):
            raise InputError(f"{m.path}: -- migrate:backfill needs table=NAME (and optionally key=id batch=10000)")
        if not opts.get("batch", "1").isdigit() or int(opts.get("batch", "1")) < 1:
            raise InputError(f"{m.path}: backfill batch= must be a positive number of keys")
        for variants in m.sections["backfill"].values():
            for statement in variants:
                if ":lo" not in statement.sql or ":hi" not in statement.sql:
                    raise InputError(f"{m.path}:{statement.line}: a backfill statement must use :lo and :hi",
                                     hint="e.g. UPDATE games SET x = ... WHERE id >= :lo AND id < :hi")


def builtin_migration_dir() -> Path:
    return Path(str(resources.files("mobius.db") / "migrations"))


def discover(ws: Workspace | None, *, extra_dir: Path | None = None) -> list[Migration]:
    """The shipped migrations plus the workspace's, sorted by version; duplicates are an error."""
    found: dict[int, Migration] = {}
    folders: list[tuple[Path, bool]] = [(builtin_migration_dir(), True)]
    if ws is not None:
        folders.append((ws.migrations, False))
    if extra_dir is not None:
        folders.append((extra_dir, False))
    for folder, builtin in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.sql")):
            migration = _parse_once(path, builtin=builtin)
            if migration.version in found:
                other = found[migration.version].path
                raise InputError(f"migration version {migration.version:04d} is defined twice: {other} and {path}",
                                 hint="renumber the workspace migration (mobius db new picks the next free number)")
            found[migration.version] = migration
    return [found[v] for v in sorted(found)]


_parsed: dict[tuple[str, bool, bytes], Migration] = {}


def _parse_once(path: Path, *, builtin: bool) -> Migration:
    """parse_migration, once per file content in a process: a promote asks for the database status about ten
    times, and tokenizing every file each time cost more than the queries (issue #20). Keyed by the bytes
    read now, so an edited file is parsed again."""
    if not path.is_file():
        return parse_migration(path, builtin=builtin)  # the error it names
    data = path.read_bytes()
    key = (str(path), builtin, data)
    if key not in _parsed:
        _parsed[key] = parse_migration(path, data, builtin=builtin)
    return _parsed[key]


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise InputError(f"migration name {name!r} has no letters or digits", hint="e.g. mobius db new add_publisher")
    return slug[:60]


def write_new_migration(ws: Workspace, name: str) -> Path:
    """A new file in the workspace's migrations/ with the next free number; never overwrites."""
    slug = slugify(name)
    existing = discover(ws)
    version = (existing[-1].version if existing else 0) + 1
    path = ws.migrations / f"{version:04d}_{slug}.sql"
    if path.exists():
        raise InputError(f"{path} exists already", hint="choose another name")
    atomic_write_text(path, TEMPLATE.format(version=version, name=slug))
    return path
