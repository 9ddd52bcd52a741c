"""Issue 23 items 9 and 19: what a hostile or careless HTTP client gets.

The token is checked before a write's body is read, bodies are capped, a lone surrogate is a 4xx,
HEAD works where GET does, no redirect is built from the Host header, and a client that never
finishes its headers is cut off.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from api_support import TOKEN, Server, auth


def _raw(server: Server, request: bytes, *, wait: float = 30) -> bytes:
    """Send `request` as is on a new connection; everything the server answers until it closes or pauses."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and not received.startswith(b"HTTP/1.1 100"):
                    break
        except TimeoutError:
            pass
        return received


def _status(answer: bytes) -> int:
    assert answer, "no answer before the client's timeout"
    return int(answer.split(b" ", 2)[1])


def test_a_write_without_token_is_refused_before_its_body_is_read(server: Server) -> None:
    huge = (b"POST /api/games HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 419430400\r\n\r\n{")  # 400 MiB announced, one byte sent
    assert _status(_raw(server, huge)) == 401
    assert server.client.post("/api/games", content=b"notjson").status_code == 401
    assert server.client.post("/api/games", content=b"notjson", headers={"Authorization": "Bearer wrong"}
                              ).status_code == 401


def test_a_body_over_the_cap_is_refused_with_the_token(server: Server) -> None:
    announced = (b"POST /api/games HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 419430400\r\n\r\n{")
    assert _status(_raw(server, announced)) == 413
    streamed = server.client.post("/api/games", headers=auth(),
                                  content=iter([b"[" + b"1," * 700_000, b"1]"]))  # chunked, no length
    assert streamed.status_code == 413
    assert server.get("/health").status_code == 200


def test_a_lone_surrogate_is_a_client_error(server: Server) -> None:
    body = b'{"name": "\\ud800", "slug": "lone-surrogate", "min_players": 1, "max_players": 2, "play_time": 5}'
    answer = server.client.post("/api/games", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    patched = server.client.patch("/api/games/1", content=b'{"publisher": "x\\udfff"}',
                                  headers={**auth(), "Content-Type": "application/json"})
    assert patched.status_code == 422, patched.text
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("path", ["/health", "/ready", "/", "/metrics"])
def test_head_answers_like_get_without_a_body(server: Server, path: str) -> None:
    got = server.get(path)
    head = server.client.head(path)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_no_redirect_is_built_from_the_host_header(server: Server) -> None:
    for method in ("PATCH", "GET"):
        answer = server.client.request(method, "/api/games/1/", headers={**auth(), "Host": "evil.example"},
                                       content=b"{}" if method == "PATCH" else None)
        assert "evil.example" not in answer.headers.get("location", "")
        assert not 300 <= answer.status_code < 400


def test_a_client_that_never_finishes_its_headers_is_cut_off(api_workspace: Path) -> None:
    slow = Server(api_workspace, serve_args=("--header-timeout", "1"))
    try:
        with socket.create_connection(("127.0.0.1", slow.port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never finished
            assert sock.recv(100) == b""  # closed by the server (a TimeoutError here: still waiting)
        assert slow.get("/health").status_code == 200  # a normal client is unaffected
    finally:
        slow.stop()
