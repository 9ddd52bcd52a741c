"""Bearer-token check for the service's write endpoints.

The token is MOBIUS_API_TOKEN. It is compared in constant time (`hmac.compare_digest` on bytes), a
missing or wrong token gets 401 before any change is made, and no token configured means no writes
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


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """FastAPI dependency: 401 unless the request carries `Authorization: Bearer <MOBIUS_API_TOKEN>`."""
    expected = request.app.state.workspace.settings.api_token
    if not expected:
        raise HTTPException(401, "writes are disabled: MOBIUS_API_TOKEN is not set",
                            headers={"WWW-Authenticate": "Bearer"})
    given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    if not token_matches(expected, given):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
