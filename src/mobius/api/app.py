"""The FastAPI application: `create_app(ws)`, and `app_from_environment()` for uvicorn's workers.

Shutdown: on SIGTERM a worker first sets its `draining` flag (so `/ready` fails with the `shutdown`
check while every request is still answered), waits MOBIUS_SERVE_DRAIN_S seconds for load balancers
to notice, then hands the signal to uvicorn, which stops accepting and lets in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from mobius import __version__, notify
from mobius.api import games, health, metrics, operation_pages, readonly, status
from mobius.api.head import HeadAsGet
from mobius.api.write_gate import WriteGate
from mobius.config import Workspace, load_workspace, mask_text
from mobius.log import get_logger
from mobius.workspace.modes import make_private

DRAIN_ENV = "MOBIUS_SERVE_DRAIN_S"
SERVE_ENVIRONMENT = "MOBIUS_SERVE_ENVIRONMENT"  # the environment `mobius --env NAME serve` chose ("" = none)
DEFAULT_DRAIN_S = 2.0


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a value may hold a lone surrogate, which UTF-8 cannot
    encode (a 422 that echoes `"\\ud800"` back would otherwise become a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class MetricsMiddleware:
    """Counts every HTTP request by route *template* and status class, and times it (pure ASGI, cheap)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: dict) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            metrics.observe_request(scope.get("method", "OTHER"), template, status_code,
                                    time.perf_counter() - started)


def _install_drain(app: FastAPI, drain_s: float) -> None:
    """Wrap uvicorn's SIGTERM handler: fail readiness first, hand the signal over `drain_s` later."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return
    loop = asyncio.get_running_loop()

    def on_term(sig: int, frame: Any) -> None:
        if app.state.draining.is_set():
            previous(sig, frame)
            return
        app.state.draining.set()
        get_logger().info("serve.draining", pid=os.getpid(), seconds=drain_s)
        loop.call_soon_threadsafe(loop.call_later, drain_s, previous, sig, frame)

    signal.signal(signal.SIGTERM, on_term)


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """TIMESTAMP columns hold UTC: CURRENT_TIMESTAMP follows the session's zone, so make it UTC."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.commit()


def create_app(ws: Workspace, *, drain_s: float = DEFAULT_DRAIN_S) -> FastAPI:
    """The whole service for one workspace."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _install_drain(app, drain_s)
        from mobius.db.engine import target_for

        get_logger().info("serve.started", pid=os.getpid(), workspace=str(ws.root),
                          database=target_for(ws).display)
        yield
        if app.state.engine_cache:
            app.state.engine_cache[0].dispose()
        metrics.worker_exited(os.getpid())

    app = FastAPI(title="Mobius", version=__version__, lifespan=lifespan,
                  redirect_slashes=False,  # Starlette builds its redirect from the Host header: no redirects
                  description="Health, readiness, metrics, the games API and read-only operations, backups and "
                              "golden results of a Mobius workspace.")
    app.state.workspace = ws
    notify.install(ws)  # what the service records is notified like a command's
    app.state.draining = threading.Event()
    app.state.engine_cache = []
    app.state.reader_cache = []
    lock = threading.Lock()

    def engine() -> Engine:
        """One engine per worker, made on first use (the database may be down when the server starts)."""
        if not app.state.engine_cache:
            with lock:
                if not app.state.engine_cache:
                    from mobius.db.engine import make_engine, target_for

                    target = target_for(ws)
                    made = make_engine(target)
                    if not target.is_sqlite:
                        event.listen(made, "connect", _utc_session)
                    app.state.engine_cache.append(made)
        return app.state.engine_cache[0]

    app.state.engine = engine

    def read_engine() -> Engine:
        """SQLite: a read-only engine (reads take no write lock); PostgreSQL: the same engine."""
        if not app.state.reader_cache:
            from mobius.api.readiness import read_engine as reader
            from mobius.db.engine import target_for

            target = target_for(ws)
            app.state.reader_cache.append(reader(target) if target.is_sqlite else engine())
        return app.state.reader_cache[0]

    app.state.read_engine = read_engine

    @app.exception_handler(DBAPIError)
    async def _database_down(_request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            from mobius.db.engine import first_line

            return JSONResponse({"detail": f"database unavailable: {mask_text(first_line(exc))[:200]}"},
                                status_code=503)
        raise exc

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.get("/metrics", include_in_schema=False)
    def metrics_all() -> Response:
        return Response(metrics.render(ws), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/metrics/{name}", include_in_schema=False)
    def metrics_one(name: str) -> Response:
        metrics._discover_collectors()
        if name not in metrics.COLLECTORS:
            return JSONResponse({"detail": f"no metrics named {name!r}"}, status_code=404)
        return Response(metrics.render(ws, only=name), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(health.router)
    app.include_router(games.router)
    app.include_router(readonly.router)
    app.include_router(status.router)
    app.include_router(operation_pages.router)
    app.add_middleware(WriteGate, expected_token=ws.settings.api_token)  # innermost: after metrics and HEAD
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(HeadAsGet)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory in each worker: the workspace from MOBIUS_WORKSPACE and the environment from
    MOBIUS_SERVE_ENVIRONMENT (both set by `mobius serve`), so every worker serves what the command chose."""
    from mobius import log

    log.configure(verbosity=0, log_format=os.environ.get("MOBIUS_SERVE_LOG_FORMAT", "console"), command="serve")
    ws = load_workspace(env=os.environ.get(SERVE_ENVIRONMENT) or None)
    make_private(ws)
    log.attach_log_file(ws.logs, "serve")
    return create_app(ws, drain_s=float(os.environ.get(DRAIN_ENV, DEFAULT_DRAIN_S)))
