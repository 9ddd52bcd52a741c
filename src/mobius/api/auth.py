"""Bearer-token check for the service's write endpoints.

The token is MOBIUS_API_TOKEN. It is compared in constant time (`hmac.compare_digest` on bytes), a
missing or wrong token gets 401 before the body is read (api.write_gate), and no token configured means no writes
(every write gets 401 and says so). The token never appears in a response or a log line.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="MOBIUS_API_TOKEN, needed for writes")


def token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; False when either side is missing or empty."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def write_refusal(expected: str | None, authorization: str | None) -> str | None:
    """Why a write with this Authorization header is refused (the 401's detail), or None to let it in."""
    if not expected:
        return "writes are disabled: MOBIUS_API_TOKEN is not set"
    if not token_matches(expected, bearer_token(authorization)):
        return "missing or wrong bearer token"
    return None


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """FastAPI dependency: 401 unless the request carries `Authorization: Bearer <MOBIUS_API_TOKEN>`.

    `write_gate.WriteGate` has already checked it before the body was read; this repeats the check
    where the route is declared (and documents the scheme in the OpenAPI schema).
    """
    refusal = write_refusal(request.app.state.workspace.settings.api_token, request.headers.get("authorization"))
    if refusal is not None:
        raise HTTPException(401, refusal, headers={"WWW-Authenticate": "Bearer"})
