"""Settings and workspace paths.

Settings come from, in order of precedence: environment variables (MOBIUS_*), the selected
environment's file `environments/<name>.env` (see docs/envs.md), the workspace `.env`, then defaults.
Relative paths resolve against the workspace, so a workspace can be moved or copied as a whole.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.errors import InputError
from mobius.masking import (  # noqa: F401 - masking lived here; these names stay importable from config
    MASK,
    URL_SCHEME,
    VARIABLE_NAME,
    is_secret_name,
    mask_secret,
    mask_text,
)
from mobius.safety.envfile import malformed_lines, read_env_file, refuse_control_characters, set_env_values
from mobius.safety.lock import FileLock

ENV_PREFIX = "MOBIUS_"
ENV_FILE_NAME = ".env"
ENVIRONMENTS_DIR = "environments"
ENV_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@dataclass(frozen=True)
class Settings:
    """Every setting Mobius reads. Field `x` is the variable `MOBIUS_X`.

    A plain dataclass, read by `Settings.read`: a settings library (pydantic-settings, with pydantic
    under it) cost every command about 65 ms of start-up to check two dozen scalars.
    """

    library_dir: str = "uploads"
    backup_dir: str = "backups"
    database_url: str | None = None
    env: str = "development"  # an environment name: letters, digits, - and _
    backup_keep: int = 5
    golden_per_os: bool = False
    db_lock_timeout_ms: int = 5000
    db_statement_timeout_ms: int = 0
    db_advisory_lock_wait_s: float = 30.0
    s3_endpoint_url: str | None = None
    db_backfill_pause_ms: int = 0
    executor: str = "local"  # where per-item work runs: local or dask (see mobius.executor)
    dask_scheduler: str | None = None  # tcp://host:8786 or tls://...; unset: a local cluster for the run
    executor_workers: int | None = None  # local pool / local cluster size; unset: one per core
    service_url: str | None = None  # the service whose /ready a migration's preflight checks
    emergency_contacts: str | None = None  # "Role: Name, phone; Role: Name, phone" for migration reports
    notice_lead_hours: float = 48.0  # a high-risk migration's notice must be this old before its window
    backup_max_age_hours: float = 26.0  # newest verified backup /ready and preflight accept; 0: /ready skips
    api_token: str | None = None  # bearer token for the service's write endpoints; unset = no writes
    service_restart_command: str | None = None
    health_timeout_s: float = 60.0
    health_interval_s: float = 1.0
    health_successes: int = 3
    deploy_min_free_mb: int = 1024
    media_batch_files: int = 2000  # files per batch of a media copy (hash, sync, re-read, rename, journal)
    media_sync: str = "batch"  # batch: one sync per batch; fsync: fsync each copied file (slower, for tests)
    # backup repository encryption (issue 20): age public keys (age1..., comma or space separated) every new
    # pack, index and snapshot is encrypted to; an age identity file that decrypts them
    backup_recipients: str | None = None
    backup_identity_file: str | None = None
    # notifications (issue 24, docs/notify.md): destinations (webhook URLs, smtp://), the SMTP password
    notify: str | None = None  # secret as a whole: a webhook URL carries its token in the path
    notify_smtp_password: str | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _SETTING_NAMES

    @classmethod
    def read(cls, values: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
        """`values` (by field name), over the environment's MOBIUS_* variables, over the defaults.

        Text is converted to each field's type; the first value that does not convert raises
        SettingError naming it. `environ` defaults to the process environment ({} reads none).
        """
        environ = os.environ if environ is None else environ
        merged: dict[str, Any] = {}
        for var, value in environ.items():
            if (name := setting_field(var.upper())) is not None:  # MOBIUS_x and mobius_X count too, as before
                merged[name] = value
        merged.update({name: value for name, value in (values or {}).items() if name in _SETTING_TYPES})
        return cls(**{name: _convert(name, value) for name, value in merged.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __repr__(self) -> str:  # masked: a settings object may end up in a log line or a traceback
        shown = ", ".join(f"{name}={mask_secret(ENV_PREFIX + name.upper(), value)!r}"
                          for name, value in self.to_dict().items())
        return f"Settings({shown})"


class SettingError(ValueError):
    """A setting's value does not fit its type: `name` is the field, `reason` says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


_TRUE = frozenset(("1", "true", "t", "yes", "y", "on"))
_FALSE = frozenset(("0", "false", "f", "no", "n", "off"))


def _to_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError("should be true or false (also yes/no, on/off, 1/0)")


def _to_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("should be a whole number") from None


def _to_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError("should be a number") from None


def _to_env_name(text: str) -> str:
    if not re.match(ENV_NAME_PATTERN, text):
        raise ValueError("should be an environment name: a letter or digit, then up to 63 letters, digits, - or _")
    return text


def _to_command(text: str) -> str:
    """A command line as deploy runs it (split like a shell, no shell): refused now if it cannot be split."""
    import shlex

    if text == "":
        return text  # set but empty: not configured, as before
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"should be a command line a shell can split ({exc})") from None
    if not words:
        raise ValueError("should name a command (leave the setting out when there is none)")
    return text


def _to_backup_dir(value: str) -> str:
    """A folder, or s3://bucket/prefix for the snapshot repository; another URL scheme is refused."""
    if not is_url(value):
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "s3":
        raise ValueError(f"{mask_text(value)} is a URL; backups go to a local folder or to s3://bucket/prefix")
    if not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{mask_text(value)}: an S3 repository is s3://bucket/prefix")
    return value


_CHECKED: dict[str, Callable[[str], str]] = {"env": _to_env_name, "service_restart_command": _to_command,
                                             "backup_dir": _to_backup_dir}
_CONVERTERS: dict[str, tuple[type, Callable[[str], Any]]] = {
    "str": (str, str), "int": (int, _to_int), "float": (float, _to_float), "bool": (bool, _to_bool)}
_SETTING_TYPES: dict[str, str] = {field.name: str(field.type) for field in dataclasses.fields(Settings)}
_SETTING_NAMES = tuple(_SETTING_TYPES)


def setting_field(var: str) -> str | None:
    """The Settings field a variable sets (`MOBIUS_BACKUP_KEEP` -> `backup_keep`), or None."""
    if not var.startswith(ENV_PREFIX):
        return None
    name = var[len(ENV_PREFIX):].lower()
    return name if name in _SETTING_TYPES else None


def _convert(name: str, value: Any) -> Any:
    """`value` (text from a .env file or the environment, or already typed) as setting `name`'s type."""
    declared = _SETTING_TYPES[name]
    optional = declared.endswith(" | None")
    base = declared.removesuffix(" | None")
    if value is None:
        if optional:
            return None
        raise SettingError(name, "must be set")
    kind, parse = _CONVERTERS[base]
    if isinstance(value, str):
        try:
            value = _CHECKED[name](value) if name in _CHECKED else parse(value)
        except ValueError as exc:
            raise SettingError(name, str(exc)) from None
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SettingError(name, f"should be {base}, not {type(value).__name__}")
    if name in FOLDER_SETTINGS and is_url(value):
        raise SettingError(name, f"{mask_text(value)} is a URL; {FOLDER_SETTINGS[name]}")
    return value


def setting(name: str) -> Any:
    """One setting from the process environment (MOBIUS_<NAME>) or its default, for code that runs without a
    workspace at hand (a module constant); a value that does not fit its type raises SettingError."""
    raw = os.environ.get(ENV_PREFIX + name.upper())
    if raw is None:
        return next(f.default for f in dataclasses.fields(Settings) if f.name == name)
    return _convert(name, raw)


# Settings that name a local folder, and why a URL is refused there (never made a relative path such as
# `s3:/bucket`). MOBIUS_LIBRARY_DIR is not here: it takes s3:// (see Workspace.library). When backups
# can go to object storage, remove backup_dir from this table. (It was: MOBIUS_BACKUP_DIR takes s3://, see
# Workspace.backup_repository_url; other URLs are refused by _to_backup_dir.)
FOLDER_SETTINGS: dict[str, str] = {}


def is_url(value: str) -> bool:
    """True for a storage URL such as s3://bucket/prefix (not a local path; file:// is a local path)."""
    return URL_SCHEME.match(value) is not None and not value.lower().startswith("file://")


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and the settings read from it; every path a capability needs."""

    root: Path
    settings: Settings
    environment: str | None = None

    @property
    def env_file(self) -> Path:
        """The file this workspace's setting changes go to: the selected environment's, else `.env`."""
        if self.environment is not None:
            return environment_file(self.root, self.environment)
        return self.root / ENV_FILE_NAME

    @property
    def workspace_env_file(self) -> Path:
        return self.root / ENV_FILE_NAME

    def resolve(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def library(self) -> str:
        """The library location: an absolute local path, or a storage URL."""
        value = self.settings.library_dir
        if value.startswith("file://"):
            value = value[len("file://") :]
        return value if is_url(value) else str(self.resolve(value))

    @property
    def library_path(self) -> Path:
        """The library as a local folder; refuses when it lives in object storage."""
        if is_url(self.library):
            raise InputError(
                f"the library is at {self.library}, not a local folder",
                hint="this command needs a local library; point MOBIUS_LIBRARY_DIR at a folder",
            )
        path = Path(self.library)
        try:
            path.resolve()
        except (RuntimeError, OSError) as exc:  # Python raises RuntimeError for a symlink loop
            raise InputError(f"the library {path} cannot be resolved: {exc}",
                             hint="MOBIUS_LIBRARY_DIR must name a folder, not a symlink loop") from None
        return path

    @property
    def backups(self) -> Path:
        """The local backups folder: MOBIUS_BACKUP_DIR (file:// is a local path), or `backups/` in the workspace
        when that names an s3:// repository (full archives, database dumps and scratch files stay local)."""
        value = self.settings.backup_dir
        if self.backup_repository_url is not None:
            return self.root / "backups"
        return self.resolve(value[len("file://"):] if value.lower().startswith("file://") else value)

    @property
    def backup_repository_url(self) -> str | None:
        """The snapshot repository's s3:// URL when MOBIUS_BACKUP_DIR is one; None for a local folder."""
        value = self.settings.backup_dir
        return value.rstrip("/") if urllib.parse.urlsplit(value).scheme == "s3" and is_url(value) else None

    @property
    def database_url(self) -> str:
        return self.settings.database_url or f"sqlite:///{self.root / 'mobius.db'}"

    @property
    def games(self) -> Path:
        return self.root / "games"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def golden(self) -> Path:
        return self.root / "tests" / "golden"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    def reload(self) -> Workspace:
        """A fresh view after the `.env` changed."""
        return load_workspace(self.root, env=self.environment)


def find_workspace_root(explicit: str | Path | None = None) -> Path:
    """--workspace, else MOBIUS_WORKSPACE, else the current directory."""
    chosen = explicit or os.environ.get("MOBIUS_WORKSPACE") or os.getcwd()
    if is_url(str(chosen)):
        raise InputError(f"the workspace {mask_text(str(chosen))} is a URL; a workspace is a local folder",
                         hint="pass --workspace / MOBIUS_WORKSPACE a folder path")
    return Path(chosen).expanduser().resolve()


def environment_file(root: Path, name: str) -> Path:
    """`environments/<name>.env`; refuses names that are not plain (letters, digits, - and _)."""
    if not re.match(ENV_NAME_PATTERN, name):
        raise InputError(f"invalid environment name {name!r}",
                         hint="use letters, digits, - and _ (for example staging or production)")
    return root / ENVIRONMENTS_DIR / f"{name}.env"


def selected_environment(root: Path, env: str | None = None) -> str | None:
    """--env NAME, else MOBIUS_ENV (process environment, then `.env`) when environments/<it>.env exists."""
    if env is not None:
        if not environment_file(root, env).is_file():
            raise InputError(f"unknown environment {env!r}: {environment_file(root, env)} does not exist",
                             hint="see `mobius env list`")
        return env
    name = os.environ.get(ENV_PREFIX + "ENV") or read_env_file(root / ENV_FILE_NAME).get(ENV_PREFIX + "ENV")
    if name and re.match(ENV_NAME_PATTERN, name) and environment_file(root, name).is_file():
        return name
    return None


WORKSPACE_MARKERS = (ENV_FILE_NAME, "state")


def is_workspace(root: Path) -> bool:
    """A folder `mobius init` made: it has a `.env` (file or not) or a `state/` folder.

    Either marker is enough, so a workspace whose `.env` was deleted (settings from the environment)
    is still recognised; a mistyped path has neither and is refused rather than silently populated.
    """
    return any((root / marker).exists() or (root / marker).is_symlink() for marker in WORKSPACE_MARKERS)


def require_workspace(root: str | Path | None = None) -> Path:
    """The workspace root for a command other than `init`; InputError when it is not one."""
    root_path = find_workspace_root(root)
    shown = root or root_path
    if root_path.exists() and not root_path.is_dir():
        raise InputError(f"workspace {shown} is a file, not a folder",
                         hint="pass --workspace the folder `mobius init` created")
    if not root_path.is_dir():
        raise InputError(f"workspace {shown} does not exist",
                         hint=f"check --workspace / MOBIUS_WORKSPACE, or create one with `mobius init {shown}`")
    if not is_workspace(root_path):
        raise InputError(f"{shown} is not a Mobius workspace (no .env and no state/ folder)",
                         hint=f"check --workspace / MOBIUS_WORKSPACE, or create one with `mobius init {shown}`")
    return root_path


def load_workspace(root: str | Path | None = None, env: str | None = None) -> Workspace:
    """Read the settings of the workspace at `root` (see find_workspace_root), for environment `env`."""
    root_path = find_workspace_root(root)
    name = selected_environment(root_path, env)
    files = [root_path / ENV_FILE_NAME] + ([environment_file(root_path, name)] if name else [])
    bad = malformed_lines(files[-1]) if name else []
    if bad:
        raise InputError(f"{files[-1]} is malformed: line {bad[0]} is not KEY=VALUE",
                         hint="fix or comment out that line")
    values = _file_settings(files[0])
    if name:  # the selected environment names itself, unless its own file says otherwise
        values["env"] = name
        values.update(_file_settings(files[1]))
    try:
        settings = Settings.read(values)
    except SettingError as exc:
        raise InputError(
            f"invalid setting {ENV_PREFIX}{exc.name.upper()}: {exc.reason}",
            hint=f"fix it in {files[-1]} or in the environment",
        ) from None
    return Workspace(root=root_path, settings=settings, environment=name)


def _file_settings(env_file: Path) -> dict[str, str]:
    """The `.env` values the environment does not override, read by the one dotenv parser we have."""
    values = read_env_file(env_file)
    return {name: value for var, value in values.items()
            if var not in os.environ and (name := setting_field(var)) is not None}


def setting_name(key: str) -> str:
    """`env`, `MOBIUS_ENV` or `mobius_env` -> `MOBIUS_ENV`; refuses names Mobius does not know."""
    name = key.upper()
    name = name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name
    if setting_field(name) is None:
        known = ", ".join(ENV_PREFIX + f.upper() for f in Settings.names())
        raise InputError(f"unknown setting {name}", hint=f"known settings: {known}")
    return name


@dataclass(frozen=True)
class SettingChange:
    """One `.env` edit and what it replaced, so that it can be undone exactly."""

    env_file: Path
    name: str
    value: str | None
    previous: str | None

    def undo(self) -> SettingChange:
        """Put the previous value back (or remove the key when there was none)."""
        return change_settings(self.env_file, {self.name: self.previous})[0]

    def to_dict(self) -> dict[str, object]:
        return {"env_file": str(self.env_file), "name": self.name,
                "value": mask_secret(self.name, self.value), "previous": mask_secret(self.name, self.previous)}


def settings_lock(env_file: Path, timeout: float = 30.0) -> FileLock:
    """The one lock every `.env` writer takes, so a read-modify-write never loses another's change."""
    return FileLock(env_file.with_name(".env.lock"), timeout=timeout, what="a settings change")


def validate_setting_value(name: str, value: str) -> str:
    """Refuse a value that cannot become setting `name` (control characters, wrong type), before anything
    changes: a command whose argument ends up in `.env` (e.g. `media migrate --to`) calls this first."""
    name = setting_name(name)
    refuse_control_characters(name, value)
    try:
        _convert(setting_field(name), value)
    except SettingError as exc:
        raise InputError(f"invalid value for {name}: {mask_secret(name, value)!r}",
                         hint=exc.reason) from None
    return value


def change_settings(env_file: Path, updates: dict[str, str | None]) -> list[SettingChange]:
    """Set (None removes) several settings in one atomic edit, under the settings lock, re-read under it."""
    for name, value in updates.items():
        if value is not None:
            validate_setting_value(name, value)
    with settings_lock(env_file):
        previous = set_env_values(env_file, updates)
    return [SettingChange(env_file, name, value, previous[name]) for name, value in updates.items()]


def set_setting(ws: Workspace, name: str, value: str | None) -> SettingChange:
    """Change one setting in the workspace `.env`; the result keeps the previous value for undo."""
    return change_settings(ws.env_file, {setting_name(name): value})[0]


def setting_sources(ws: Workspace) -> list[dict[str, object]]:
    """Each effective setting, where it came from, with secrets masked."""
    file_values = read_env_file(ws.workspace_env_file) if ws.workspace_env_file.is_file() else {}
    env_values = read_env_file(ws.env_file) if ws.environment is not None and ws.env_file.is_file() else {}
    rows: list[dict[str, object]] = []
    for name in Settings.names():
        var = ENV_PREFIX + name.upper()
        if var in os.environ:
            source = "environment"
        elif var in env_values:
            source = str(ws.env_file)
        elif var in file_values:
            source = str(ws.workspace_env_file)
        else:
            source = "default"
        value = getattr(ws.settings, name)
        if name == "database_url":
            value = ws.database_url
        rows.append({"name": var, "value": mask_secret(var, value), "source": source})
    return rows


def is_secret_field(name: str) -> bool:
    """For a field of a record or a JSON document: secret only when it is named as a setting (MOBIUS_API_TOKEN,
    or its field api_token) or as an environment variable (upper case: AWS_SECRET_ACCESS_KEY). A field
    called `key` (a table's key column) or `token` (a change token) is not: its value is judged by what it
    holds (mask_text), so the field keeps its meaning."""
    if not VARIABLE_NAME.match(name) or not is_secret_name(name):
        return False
    upper = name.upper()
    return name == upper or setting_field(upper) is not None or setting_field(ENV_PREFIX + upper) is not None
