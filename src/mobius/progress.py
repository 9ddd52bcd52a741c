"""Progress reporting, kept apart from the work (restic's progress.go).

Capabilities take a `Progress` and call `start`, `advance`, `finish`; the CLI decides whether a
person is watching (a rich bar on stderr) or not (nothing).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: float | None = None, *, unit: str = "files") -> None: ...

    def advance(self, amount: float = 1) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """For scripts, tests and --json: reports nothing."""

    def start(self, description: str, total: float | None = None, *, unit: str = "files") -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgress:
    """A live bar on stderr: done/total, rate, ETA. Thread-safe (rich locks internally)."""

    def __init__(self) -> None:
        self._progress = None
        self._task = None

    def start(self, description: str, total: float | None = None, *, unit: str = "files") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as _Progress

        self.finish()
        amount = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
        self._progress = _Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), *amount, TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
