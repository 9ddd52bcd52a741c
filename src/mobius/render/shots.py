"""The shot list: a spec compiled into timed scenes with resolved asset paths.

Compiling checks nothing on disk by itself; `missing_assets` and `damaged_assets` do, so that
`pipeline test` can report every problem of every spec in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobius.render.spec import GameSpec

TITLE_SHARE = 4.0 / 30.0  # the title card's share of the preview
CROSSFADE = 0.5  # seconds, at most


@dataclass(frozen=True)
class Asset:
    """A component image a scene shows, where it is, and its recorded sha256 if the spec has one."""

    component_id: str
    name: str
    path: Path
    sha256: str | None = None


@dataclass(frozen=True)
class Shot:
    """One scene: [start, end) seconds, what it says and shows."""

    index: int
    kind: str  # title | section
    start: float
    end: float
    heading: str
    text: str
    assets: tuple[Asset, ...] = ()

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class ShotList:
    game: str
    title: str
    duration: float
    crossfade: float
    shots: list[Shot] = field(default_factory=list)
    components: list[Asset] = field(default_factory=list)

    def assets(self) -> list[Asset]:
        """Every component of the spec (shown or not) and every asset a shot uses, once each."""
        seen: dict[Path, Asset] = {a.path: a for a in self.components}
        for shot in self.shots:
            for asset in shot.assets:
                seen.setdefault(asset.path, asset)
        return list(seen.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "game": self.game, "duration": self.duration, "crossfade": self.crossfade,
            "shots": [{"index": s.index, "kind": s.kind, "start": round(s.start, 3), "end": round(s.end, 3),
                       "heading": s.heading, "assets": [str(a.path) for a in s.assets]} for s in self.shots],
        }


def compile_shots(spec: GameSpec, library: Path, *, duration: float | None = None) -> ShotList:
    """Lay the spec out in time: a title card, then one scene per rule section, equal shares."""
    total = float(duration if duration is not None else spec.duration)
    title_len = total * TITLE_SHARE
    section_len = (total - title_len) / len(spec.rules)
    crossfade = min(CROSSFADE, 0.2 * min(title_len, section_len))
    folder = Path(library)

    def asset(component_id: str) -> Asset:
        c = spec.component(component_id)
        return Asset(c.id, c.name, folder / c.image, c.sha256)

    players = spec.players
    who = f"{players.min} players" if players.min == players.max else f"{players.min}-{players.max} players"
    title_assets = tuple(asset(c.id) for c in spec.components[:4])
    shots = [Shot(0, "title", 0.0, title_len, spec.title, f"{who}  ·  {spec.play_time_minutes} minutes",
                  title_assets)]
    for n, section in enumerate(spec.rules, start=1):
        start = title_len + (n - 1) * section_len
        end = total if n == len(spec.rules) else title_len + n * section_len
        shots.append(Shot(n, "section", start, end, section.heading, section.text,
                          tuple(asset(ref) for ref in section.show)))
    return ShotList(spec.slug, spec.title, total, crossfade, shots, [asset(c.id) for c in spec.components])


def missing_assets(shots: ShotList) -> list[Asset]:
    return [a for a in shots.assets() if not a.path.is_file()]


def damaged_assets(shots: ShotList) -> list[tuple[Asset, str]]:
    """Assets whose sha256 differs from the one recorded in the spec (only those with one)."""
    from mobius.safety.hashing import sha256_file

    out = []
    for a in shots.assets():
        if a.sha256 and a.path.is_file():
            actual = sha256_file(a.path)
            if actual != a.sha256:
                out.append((a, actual))
    return out
