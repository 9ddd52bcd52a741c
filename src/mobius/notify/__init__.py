"""Notifications: people hear of a migration, an alert, a rollback, a deploy and a failed backup.

`install(ws)` starts listening to the workspace's record store when `MOBIUS_NOTIFY` names
destinations (see docs/notify.md); every CLI command and the service call it once their workspace
is loaded. Library callers do the same. `send_test(ws)` sends one message to each destination.

This package is imported at every command's start: its own module stays small; the delivery machinery
(threads, urllib, smtplib) is imported only when there is somewhere to send to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobius.config import Workspace, is_secret_name

if TYPE_CHECKING:
    from mobius.notify.delivery import Notifier
    from mobius.results import Report

_INSTALLED: dict[str, Notifier] = {}


def secrets_of(ws: Workspace) -> list[str]:
    """Every secret value the settings hold, so no message can quote one (the record is masked already)."""
    values = [str(v) for name, v in ws.settings.to_dict().items() if v and is_secret_name(name)]
    values += (ws.settings.notify or "").split()
    if ws.database_url and "://" in ws.database_url:
        from sqlalchemy.engine import make_url  # start-up time: only a workspace with a database URL pays


        try:
            password = make_url(ws.database_url).password
        except Exception:  # noqa: BLE001 - an unparsable URL is masked by mask_text as a whole
            password = None
        if password:
            values.append(str(password))
    return values


def install(ws: Workspace) -> Notifier | None:
    """Listen to `ws`'s record store and notify its destinations; None when MOBIUS_NOTIFY is unset.

    A destination that does not parse is not a reason for the command to fail: it is logged, and
    `mobius notify test` names it with the fix.
    """
    if not ws.settings.notify:
        return None
    key = str(ws.state)
    if key in _INSTALLED:
        return _INSTALLED[key]
    from mobius.errors import MobiusError
    from mobius.log import get_logger
    from mobius.notify.delivery import Notifier
    from mobius.notify.destinations import parse_destinations

    try:
        destinations = parse_destinations(ws.settings.notify, smtp_password=ws.settings.notify_smtp_password)
    except MobiusError as exc:
        get_logger().warning("notify.misconfigured", error=exc.one_line())
        return None
    _INSTALLED[key] = Notifier(ws, destinations, secrets=secrets_of(ws)).install()
    return _INSTALLED[key]


def uninstall(ws: Workspace) -> None:
    notifier = _INSTALLED.pop(str(ws.state), None)
    if notifier is not None:
        notifier.uninstall()


def send_test(ws: Workspace) -> Report:
    """One test message to each destination, one attempt each, recorded as a `notify.test` operation whose
    events are the attempts; a check per destination says what its server answered."""
    import socket

    from mobius.errors import InputError
    from mobius.notify.delivery import Courier, Notifier
    from mobius.notify.destinations import parse_destinations
    from mobius.notify.message import Message
    from mobius.records import RecordStore, recorded
    from mobius.results import Report, failed, passed

    destinations = parse_destinations(ws.settings.notify, smtp_password=ws.settings.notify_smtp_password)
    if not destinations:
        raise InputError("MOBIUS_NOTIFY names no destination", hint="set it to a webhook URL and/or smtp://...; "
                                                                    "see docs/notify.md")
    report = Report("notify test")
    notifier = Notifier(ws, destinations, secrets=secrets_of(ws))
    with recorded(ws, "notify.test", {"destinations": [d.label for d in destinations]}) as handle, \
            RecordStore.of(ws) as store:
        message = Message("notify.test", "info", handle.id, "notify.test",
                          f"test message from mobius on {socket.gethostname()}",
                          {"workspace": str(ws.root), "environment": ws.settings.env},
                          "nothing: this only checks that notifications arrive").redacted(notifier.secrets)
        for destination in destinations:
            ok, answer = Courier(notifier, destination).deliver(store, message, attempts=1)
            report.add((passed if ok else failed)(f"notify.{destination.label.split()[0]}", answer,
                                                  source=destination.label))
        handle.result = report
        if not report.ok:
            handle.status = "failed"
    return report
