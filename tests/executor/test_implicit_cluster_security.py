"""Issue 23 item 10: the implicit Dask cluster speaks TLS with a per-run certificate, dashboard off.

Before: another local process could `Client('tcp://127.0.0.1:PORT').run(...)` and run code as the
Mobius user, and `dashboard_address=None` still started the dashboard (a UserWarning about 8787).
"""

from __future__ import annotations

import warnings

import httpx
import pytest

distributed = pytest.importorskip("distributed")

from mobius.executor.cluster import DaskExecutor  # noqa: E402


def _marker() -> str:
    return "ran"


@pytest.mark.slow
def test_a_stranger_cannot_run_code_on_the_implicit_cluster() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        executor = DaskExecutor(workers=1)
    try:
        address = executor._client.scheduler.address
        assert address.startswith("tls://127.0.0.1:"), address
        assert not [w for w in caught if "8787" in str(w.message) or "dashboard" in str(w.message).lower()]
        http_port = executor._client.scheduler_info()["services"].get("dashboard")
        if http_port is not None:  # Dask always listens for HTTP: on loopback here, and serving nothing
            assert http_port != 8787
            for path in ("/status", "/metrics", "/health", "/info/main/workers.html"):
                assert httpx.get(f"http://127.0.0.1:{http_port}{path}", timeout=10).status_code == 404
        assert executor._client.run(_marker)  # Mobius itself still reaches its workers
        port = address.rsplit(":", 1)[1]
        strangers = [(f"tcp://127.0.0.1:{port}", None), (address, distributed.Security.temporary())]
        for stranger, security in strangers:  # plain TCP, and TLS with a certificate of its own
            with pytest.raises((OSError, TimeoutError)):
                client = distributed.Client(stranger, security=security, timeout=3, set_as_default=False)
                try:
                    client.run(_marker)
                finally:
                    client.close()
    finally:
        executor.close()
