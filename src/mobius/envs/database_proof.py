"""Are two environments' databases identical? A row digest of both, or a proof that neither changed since
their digests were last found equal.

A promote asks this up to three times (its printed plan, its plan under the runner's lock, its verify), and
with nothing changed each answer digested every row of both databases (on SQLite about a second each at
20,000 rows; issue #20). When the digests are equal, the databases' change tokens (db.changes), read before
and after the digests and unchanged across them, are kept in a proof file; a later question whose tokens both
equal the proof's is answered "identical" without reading a row. Any committed write to either database
changes its token (a changed database is never taken as unchanged), and a token that cannot prove anything
(None) always means digesting again. On PostgreSQL the token is the server's transaction snapshot, which
reads never move (the WAL position it was before moved with the catalog pruning of the first reads after a
restore, so the digest right after a promote's copy was proven only after a warm-up read of every table).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mobius.config import Workspace
from mobius.envs import state
from mobius.safety.atomic import atomic_write_text

PROOF_NAME = "databases.json"
BY_DIGEST = "sha256 of every row"
BY_TOKENS = "unchanged since their row digests were found equal (change tokens)"


def change_tokens(source: Workspace, target: Workspace) -> list[str | None]:
    from mobius.db.changes import change_token
    from mobius.db.engine import target_for

    return [change_token(target_for(ws)) for ws in (source, target)]


def _proven(proof: Path) -> list[str] | None:
    try:
        value = json.loads(proof.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tokens = value.get("tokens") if isinstance(value, dict) else None
    return tokens if isinstance(tokens, list) and len(tokens) == 2 and None not in tokens else None


def databases_identical(source: Workspace, target: Workspace, proof_dir: Path) -> tuple[bool, str]:
    """Whether the two databases hold the same rows, and how that was found (BY_TOKENS or BY_DIGEST).

    Digests are equal and the tokens read before them are read again unchanged after them: then the tokens
    are written to `proof_dir`/databases.json (when that folder exists: a dry run creates nothing)."""
    proof = proof_dir / PROOF_NAME
    before = change_tokens(source, target)
    if None not in before and _proven(proof) == before:
        return True, BY_TOKENS
    with ThreadPoolExecutor(2) as pool:  # two databases, mostly waiting on their servers
        digests = list(pool.map(state.database_digest, (source, target)))
    same = digests[0] == digests[1]
    if same and None not in before and proof_dir.is_dir() and change_tokens(source, target) == before:
        atomic_write_text(proof, json.dumps({"tokens": before}))
    return same, BY_DIGEST


def forget_proof(proof_dir: Path) -> None:
    """After a restore of the target: its database is no longer the one proven (its token changes anyway;
    this keeps the file from outliving what it describes)."""
    (proof_dir / PROOF_NAME).unlink(missing_ok=True)
