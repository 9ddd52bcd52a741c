"""Text from a file, a plan or an argument made safe to show: control characters as \\xNN.

A name or a plan's text may hold a terminal escape sequence (clear the screen, set the window
title) or a newline that forges a line of output ("FAKE: migration completed OK"). Everything a
person reads passes through `printable`: the one error line, every human line a command prints,
the migration reports. JSON output keeps the text as it is: json escapes control characters itself.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every C0/C1 control character (newline and tab included) shown as \\xNN: one line, no escapes."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
