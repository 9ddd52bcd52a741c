"""`/api/operations`, `/api/backups`, `/api/golden`: read-only, through `api.reads` (the CLI's functions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from mobius.api import reads
from mobius.results import to_jsonable

router = APIRouter(prefix="/api", tags=["records"])
NAME = r"^[A-Za-z0-9_.:-]{1,100}$"


class OperationOut(BaseModel):
    id: str
    type: str
    status: str
    started: str
    updated: str
    finished: str | None = None
    duration_s: float | None = None
    orphaned: bool = False
    parent: str | None = None
    ref: str | None = None
    params: dict[str, Any] = {}
    result: Any = None
    error: str | None = None
    steps: list[dict[str, Any]] = []


class BackupOut(BaseModel):
    name: str
    prefix: str | None = None
    created: str
    size: int
    files: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    state: str
    checked_at: str | None = None


class GoldenOut(BaseModel):
    game: str
    verdict: str
    checked: str | None = None
    operation: str | None = None
    passed: int
    failed: int
    failed_checks: list[str]
    html_report: bool


def _op(op: Any) -> OperationOut:
    data = to_jsonable(op)
    data["orphaned"] = op.orphaned
    return OperationOut.model_validate(data)


@router.get("/operations", response_model=list[OperationOut], summary="Recorded operations, newest first")
def operations(request: Request, type: str | None = Query(None, pattern=NAME),
               status: str | None = Query(None, pattern=NAME),
               limit: int = Query(50, ge=1, le=1000)) -> list[OperationOut]:
    return [_op(o) for o in reads.list_operations(request.app.state.workspace, type=type, status=status,
                                                  limit=limit)]


@router.get("/operations/{op_id}", response_model=OperationOut, responses={404: {"description": "Unknown id."}},
            summary="One operation with its steps")
def operation(request: Request, op_id: str) -> OperationOut:
    op = reads.get_operation(request.app.state.workspace, op_id)
    if op is None:
        raise HTTPException(404, f"no operation {op_id!r}")
    return _op(op)


@router.get("/backups", response_model=list[BackupOut], summary="Backups, newest first (as `backup list`)")
def backups(request: Request) -> list[BackupOut]:
    out = []
    for info in reads.list_backups(request.app.state.workspace):
        data = to_jsonable(info)
        data.pop("path", None)
        out.append(BackupOut.model_validate(data))
    return out


@router.get("/golden", response_model=list[GoldenOut], summary="Newest golden check per game")
def golden(request: Request) -> list[GoldenOut]:
    return [GoldenOut.model_validate(g.to_dict()) for g in reads.golden_results(request.app.state.workspace)]
