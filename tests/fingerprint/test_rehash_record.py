"""`library rehash --to` runs as a one-step plan: `mobius migrate rollback ID` switches back to the hash version
active before it, with nothing but the record (nothing recomputed)."""

from __future__ import annotations

from mobius.fingerprint.algorithm import EXACT, FAST


def test_a_rehash_is_undone_from_its_record(sqlite_library, mobius):
    ws = str(sqlite_library.root)
    code, hashed = mobius.json("library", "hash", "-w", ws)
    assert code == 0 and hashed["active"] == EXACT.id
    code, moved = mobius.json("library", "rehash", "--to", "fast", "-w", ws)
    assert code == 0 and moved["switched"] and moved["to"] == FAST.id
    code, history = mobius.json("history", "-w", ws)
    rehash = next(op for op in history["operations"] if not op["parent"])
    assert (rehash["type"], rehash["status"], rehash["params"]["to"]) == ("library.rehash", "completed", "fast")
    proc = mobius("migrate", "rollback", rehash["id"], "--yes", "-w", ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, metrics = mobius.json("library", "metrics", "-w", ws)
    assert code == 0 and metrics["algorithm"] == EXACT.id
