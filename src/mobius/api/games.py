"""`/api/games`: list (paging, filters), get, create, update, delete on the `games` table.

The table is the one the migrations create (0001 + 0002: complexity_rating, last_updated); the
service reaches it through the workspace's database engine (`db.engine.make_engine`), SQLite or
PostgreSQL alike. Writes need the bearer token (`auth.require_token`), checked before anything is read.
Inputs are bounded so every value fits both databases' columns (no 5xx for a big number or a NUL).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from mobius.api.auth import require_token

metadata = MetaData()
games = Table(
    "games", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("slug", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("play_time", Integer, nullable=False),
    Column("min_players", Integer, nullable=False),
    Column("max_players", Integer, nullable=False),
    Column("publisher", Text),
    Column("year_published", Integer),
    Column("created_at", DateTime),
    Column("complexity_rating", Integer),
    Column("last_updated", DateTime),
)

MAX_ID = 2**63 - 1
TEXT = r"^[^\x00-\x1f\x7f]*$"  # printable: PostgreSQL refuses NUL in text, and control characters help no one
SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"
GameId = Annotated[int, Path(ge=1, le=MAX_ID, description="The game's id.")]


def complexity_for(play_time: int) -> int:
    """The 0002 migration's rule: 1 below 30 minutes, 2 from 30 to 60, 3 above 60."""
    return 1 if play_time < 30 else 2 if play_time <= 60 else 3


class GameFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=TEXT)
    play_time: int = Field(ge=1, le=100_000, description="Minutes.")
    min_players: int = Field(ge=1, le=1000)
    max_players: int = Field(ge=1, le=1000)
    publisher: str | None = Field(None, max_length=200, pattern=TEXT)
    year_published: int | None = Field(None, ge=1, le=9999)
    complexity_rating: int | None = Field(None, ge=1, le=5, description="Default: from play_time (1-3).")


class GameCreate(GameFields):
    slug: str = Field(pattern=SLUG, description="The game's folder name in the library.")

    @model_validator(mode="after")
    def _players(self) -> GameCreate:
        if self.max_players < self.min_players:
            raise ValueError("max_players must be at least min_players")
        return self


class GameUpdate(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200, pattern=TEXT)
    play_time: int | None = Field(None, ge=1, le=100_000)
    min_players: int | None = Field(None, ge=1, le=1000)
    max_players: int | None = Field(None, ge=1, le=1000)
    publisher: str | None = Field(None, max_length=200, pattern=TEXT)
    year_published: int | None = Field(None, ge=1, le=9999)
    complexity_rating: int | None = Field(None, ge=1, le=5)


class Game(BaseModel):
    id: int
    slug: str
    name: str
    play_time: int
    min_players: int
    max_players: int
    publisher: str | None = None
    year_published: int | None = None
    complexity_rating: int | None = None
    created_at: dt.datetime | None = None
    last_updated: dt.datetime | None = None

    @field_validator("created_at", "last_updated")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        """The columns are TIMESTAMP without zone, written as UTC (CURRENT_TIMESTAMP, our updates): say so."""
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


class GamePage(BaseModel):
    items: list[Game]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    detail: str


WRITE_ERRORS = {401: {"model": Problem, "description": "Missing or wrong bearer token; nothing changed."}}
NOT_FOUND = {404: {"model": Problem, "description": "No game with this id."}}
BAD_BODY = {400: {"model": Problem, "description": "The body is not valid JSON."}}
CONFLICT = {409: {"model": Problem, "description": "The slug is taken or the players range is invalid."}}

router = APIRouter(prefix="/api/games", tags=["games"])


def _engine(request: Request) -> Engine:
    return request.app.state.engine()


def _reader(request: Request) -> Engine:
    return request.app.state.read_engine()


def _game(row: object) -> Game:
    return Game.model_validate(dict(row._mapping))  # type: ignore[attr-defined]


@router.get("", response_model=GamePage, summary="List games (paged, filtered)")
def list_games(request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9),
               q: str | None = Query(None, max_length=100, pattern=TEXT, description="Name or slug contains."),
               publisher: str | None = Query(None, max_length=200, pattern=TEXT),
               complexity: int | None = Query(None, ge=1, le=5),
               players: int | None = Query(None, ge=1, le=1000, description="Playable with this many players."),
               ) -> GamePage:
    where = []
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(func.lower(games.c.name).like(pattern, escape="\\"),
                         games.c.slug.like(pattern, escape="\\")))
    if publisher is not None:
        where.append(games.c.publisher == publisher)
    if complexity is not None:
        where.append(games.c.complexity_rating == complexity)
    if players is not None:
        where.append(games.c.min_players <= players)
        where.append(games.c.max_players >= players)
    with _reader(request).connect() as conn:
        total = conn.execute(select(func.count()).select_from(games).where(*where)).scalar_one()
        rows = conn.execute(select(games).where(*where).order_by(games.c.id).limit(limit).offset(offset)).fetchall()
        conn.rollback()
    return GamePage(items=[_game(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{game_id}", response_model=Game, responses=NOT_FOUND, summary="One game")
def get_game(request: Request, game_id: GameId) -> Game:
    with _reader(request).connect() as conn:
        row = conn.execute(select(games).where(games.c.id == game_id)).first()
        conn.rollback()
    if row is None:
        raise HTTPException(404, f"no game with id {game_id}")
    return _game(row)


@router.post("", response_model=Game, status_code=201, responses={**BAD_BODY, **WRITE_ERRORS, **CONFLICT},
             dependencies=[Depends(require_token)], summary="Create a game")
def create_game(request: Request, body: GameCreate, response: Response) -> Game:
    values = body.model_dump()
    if values["complexity_rating"] is None:
        values["complexity_rating"] = complexity_for(body.play_time)
    try:
        with _engine(request).begin() as conn:
            new_id = conn.execute(insert(games).values(**values).returning(games.c.id)).scalar_one()
            row = conn.execute(select(games).where(games.c.id == new_id)).one()
    except IntegrityError:
        raise HTTPException(409, f"a game with slug {body.slug!r} exists") from None
    response.headers["Location"] = f"/api/games/{new_id}"
    return _game(row)


@router.patch("/{game_id}", response_model=Game, responses={**BAD_BODY, **WRITE_ERRORS, **NOT_FOUND, **CONFLICT},
              dependencies=[Depends(require_token)], summary="Change some fields of a game")
def update_game(request: Request, game_id: GameId, body: GameUpdate) -> Game:
    values = body.model_dump(exclude_unset=True)
    if any(values.get(k, 0) is None for k in ("name", "play_time", "min_players", "max_players")):
        raise HTTPException(409, "name, play_time, min_players and max_players cannot be null")
    try:
        with _engine(request).begin() as conn:
            row = conn.execute(select(games).where(games.c.id == game_id)).first()
            if row is None:
                raise HTTPException(404, f"no game with id {game_id}")
            merged = {**row._mapping, **values}
            if merged["max_players"] < merged["min_players"]:
                raise HTTPException(409, "max_players must be at least min_players")
            conn.execute(update(games).where(games.c.id == game_id)
                         .values(**values, last_updated=dt.datetime.now(dt.UTC).replace(tzinfo=None)))
            row = conn.execute(select(games).where(games.c.id == game_id)).one()
    except IntegrityError:
        raise HTTPException(409, "the change breaks a constraint of the games table") from None
    return _game(row)


@router.delete("/{game_id}", status_code=204, response_class=Response,
               responses={**WRITE_ERRORS, **NOT_FOUND}, dependencies=[Depends(require_token)],
               summary="Delete a game (and its media asset rows)")
def delete_game(request: Request, game_id: GameId) -> Response:
    with _engine(request).begin() as conn:
        gone = conn.execute(delete(games).where(games.c.id == game_id)).rowcount
    if not gone:
        raise HTTPException(404, f"no game with id {game_id}")
    return Response(status_code=204)
