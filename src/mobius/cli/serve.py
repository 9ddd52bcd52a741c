"""`mobius serve`: see mobius.api."""

from __future__ import annotations

import errno
import os
import signal
import socket

import typer

from mobius.cli.context import current
from mobius.cli.options import WORKERS
from mobius.cli.output import emit, say
from mobius.errors import EnvironmentProblem, InputError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _check_port(host: str, port: int) -> None:
    """Fail with one line (exit 3) when the address is taken, before uvicorn starts any worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            hint = "pick another --port, or stop the server using it" if exc.errno == errno.EADDRINUSE else \
                "check --host"
            raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint=hint) from None


def serve(host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: loopback only)."),
          port: int = typer.Option(5001, "--port", help="TCP port."),
          workers: int = WORKERS,
          drain_seconds: float = typer.Option(2.0, "--drain-seconds",
                                              help="On SIGTERM, fail /ready this long before stopping to accept."),
          graceful_seconds: float = typer.Option(30.0, "--graceful-seconds",
                                                 help="Then wait this long for in-flight requests to finish."),
          header_timeout: float = typer.Option(10.0, "--header-timeout",
                                               help="Close a connection whose request headers take longer "
                                                    "(slow clients).")) -> None:
    """Serve /health, /ready, /metrics, /api/games, /api/operations|backups|golden and the status page at /.

    Example: mobius serve --port 5001 --workers 2
    """
    import uvicorn

    from mobius.api.app import SERVE_ENVIRONMENT
    from mobius.api.header_timeout import HEADER_TIMEOUT_ENV, PROTOCOL
    from mobius.api.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    workers = 1 if workers is None else workers  # one worker process unless asked
    if workers < 1 or not 0 < port < 65536 or drain_seconds < 0 or graceful_seconds < 0 or not header_timeout > 0:
        raise InputError("--workers must be >= 1, --port 1-65535, the seconds >= 0 (--header-timeout > 0)")
    ws = current.workspace()
    _check_port(host, port)
    os.environ["MOBIUS_WORKSPACE"] = str(ws.root)
    os.environ[SERVE_ENVIRONMENT] = ws.environment or ""  # every worker loads this environment, not the default
    os.environ["MOBIUS_SERVE_DRAIN_S"] = str(drain_seconds)
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    os.environ["MOBIUS_SERVE_LOG_FORMAT"] = current.log_format
    if workers > 1:
        folder = ws.state / f"prometheus-{port}"
        prepare_multiprocess_dir(folder)
        os.environ[MULTIPROC_ENV] = str(folder)
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    if host not in LOOPBACK:
        say(f"warning: listening on {host}, not loopback; writes still need MOBIUS_API_TOKEN")
    say(f"serving {ws.root} on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})")
    # uvicorn re-raises the SIGTERM it handled once it has drained; this handler lets us finish and report.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run("mobius.api.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="warning", timeout_graceful_shutdown=graceful_seconds,
                server_header=False, http=PROTOCOL)
    emit({"host": host, "port": port, "workers": workers, "stopped": True}, "stopped")


def register(app: typer.Typer) -> None:
    """Add `serve` to the root app."""
    app.command("serve")(serve)
