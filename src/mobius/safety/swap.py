"""Replace a folder by another with two renames, and finish or undo a swap a crash interrupted.

Before the first rename an intent file (`.mobius-swap-<name>.json`, written atomically beside the
target) names the target, the complete new folder and where the old one goes. A kill between the
two renames leaves the target missing; `recover_swap` (called by every command that touches the
folder) sees the intent and finishes the swap, since the new folder was complete before the intent
was written. Nothing is ever deleted here: the old folder stays until its owner removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mobius.safety.atomic import atomic_write_text, fsync_dir
from mobius.safety.process import process_alive
from mobius.safety.stamps import utc_compact

INTENT_PREFIX = ".mobius-swap-"


@dataclass(frozen=True)
class Recovery:
    """What recover_swap did, for the one line a command prints."""

    target: Path
    action: str  # "finished" | "undone" | "cleared"
    new: Path
    old: Path | None

    def message(self) -> str:
        if self.action == "finished":
            kept = f"; the previous content is in {self.old}" if self.old else ""
            return f"finished an interrupted swap of {self.target} (the new content is in place{kept})"
        if self.action == "undone":
            return f"undid an interrupted swap of {self.target} (its previous content is back from {self.old})"
        return f"cleared the record of a completed swap of {self.target}"


def intent_path(target: Path) -> Path:
    return target.parent / f"{INTENT_PREFIX}{target.name}.json"


def aside_name(target: Path, label: str = "rollback") -> Path:
    """A free sibling name `<target>.<label>.<stamp>[-n]` for the folder being replaced."""
    stamp = utc_compact()
    candidate = target.with_name(f"{target.name}.{label}.{stamp}")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = target.with_name(f"{target.name}.{label}.{stamp}-{n}")
    return candidate


def swap_folder(new: Path, target: Path, *, old: Path | None = None) -> Path | None:
    """Put the complete, fsynced folder `new` at `target`; the previous `target` moves to `old`.

    Returns where the previous content went (None when there was none). Never leaves `target`
    missing for longer than a crash, and the next `recover_swap(target)` repairs that.
    """
    new, target = Path(new), Path(target)
    recover_swap(target)
    had_old = target.exists() or target.is_symlink()
    old = (old or aside_name(target)) if had_old else None
    intent = intent_path(target)
    atomic_write_text(intent, json.dumps({"target": str(target), "new": str(new),
                                          "old": str(old) if old else None, "pid": os.getpid()}))
    try:
        if old is not None:
            os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            intent.unlink()
        fsync_dir(target.parent)
    return old


def recover_swap(target: Path) -> Recovery | None:
    """Finish (or, when the new folder is gone, undo) a swap of `target` that a killed process left.

    Returns None when there was nothing to repair or the swapping process is still alive.
    """
    target = Path(target)
    intent = intent_path(target)
    try:
        record = json.loads(intent.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, UnicodeDecodeError):
        record = {}
    pid = int(record.get("pid") or 0)
    if pid and pid != os.getpid() and process_alive(pid):
        return None
    new = Path(record.get("new") or "")
    old = Path(record["old"]) if record.get("old") else None
    present = target.exists() or target.is_symlink()
    if not present and record.get("new") and new.is_dir():
        os.rename(new, target)
        action = "finished"
    elif not present and old is not None and (old.exists() or old.is_symlink()):
        os.rename(old, target)
        action = "undone"
    else:
        action = "cleared"
    fsync_dir(target.parent)
    intent.unlink()
    fsync_dir(target.parent)
    result = Recovery(target=target, action=action, new=new, old=old)
    from mobius.log import get_logger

    get_logger().warning("swap.recovered", target=str(target), action=action, old=str(old) if old else None)
    return result
