"""Game specs (`games/<slug>.yaml`): what a tutorial preview shows, validated before anything renders.

A spec names the game, its players and play time, its components (each an image in the media
library, path relative to the library root, optionally with its recorded sha256) and its rule
sections (heading, narration text, which components to show). A spec that does not validate is
refused with the field named (InputError, exit 1).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobius.errors import InputError
from mobius.games import SLUG, check_slug


class ComponentSpec(BaseModel):
    """One component: an id used by rule sections, a display name, an image in the library."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=60)
    name: str = Field(min_length=1, max_length=80)
    image: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("image")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = Path(value).parts
        if Path(value).is_absolute() or ".." in parts:
            raise ValueError("must be a path inside the library (relative, no '..')")
        return value


class RuleSection(BaseModel):
    """One scene of the tutorial: a heading, the narration shown as text, the components on screen."""

    model_config = ConfigDict(extra="forbid")

    heading: str = Field(min_length=1, max_length=60)
    text: str = Field(min_length=1, max_length=400)
    show: list[str] = Field(default_factory=list, max_length=6)


class Players(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int = Field(ge=1, le=20)
    max: int = Field(ge=1, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> Players:
        if self.max < self.min:
            raise ValueError("max must be at least min")
        return self


class GameSpec(BaseModel):
    """A whole game spec; `duration` is the preview's length in seconds."""

    model_config = ConfigDict(extra="forbid")

    slug: str
    title: str = Field(min_length=1, max_length=60)
    players: Players
    play_time_minutes: int = Field(ge=1, le=600)
    color: tuple[int, int, int] = (60, 60, 90)
    duration: float = Field(default=30.0, ge=4.0, le=300.0)
    components: list[ComponentSpec] = Field(min_length=1)
    rules: list[RuleSection] = Field(min_length=1, max_length=20)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.fullmatch(value):
            raise ValueError("must be lower-case letters, digits and dashes")
        return value

    @field_validator("color")
    @classmethod
    def _rgb(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(not 0 <= c <= 255 for c in value):
            raise ValueError("each channel must be 0..255")
        return value

    @model_validator(mode="after")
    def _references(self) -> GameSpec:
        ids = [c.id for c in self.components]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"components: duplicate id {duplicates[0]!r}")
        for n, section in enumerate(self.rules):
            for ref in section.show:
                if ref not in ids:
                    raise ValueError(f"rules[{n}].show: unknown component {ref!r}")
        return self

    def component(self, component_id: str) -> ComponentSpec:
        return next(c for c in self.components if c.id == component_id)


def _field_name(loc: tuple) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "the spec"


def parse_spec(data: object, *, source: str) -> GameSpec:
    """Validate already-loaded YAML; InputError naming the first bad field."""
    try:
        return GameSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = first["msg"].removeprefix("Value error, ")
        field = _field_name(tuple(first.get("loc", ())))
        if not first.get("loc") and ":" in message:
            field, message = (part.strip() for part in message.split(":", 1))
        details = [f"{_field_name(tuple(e.get('loc', ())))}: {e['msg']}" for e in errors[1:10]]
        raise InputError(f"game spec {source}: field '{field}': {message}",
                         hint="fix the spec (see docs/golden.md, 'Game specs')", details=details) from None


def load_spec(path: Path) -> GameSpec:
    """Read and validate `games/<slug>.yaml`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"game spec not found: {path}",
                         hint="list specs with `ls games/` or run `mobius init --sample`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"game spec {path} is not valid YAML: {exc}", hint="fix the YAML syntax") from None
    spec = parse_spec(data, source=str(path))
    if spec.slug != path.stem:
        raise InputError(f"game spec {path}: field 'slug': {spec.slug!r} differs from the file name {path.stem!r}",
                         hint="rename the file or fix the slug")
    return spec


def spec_path(games_dir: Path, game: str) -> Path:
    """The spec file for a game slug (or a path given directly)."""
    candidate = Path(game)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    return games_dir / f"{check_slug(game)}.yaml"


def list_specs(games_dir: Path) -> list[Path]:
    return sorted(p for p in games_dir.glob("*.yaml") if p.is_file()) if games_dir.is_dir() else []
