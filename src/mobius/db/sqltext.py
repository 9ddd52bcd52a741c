"""Splitting a section of SQL into statements, the way the database would read them.

A semicolon ends a statement except inside a quoted string ('...'), a quoted identifier ("..."),
a comment (-- ... or /* ... */), a PostgreSQL dollar-quoted body ($$...$$, $tag$...$tag$), or the
BEGIN ... END body of a CREATE TRIGGER. Comments are kept in the statement text (the database
ignores them); statements that are only comments are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Statement:
    """One statement and the line it starts on in its file (for error messages)."""

    sql: str
    line: int


def strip_comments(sql: str) -> str:
    """The statement without its comments (for classifying it, not for running it)."""
    out: list[str] = []
    for kind, text in _tokens(sql):
        if kind != "comment":
            out.append(text)
    return "".join(out).strip()


def split_statements(text: str, *, first_line: int = 1) -> list[Statement]:
    """The statements in `text`, each with its starting line number."""
    statements: list[Statement] = []
    current: list[str] = []
    words: list[str] = []  # upper-case words of the current statement, outside strings and comments
    depth = 0  # BEGIN/CASE ... END nesting inside a CREATE TRIGGER
    line = first_line
    start_line: int | None = None
    for kind, token in _tokens(text):
        if kind == "semicolon" and not (_is_trigger(words) and depth > 0):
            _flush(statements, current, start_line)
            current, words, depth, start_line = [], [], 0, None
        else:
            if start_line is None and kind not in ("space", "comment"):
                start_line = line
            current.append(token)
            if kind == "word":
                upper = token.upper()
                words.append(upper)
                if _is_trigger(words):
                    if upper in ("BEGIN", "CASE"):
                        depth += 1
                    elif upper == "END":
                        depth = max(0, depth - 1)
        line += token.count("\n")
    _flush(statements, current, start_line)
    return statements


def _flush(statements: list[Statement], current: list[str], start_line: int | None) -> None:
    sql = "".join(current).strip()
    if sql and strip_comments(sql):
        statements.append(Statement(sql, start_line or 1))


def _is_trigger(words: list[str]) -> bool:
    head = words[:4]
    return bool(head) and head[0] == "CREATE" and "TRIGGER" in head


def _tokens(text: str):  # noqa: C901 - one small state machine reads better than several
    """(kind, text) pieces: word, string, comment, semicolon, space, other."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            yield "comment", text[i:end]
            i = end
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            yield "comment", text[i:end]
            i = end
        elif c in ("'", '"'):
            j = i + 1
            while j < n:
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote is an escaped quote
                        j += 2
                        continue
                    break
                j += 1
            yield "string", text[i : j + 1]
            i = j + 1
        elif c == "$" and (match := _DOLLAR_TAG.match(text, i)) and not (i > 0 and _is_word_char(text[i - 1])):
            tag = match.group(0)
            end = text.find(tag, match.end())
            end = n if end < 0 else end + len(tag)
            yield "string", text[i:end]
            i = end
        elif c == ";":
            yield "semicolon", c
            i += 1
        elif c.isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            yield "space", text[i:j]
            i = j
        elif match := _WORD.match(text, i):
            yield "word", match.group(0)
            i = match.end()
        else:
            yield "other", c
            i += 1


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"
