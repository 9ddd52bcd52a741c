"""Options several commands share, defined once (same names, short forms and help everywhere)."""

from __future__ import annotations

import typer

YES = typer.Option(False, "--yes", "-y", help="Answer yes to every confirmation (needed without a terminal).")
DRY_RUN = typer.Option(False, "--dry-run", help="Show what would happen; change nothing.")
WORKERS = typer.Option(None, "--workers", help="Parallel workers for hashing and copying (default: CPU count, "
                                                "at most 8).")
EXECUTOR = typer.Option(None, "--executor", help="Where per-game work runs: local (a pool on this machine) or "
                                                   "dask (MOBIUS_DASK_SCHEDULER, else a local cluster). "
                                                   "Default: MOBIUS_EXECUTOR, else local.")
