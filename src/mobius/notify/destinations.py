"""Where notifications go: a webhook (JSON, Slack- and Mattermost-compatible) or an SMTP server (STARTTLS).

`MOBIUS_NOTIFY` holds one or more destination URLs separated by white space:

- `https://hooks.example.com/services/T0/B0/XXXX` (or http://): a POST of the message as JSON;
- `smtp://user@mail.example.com:587?to=oncall@example.com,lead@example.com&from=mobius@example.com`:
  a mail through STARTTLS (refused when the server does not offer it), logged in as `user` with the
  password from `MOBIUS_NOTIFY_SMTP_PASSWORD`. `starttls=off` is for a relay on this machine only
  (localhost), and never with a password.

Each destination has a `label` safe to print or record (scheme and host: a webhook's path is its
credential), and `send(message, timeout)` that raises `DeliveryError` with one line on any failure.
"""

from __future__ import annotations

import ipaddress
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from mobius.errors import InputError
from mobius.notify.message import Message

USER_AGENT = "mobius-notify"


class DeliveryError(Exception):
    """One delivery attempt failed; the message is one line, without secrets."""


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)

    @property
    def label(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def send(self, message: Message, timeout: float) -> str:
        body = json.dumps(message.webhook_body(), ensure_ascii=False).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) only (parse)
                return f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(reason).__name__}: {reason}") from None


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    to: tuple[str, ...]
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True

    @property
    def label(self) -> str:
        return f"smtp {self.host}:{self.port} to {', '.join(self.to)}"

    def send(self, message: Message, timeout: float) -> str:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain="mobius")
        mail["X-Mobius-Operation"] = message.operation_id
        mail["X-Mobius-Event"] = message.event
        mail.set_content(message.mail_body())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(f"{self.host}:{self.port} does not offer STARTTLS; nothing was sent "
                                            "(the password and the message never go in clear)")
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(mail)
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if refused:
            raise DeliveryError(f"refused for {', '.join(sorted(refused))}")
        return f"accepted for {len(self.to)} recipient(s)"


Destination = Webhook | Smtp


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_destinations(text: str | None, *, smtp_password: str | None = None) -> list[Destination]:
    """The destinations of `MOBIUS_NOTIFY` (white-space separated URLs); InputError names a bad one."""
    found: list[Destination] = []
    for i, url in enumerate((text or "").split(), start=1):
        found.append(_parse_one(url, i, smtp_password))
    return found


def _parse_one(url: str, i: int, smtp_password: str | None) -> Destination:
    where = f"MOBIUS_NOTIFY destination {i}"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{where} is not a URL: {exc}", hint="see docs/notify.md") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise InputError(f"{where}: a webhook URL needs a host", hint="https://hooks.example.com/...")
        return Webhook(url)
    if scheme != "smtp":
        raise InputError(f"{where}: scheme {scheme or '(none)'!r} is not one Mobius sends to",
                         hint="use https://... (a webhook) or smtp://user@host:587?to=... (mail)")
    if not parts.hostname:
        raise InputError(f"{where}: an smtp:// URL needs a host", hint="smtp://user@mail.example.com:587?to=...")
    if parts.password is not None:
        raise InputError(f"{where}: the SMTP password does not go in the URL",
                         hint="set MOBIUS_NOTIFY_SMTP_PASSWORD (it is masked everywhere)")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    to = tuple(a.strip() for value in query.get("to", []) for a in value.split(",") if a.strip())
    if not to:
        raise InputError(f"{where}: an smtp:// URL needs recipients", hint="add ?to=oncall@example.com")
    starttls_word = (query.get("starttls") or ["on"])[-1].lower()
    if starttls_word not in ("on", "off"):
        raise InputError(f"{where}: starttls is on or off, not {starttls_word!r}")
    starttls = starttls_word == "on"
    user = urllib.parse.unquote(parts.username) if parts.username else None
    if not starttls and (user or not _loopback(parts.hostname)):
        raise InputError(f"{where}: starttls=off is only for a relay on this machine, without a login",
                         hint="leave starttls on (the default)")
    sender = (query.get("from") or [f"mobius@{socket.gethostname()}"])[-1]
    return Smtp(parts.hostname, port or 587, to, sender, user, smtp_password if user else None, starttls)
