"""The health gate of deploy and rollback: `<service_url>/ready` must answer 200 N times in a row in time.

Not configured (no MOBIUS_SERVICE_URL) is reported as skipped with that reason, never as passed.
A timeout raises OperationTimeout (exit 4) with the last answer seen.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable

from mobius.config import Workspace, mask_text
from mobius.errors import InputError, OperationTimeout, VerificationError
from mobius.results import Check, passed, skipped


def ready_url(ws: Workspace) -> str | None:
    url = ws.settings.service_url
    return url.rstrip("/") + "/ready" if url else None


def probe(url: str, timeout: float) -> str:
    """'200' or what went wrong, in a few words."""
    import urllib.error  # with its HTTP client and ssl, 0.02 s: loaded when a probe runs, not by every command
    import urllib.request  # that imports this module (a promote, through envs.rollback)

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the configured service URL
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer ({reason})"


def wait_ready(ws: Workspace, *, say: Callable[[str], None] = lambda line: None) -> Check:
    """Poll until MOBIUS_HEALTH_SUCCESSES consecutive 200s, or MOBIUS_HEALTH_TIMEOUT_S passes (exit 4)."""
    url = ready_url(ws)
    if url is None:
        return skipped("health gate", "not configured (set MOBIUS_SERVICE_URL)")
    settings = ws.settings
    needed, interval, timeout = settings.health_successes, settings.health_interval_s, settings.health_timeout_s
    if needed < 1:
        raise InputError(f"MOBIUS_HEALTH_SUCCESSES must be at least 1, not {needed}")
    started = time.monotonic()
    streak, polls, last = 0, 0, "not polled"
    while True:
        last = probe(url, timeout=max(0.5, min(5.0, interval * 2)))
        polls += 1
        streak = streak + 1 if last == "200" else 0
        if streak >= needed:
            seconds = time.monotonic() - started
            say(f"health: {mask_text(url)} answered 200 {needed} times in a row ({polls} polls, {seconds:.1f} s)")
            return passed("health gate", f"{needed} consecutive 200", threshold=f"{needed} in {timeout:g} s",
                          source=mask_text(url), detail=f"{polls} polls in {seconds:.1f} s")
        if time.monotonic() - started + interval > timeout:
            raise OperationTimeout(f"health gate: {mask_text(url)} did not answer 200 {needed} times in a row within "
                                   f"{timeout:g} s (last answer: {last}, {polls} polls)",
                                   hint="see the service's logs; MOBIUS_HEALTH_TIMEOUT_S sets the wait")
        time.sleep(interval)


def restart_service(ws: Workspace) -> str | None:
    """Run MOBIUS_SERVICE_RESTART_COMMAND (no shell); None when it is not configured."""
    command = ws.settings.service_restart_command
    if not command:
        return None
    try:
        proc = subprocess.run(shlex.split(command), capture_output=True, text=True, cwd=ws.root,
                              timeout=ws.settings.health_timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VerificationError(f"restart command failed: {exc}", hint="check MOBIUS_SERVICE_RESTART_COMMAND") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise VerificationError(f"restart command exited {proc.returncode}: {tail[0]}",
                                hint="check MOBIUS_SERVICE_RESTART_COMMAND")
    return f"`{command}` exited 0"
