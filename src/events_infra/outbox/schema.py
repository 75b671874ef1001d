"""The outbox schema: its migrations (`events_infra/outbox/migrations/*.sql`), history table and
lock, applied by the generic runner in `events_infra.db.migrations`.

`eventsctl outbox migrate`, the schema step of `pulumi up`, the migration job and local mode all
call `migrate` here, so every path applies the same files under the same lock.
"""

from __future__ import annotations

from pathlib import Path

from events_infra.db.migrations import (
    Connection,
    Migration,
    MigrationError,
    MigrationReport,
    apply_migrations,
)
from events_infra.db.migrations import load_migrations as _load
from events_infra.db.migrations import migrations_digest as _digest

PACKAGE = "events_infra.outbox"
MIGRATIONS_TABLE = "outbox_schema_migrations"
LOCK_KEY = 0x6F7574626F78  # "outbox": one advisory lock id shared by every runner

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "MigrationError",
    "MigrationReport",
    "load_migrations",
    "migrate",
    "migrations_digest",
]


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The outbox migrations shipped with this package (or those in `directory`), in order."""
    return _load(PACKAGE, directory)


def migrations_digest(migrations: list[Migration] | None = None) -> str:
    """One checksum over the outbox migrations: Pulumi re-runs the schema step when it changes."""
    return _digest(migrations if migrations is not None else load_migrations())


def migrate(conn: Connection, migrations: list[Migration] | None = None) -> MigrationReport:
    """Bring the outbox schema up to date on `conn` (not in autocommit); safe concurrently."""
    todo = migrations if migrations is not None else load_migrations()
    return apply_migrations(conn, todo, MIGRATIONS_TABLE, LOCK_KEY)
