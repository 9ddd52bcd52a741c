"""Hiding secrets in what Mobius shows, logs and records: passwords inside URLs, values of secret variables.

Its own module, below everything that prints: `log`, `config`, `records` and the CLI all mask through it,
and it imports nothing of Mobius (SQLAlchemy's URL grammar is imported only when a URL has a password).
"""

from __future__ import annotations

import re
import urllib.parse

MASK = "****"
_SECRET_WORDS = frozenset(("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "CREDENTIALS",
                           "RECIPIENTS",  # backup keys: never shown, public ones neither
                           "NOTIFY"))  # notification destinations: a webhook URL is its own credential
_SECRET_QUERY_NAMES = frozenset(("password", "passwd", "pass", "secret", "token", "sslpassword", "api_key",
                                 "access_token", "auth_token", "secret_key", "aws_secret_access_key"))
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # only finds where a URL may start; parsing is below


def is_secret_name(name: str) -> bool:
    """True for a variable whose value is a secret, in any case: MOBIUS_API_TOKEN, AWS_SECRET_ACCESS_KEY,
    PGPASSWORD, db_password (a word of the name is PASSWORD, SECRET, TOKEN, KEY, ...)."""
    upper = name.upper()
    return "PASSWORD" in upper or "PASSWD" in upper or any(word in _SECRET_WORDS for word in upper.split("_"))


def _masked_query(query: str) -> str:
    """`a=1&password=x;token=y` with the secret parameters' values hidden (urllib's separators: & and ;)."""
    parts = re.split(r"([&;])", query)
    for i in range(0, len(parts), 2):
        name, equals, _value = parts[i].partition("=")
        if equals and urllib.parse.unquote_plus(name).lower() in _SECRET_QUERY_NAMES:
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password sits in `url`, as SQLAlchemy's make_url reads it (so `Hunt/R2 pw9` counts), or None.

    make_url's grammar: scheme://username:password@host..., the username without `:` or `/`, the
    password anything up to the first `@`. urllib.parse is asked only when make_url cannot parse the URL.
    """
    if "@" not in url or ":" not in url[url.index("://") + 3:]:
        return None  # no userinfo password possible: spare log lines of s3:// paths the parse
    from sqlalchemy.engine import make_url  # here for start-up time: only a URL with a userinfo needs it
    from sqlalchemy.exc import ArgumentError

    start = url.index("://") + 3
    try:
        if make_url(url).password is None:
            return None
        colon = url.index(":", start)
        return colon + 1, url.index("@", colon)
    except (ArgumentError, ValueError):
        pass
    try:  # urllib's reading: the userinfo runs to the netloc's last `@`
        split = urllib.parse.urlsplit(url)
        if split.password is None:
            return None
    except ValueError:
        return None
    colon = url.index(":", start)
    return colon + 1, start + len(split.netloc.rpartition("@")[0])


def mask_text(text: str) -> str:
    """Hide the password of every URL in `text` (userinfo and query string), for messages and logs.

    A password may hold `/` and spaces (SQLAlchemy accepts both unescaped), so a URL's password is cut
    where make_url's grammar says (up to the first `@` on its line), not at the first space; when in
    doubt, more is hidden, never less.
    """
    return "".join(_mask_line(line) for line in text.splitlines(keepends=True)) if "://" in text else text


def _mask_line(line: str) -> str:
    match = URL_SCHEME.search(line)
    if match is None:
        return line
    head, rest = line[:match.start()], line[match.start():]
    following = URL_SCHEME.search(rest, match.end() - match.start())  # a second URL on the line is its own
    span = _password_span(rest[:following.start()] if following else rest)
    after_host = match.end() - match.start()
    if span is not None:
        rest = rest[:span[0]] + MASK + rest[span[1]:]
        after_host = span[0] + len(MASK) + 1
    stop = re.search(r"[\s'\"<>]", rest[after_host:])
    end = after_host + stop.start() if stop else len(rest)
    url, tail = rest[:end], rest[end:]
    base, question, query = url.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        url = base + question + _masked_query(query) + hash_ + fragment
    return head + url + _mask_line(tail)


def mask_secret(name: str, value: object) -> object:
    """Hide the value of a secret setting or variable (by its name) and passwords inside URLs."""
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    return value
