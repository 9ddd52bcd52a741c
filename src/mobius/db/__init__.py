"""Database schema migrations on SQLite and PostgreSQL: versioned SQL verified inside its own
transaction, a checked dump first, a lock, rehearsal on a copy, rollback, and consistency checks.

Call these (each takes a Workspace); the CLI (`mobius db ...`) is a thin layer over them.
"""

from mobius.db.api import (
    accept_checksum,
    check_database,
    database_is_empty,
    database_status,
    dump_database,
    migrate_database,
    migration_events,
    new_migration,
    restore_database,
    rollback_database,
    sync_databases,
    validate_database,
    verify_database,
)

__all__ = [
    "accept_checksum",
    "check_database",
    "database_is_empty",
    "database_status",
    "dump_database",
    "migrate_database",
    "migration_events",
    "new_migration",
    "restore_database",
    "rollback_database",
    "sync_databases",
    "validate_database",
    "verify_database",
]
