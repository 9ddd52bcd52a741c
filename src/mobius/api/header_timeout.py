"""A deadline for each request's headers, which uvicorn does not have.

uvicorn closes an idle keep-alive connection, but any byte received cancels that timer, so a client
that sends a header line every few seconds (slowloris) holds a connection, and its memory, forever:
2,000 such clients held for a minute all stayed open. This protocol gives every request
`MOBIUS_SERVE_HEADER_TIMEOUT_S` seconds (set by `mobius serve --header-timeout`) from the moment the
server waits for it until its headers are complete, then closes the connection. A request whose
headers arrived is never cut off by it, however long the work takes.
"""

from __future__ import annotations

import asyncio
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_ENV = "MOBIUS_SERVE_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0
PROTOCOL = "mobius.api.header_timeout:HeaderDeadlineProtocol"  # uvicorn's `http=`, importable in every worker


def header_timeout() -> float:
    try:
        return float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with the connection closed when a request's headers take too long."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are complete (or the connection is over)
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()  # the next request on this connection gets its own deadline
            if self.conn.their_state is not h11.IDLE:  # a pipelined request already arrived whole
                self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(header_timeout(), self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
