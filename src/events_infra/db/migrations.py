"""Versioned schema migrations: plain `.sql` files shipped in a package, applied in order.

The runner is schema-agnostic: the outbox (`events_infra.outbox.schema`) and the consumer's
`processed_events` (`events_infra.consumer.processed`) each pass their own package, history table
and lock. One runner serves `eventsctl outbox migrate` (psycopg) and `pulumi up` (the Cloud SQL
Python Connector's pg8000 connection), so it speaks plain DB-API: `cursor()`, `execute`, `commit`,
`rollback`, `%s` parameters. Rules, each learned from migration tools that got it wrong:

- every applied file is recorded with a SHA-256 checksum, and an applied file that was edited
  afterwards is refused (the database would silently differ from the code);
- each migration runs in its own transaction with its record, so a failure leaves nothing of it;
- runners are serialised by a session advisory lock, so two `pulumi up`s or relays starting at
  once apply each migration exactly once;
- applying twice is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from events_infra.errors import EventsInfraError, first_line

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(EventsInfraError):
    """The schema cannot be brought up to date; the message says why and what to do."""


class Connection(Protocol):
    """The DB-API subset the runner needs (psycopg 3 and pg8000 both provide it)."""

    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)

    @property
    def schema_version(self) -> int:
        names = self.applied + self.already_applied
        return max((int(n[:4]) for n in names), default=0)


def load_migrations(package: str, directory: Path | None = None) -> list[Migration]:
    """The migrations shipped with `package` (or in `directory`), in version order."""
    if directory is None:
        files = [
            (entry.name, entry.read_text())
            for entry in resources.files(package).joinpath("migrations").iterdir()
        ]
    else:
        files = [(path.name, path.read_text()) for path in directory.iterdir()]
    migrations = []
    for filename, sql in files:
        match = _FILENAME.match(filename)
        if not match:
            if filename.endswith(".sql"):
                raise MigrationError(
                    f"migration file {filename!r} is misnamed: use NNNN_lowercase_name.sql"
                )
            continue
        migrations.append(Migration(int(match.group(1)), match.group(2), sql))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return migrations


def migrations_digest(migrations: list[Migration]) -> str:
    """One checksum over all migrations: Pulumi re-runs the schema step when it changes."""
    joined = "\n".join(f"{m.filename}:{m.checksum}" for m in migrations)
    return hashlib.sha256(joined.encode()).hexdigest()


def apply_migrations(
    conn: Connection, todo: list[Migration], table: str, lock_key: int
) -> MigrationReport:
    """Bring a schema up to date on `conn` (not in autocommit mode); safe to run concurrently.

    `table` (the applied history) and `lock_key` (the advisory lock) are the schema's own, so
    two schemas in one database keep separate histories under the same rules.
    """
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
    conn.commit()
    try:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
        cur.execute(f"SELECT version, name, checksum FROM {table} ORDER BY version")
        applied = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        conn.commit()
        _check_history(applied, todo)

        report = MigrationReport()
        for migration in todo:
            if migration.version in applied:
                report.already_applied.append(migration.filename)
                continue
            try:
                cur.execute(migration.sql)
                cur.execute(
                    f"INSERT INTO {table} (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                conn.commit()
            except Exception as err:
                conn.rollback()
                raise MigrationError(
                    f"migration {migration.filename} failed and was rolled back "
                    f"(nothing of it is applied): {first_line(err)}"
                ) from err
            report.applied.append(migration.filename)
        return report
    finally:
        try:
            conn.rollback()
            cur.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
            conn.commit()
        except Exception:
            pass


def _check_history(applied: dict[int, tuple[str, str]], todo: list[Migration]) -> None:
    known = {m.version: m for m in todo}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name}.sql, which this version of "
                "events-infra does not know; upgrade events-infra before migrating"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.filename} was edited after it was applied "
                f"(checksum {migration.checksum[:12]} in the file, {checksum[:12]} in the "
                "database); restore the original file and put the change in a new migration"
            )
