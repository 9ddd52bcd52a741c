"""Writes are judged before their body is read: the bearer token first, then the body's size.

FastAPI reads and parses a body before any dependency runs, so a token check written as a dependency
comes too late: an unauthenticated client could make a worker buffer a 400 MiB body, or learn from a
422 how a body is parsed. This ASGI layer sits in front of the routes. Every method other than
GET, HEAD and OPTIONS is a write (the service has no unauthenticated writes); it gets 401 unless it
carries the token, then 413 once its body passes MAX_BODY_BYTES (announced or streamed). Only then is
the body, already read and bounded, handed to the application.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from mobius.api.auth import write_refusal

MAX_BODY_BYTES = 1 << 20  # a game is a few hundred bytes; a megabyte leaves room and bounds each worker
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


class WriteGate:
    """Pure ASGI: 401 before any body byte is read, 413 before more than `max_body` bytes are held."""

    def __init__(self, app: Any, *, expected_token: str | None, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.expected_token = expected_token
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = write_refusal(self.expected_token, headers.get("authorization"))
        if refusal is not None:
            await _refuse(401, refusal, scope, receive, send, {"WWW-Authenticate": "Bearer"})
            return
        announced = headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_body:
            await _refuse(413, self._too_large(), scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(413, self._too_large(), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> dict:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body} bytes"


async def _refuse(status: int, detail: str, scope: dict, receive: Callable, send: Callable,
                  headers: dict[str, str] | None = None) -> None:
    """Answer and close the connection: the unread rest of the body is never read."""
    response = JSONResponse({"detail": detail}, status_code=status, headers={**(headers or {}), "Connection": "close"})
    await response(scope, receive, send)
