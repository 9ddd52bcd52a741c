"""`mobius notify`: check that notifications arrive (see mobius.notify and docs/notify.md)."""

from __future__ import annotations

import typer

from mobius.cli.context import current
from mobius.cli.output import emit, say

notify_app = typer.Typer(help="Notifications by webhook and e-mail (MOBIUS_NOTIFY).", no_args_is_help=True)


@notify_app.command("test")
def test_command() -> None:
    """Send one test message to each MOBIUS_NOTIFY destination and say what each answered (exit 2 if any failed).

    Example: MOBIUS_NOTIFY=http://127.0.0.1:9/hook mobius notify test   # exit 2: nothing listens there
    """
    from mobius.notify import send_test

    report = send_test(current.workspace())
    lines = [f"{c.source}: {'delivered' if c.passed else 'FAILED'} ({c.observed})" for c in report.checks]
    if report.failures():
        for line in lines:  # the human lines; under --json the one object is the error's
            say(line)
        report.raise_if_failed(hint="see mobius history latest for every attempt")
    emit({"report": report}, lines)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
