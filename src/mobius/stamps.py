"""Ids and UTC time stamps: one format for every record, file name and report.

`utc_iso` is for records and reports (ISO 8601 with milliseconds and a Z); `utc_compact` is for
file and folder names (sorts by time, no characters a shell or a filesystem dislikes);
`new_id` is a compact stamp plus random hex, unique across concurrent runs.
"""

from __future__ import annotations

import datetime as dt
import secrets


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_iso(moment: dt.datetime | None = None) -> str:
    """2026-12-01T06:45:26.123Z"""
    return (moment or utc_now()).astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_compact(moment: dt.datetime | None = None) -> str:
    """20261201T064526Z"""
    return (moment or utc_now()).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_utc(text: str) -> dt.datetime:
    """Read either format back (naive values are taken as UTC)."""
    text = text.strip()
    if len(text) == 16 and text.endswith("Z") and "T" in text and "-" not in text:
        return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def new_id(prefix: str = "") -> str:
    """A sortable unique id: [prefix-]20261201T064526Z-1a2b3c."""
    stem = f"{utc_compact()}-{secrets.token_hex(3)}"
    return f"{prefix}-{stem}" if prefix else stem
