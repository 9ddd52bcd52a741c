"""HEAD wherever GET is served: load balancers and `curl -I` probe /health, /ready, / and /metrics with it.

FastAPI's routes answer only the methods they declare, so HEAD got 405. This layer runs the GET route
for a HEAD request; the server (uvicorn, which knows the request was HEAD) sends the status and
headers, Content-Length included, and drops the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class HeadAsGet:
    """Pure ASGI: a HEAD request is routed as GET; nothing else changes."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)
