"""Fixtures for the notification tests: the ops workspaces (tests/ops) and real receivers on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.ops.conftest import _ops_template, ops_ws  # noqa: F401 - the migration tests' workspaces

sys.path.insert(0, str(Path(__file__).parent))

from notify_support import MailReceiver, WebhookReceiver  # noqa: E402


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through SSL_CERT_FILE)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def mailbox(tls_cert: tuple[Path, Path]) -> Iterator[MailReceiver]:
    receiver = MailReceiver(*tls_cert)
    yield receiver
    receiver.close()
