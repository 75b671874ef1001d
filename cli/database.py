"""The `--database-url` option the outbox and consumer commands share; connecting is the
library's (`events_infra.db.connect`), whose errors the CLI prints as one line, exit 2."""

from __future__ import annotations

import typer

from events_infra.db.connect import connect

__all__ = ["DATABASE_URL", "connect"]

DATABASE_URL = typer.Option(
    None,
    "--database-url",
    envvar="DATABASE_URL",
    help="PostgreSQL URL of the outbox database (postgresql://user:pass@host:5432/db).",
    show_default=False,
)
