"""`mobius env new NAME [--copy]`: an environment with places of its own, never half-made."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.envs.conftest import table_rows

pytestmark = pytest.mark.usefixtures("sample_workspace")


def content(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_env_new_copy_is_a_verified_copy_with_places_of_its_own(mobius, sample_workspace: Path) -> None:
    code, out = mobius.json("env", "new", "staging", "--copy", "-w", str(sample_workspace))
    assert code == 0, out
    env_file = sample_workspace / "environments" / "staging.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert (sample_workspace / "environments" / "staging" / "mobius.db").stat().st_mode & 0o777 == 0o600
    places = sample_workspace / "environments" / "staging"
    assert content(places / "uploads") == content(sample_workspace / "uploads")
    assert table_rows(sample_workspace, "staging")["games"] == table_rows(sample_workspace, None)["games"]
    assert sum(out["copied_rows"].values()) > 0 and out["copied_files"] == len(content(sample_workspace / "uploads"))
    # the workspace's own places are untouched, and the new environment is what --env selects
    code, shown = mobius.json("--env", "staging", "config", "show", "-w", str(sample_workspace))
    assert code == 0
    code, history = mobius.json("history", "-w", str(sample_workspace))
    assert any(op["type"] == "env.new" and op["status"] == "completed" for op in history["operations"])


def test_env_new_empty_has_the_newest_schema_and_an_empty_library(mobius, sample_workspace: Path) -> None:
    code, out = mobius.json("env", "new", "production", "-w", str(sample_workspace))
    assert code == 0, out
    assert content(sample_workspace / "environments" / "production" / "uploads") == {}
    assert table_rows(sample_workspace, "production")["games"] == []
    code, report = mobius.json("env", "validate", "production", "-w", str(sample_workspace))
    assert code == 0, report


@pytest.mark.parametrize("name", ["staging", "../up", "a b", "$HOME"])
def test_env_new_refuses_a_name_in_use_or_not_plain(mobius, sample_workspace: Path, name: str) -> None:
    (sample_workspace / "environments").mkdir()
    existing = sample_workspace / "environments" / "staging.env"
    existing.write_text("MOBIUS_LIBRARY_DIR=elsewhere\n")
    proc = mobius("env", "new", name, "-w", str(sample_workspace))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert existing.read_text() == "MOBIUS_LIBRARY_DIR=elsewhere\n"
    assert sorted(p.name for p in (sample_workspace / "environments").iterdir()) == ["staging.env"]


def test_env_new_copy_of_an_object_storage_library_is_refused_up_front(mobius, sample_workspace: Path) -> None:
    proc = mobius("env", "new", "staging", "--copy", "-w", str(sample_workspace),
                  env={"MOBIUS_LIBRARY_DIR": "s3://bucket/library"})
    assert proc.returncode == 1 and "--copy copies a local library" in proc.stderr, proc.stderr
    assert not (sample_workspace / "environments").exists() or not any((sample_workspace / "environments").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("when", [1, 3, 5, 7, 8, 9])
def test_env_new_killed_at_a_rename_leaves_no_half_environment(mobius, sample_workspace: Path, when: int) -> None:
    """kill -9 at the Nth rename of the main thread (9 in all: dumps and sidecars, the copy's manifests and
    settings, the places folder, the settings file): no environment at all, and a rerun completes."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    from tests.conftest import MOBIUS

    killed = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null",
                             "-e", f"inject=rename,renameat,renameat2:signal=KILL:when={when}",
                             *MOBIUS, "env", "new", "staging", "--copy", "-w", str(sample_workspace)],
                            capture_output=True, text=True, timeout=300)
    env_file = sample_workspace / "environments" / "staging.env"
    assert killed.returncode in (-9, 137), killed.stderr[-500:]
    assert not env_file.exists(), "the settings file is written last"
    done = mobius("env", "new", "staging", "--copy", "-w", str(sample_workspace))
    assert done.returncode == 0, done.stderr
    places = sample_workspace / "environments" / "staging"
    assert content(places / "uploads") == content(sample_workspace / "uploads")
    assert table_rows(sample_workspace, "staging")["games"] == table_rows(sample_workspace, None)["games"]
    assert not (sample_workspace / "environments" / ".new-staging").exists()
    assert not (places / ".mobius-env-new").exists()
