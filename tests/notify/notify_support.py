"""Helpers for the notification tests (conftest puts this folder on sys.path): an HTTP server that takes
webhooks and an SMTP server (aiosmtpd) with STARTTLS and a login, on loopback, keeping every body they receive."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "tok-" + "N0tifyS3cretT0ken"  # the API token set for the runs (grepped for in every body)
SMTP_PASSWORD = "smtp-" + "pw-Qx81Zr"
DB_PASSWORD = "db-" + "pw-Hk27Lm"
HOOK_SECRET = "T000/B000/" + "HookPathS3cret"  # a Slack-style webhook path is its credential


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """POSTs land in `.bodies` (parsed) and `.raw`; `fail_first` answers 500 that many times first."""

    def __init__(self, *, fail_first: int = 0, always_fail: bool = False):
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        self.failures = 0
        self.fail_first, self.always_fail = fail_first, always_fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.raw.append(body)
                if receiver.always_fail or receiver.failures < receiver.fail_first:
                    receiver.failures += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{HOOK_SECRET}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        """The events received, in order, but the duration alert: a loaded machine may run past the estimate."""
        return [b["event"] for b in self.bodies if b["event"] != "alert.duration"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """aiosmtpd on loopback: STARTTLS required before AUTH, one user whose password is SMTP_PASSWORD."""

    def __init__(self, cert: Path, key: Path, *, tls: bool = True):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[tuple[list[str], bytes]] = []
        self.logins: list[str] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201 - aiosmtpd's API
                receiver.mails.append((list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
            ok = auth_data.login == b"oncall" and auth_data.password == SMTP_PASSWORD.encode()
            if ok:
                receiver.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert), str(key))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
                                     require_starttls=tls, authenticator=authenticate, auth_require_tls=tls,
                                     auth_required=tls)
        self.controller.start()
        self.url = f"smtp://oncall@127.0.0.1:{self.port}?to=oncall@example.com,lead@example.com&from=mobius@example.com"

    def texts(self) -> list[str]:
        """Each mail decoded (headers and body as a person reads them: no quoted-printable line breaks)."""
        from email import message_from_bytes, policy

        out = []
        for _, content in self.mails:
            mail = message_from_bytes(content, policy=policy.default)
            out.append(str(mail.items()) + mail.get_body().get_content())
        return out

    def subjects(self) -> list[str]:
        from email import message_from_bytes

        return [str(message_from_bytes(content)["Subject"]) for _, content in self.mails]

    def close(self) -> None:
        self.controller.stop()


def notify_env(*urls: str, cert: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run that notifies `urls`, with secrets set that no message may carry."""
    env = {"MOBIUS_NOTIFY": " ".join(urls), "MOBIUS_NOTIFY_SMTP_PASSWORD": SMTP_PASSWORD, "MOBIUS_API_TOKEN": TOKEN}
    if cert is not None:
        env["SSL_CERT_FILE"] = str(cert)
    env.update(extra)
    return env


def assert_no_secret(*texts: bytes | str) -> None:
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        for secret in (TOKEN, SMTP_PASSWORD, DB_PASSWORD, HOOK_SECRET):
            assert secret.encode() not in raw, f"{secret} leaked in {raw[:300]!r}"
