"""Packages whose public names load on first use (PEP 562 `__getattr__` over a `_HOMES` table): every name still
imports as before, is the very object its home module defines, and an unknown name is still an AttributeError.

A name missing from `_HOMES` (or pointing at the wrong module) fails here, not in a user's `from mobius.backup
import X` at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest

LAZY_PACKAGES = ["mobius.backup", "mobius.golden"]
# A public name that is also a submodule's name: once that submodule is imported, the package attribute is the
# module, not the function (`from mobius.golden import upgrade` gave either, by import order, until golden's module
# became format_upgrade). None is left; the list only shrinks.
SHADOWED: set[tuple[str, str]] = set()


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_is_its_home_modules_object(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module._HOMES)
    for name in module.__all__:
        home = importlib.import_module(f"{package}.{module._HOMES[name]}")
        assert name in vars(home), f"{package}.{name}: not defined in {home.__name__}"
        if (package, name) in SHADOWED:
            assert importlib.util.find_spec(f"{package}.{name}") is not None, f"drop {name} from SHADOWED"
            continue
        assert importlib.util.find_spec(f"{package}.{name}") is None, f"{package}.{name} is also a submodule"
        assert getattr(module, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_backup_names_import_as_before_and_load_only_their_modules() -> None:
    """`from mobius.backup import create_snapshot` (a promote's restore point) loads the snapshot writer, not the
    modules of copy, export, prune, restore or the S3 repository; every name of the old `__init__` still imports."""
    code = (
        "import sys\n"
        "from mobius.backup import create_snapshot, LATEST, DATABASE_MEMBER\n"
        "assert callable(create_snapshot) and LATEST == 'latest'\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('mobius.backup.'))))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=60).stdout.split())
    assert "mobius.backup.repository" in loaded
    assert not loaded & {f"mobius.backup.{m}" for m in ("copy", "export", "prune", "remote", "store",
                                                        "object_restore", "snapshot_restore", "trial_restore",
                                                        "repository_check", "restore", "points")}
    from mobius.backup import (  # noqa: F401 - the names the package exported before they loaded lazily
        BackupInfo,
        BackupResult,
        RetentionPolicy,
        TestRestoreReport,
        VerifyReport,
        apply_retention,
        copy_backups,
        extract_member,
        list_backups,
        list_snapshots,
        prune_backups,
        restore_archive,
        test_restore,
        verify_archive,
    )
