"""Moved to `mobius.stamps`: time stamps are no safety concept, and `mobius.log` (which `safety` uses) needs them.

Kept so that existing imports keep working; new code imports `mobius.stamps`.
"""

from mobius.stamps import new_id, parse_utc, utc_compact, utc_iso, utc_now

__all__ = ["new_id", "parse_utc", "utc_compact", "utc_iso", "utc_now"]
