"""The service snippets of docs/services.md, run as written: the FastAPI + SQLAlchemy async
writer and the consumer, end to end through the relay on the emulator (strict proxy) and real
PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import types
import uuid
from pathlib import Path

import psycopg
import pytest

from events_infra.consumer import migrate_processed_events
from events_infra.db.drivers import sqlalchemy_url
from tests.support.dlq_support import make_stack
from tests.support.relay_support import RelayThread, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "services.md"


def snippet(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/services.md has no snippet {name!r}"
    return match.group(1)


@pytest.mark.parametrize("name", ["service-writer", "service-consumer"])
def test_snippets_are_under_15_lines(name: str) -> None:
    lines = [line for line in snippet(name).splitlines() if line.strip()]
    assert len(lines) < 15


def test_doc_writer_and_consumer_work_end_to_end(
    pubsub: str, outbox_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import Column, Integer, Uuid
    from sqlalchemy.orm import DeclarativeBase

    with psycopg.connect(outbox_db) as conn:
        conn.execute("CREATE TABLE trades (id uuid PRIMARY KEY, quantity integer NOT NULL)")
        conn.execute("CREATE TABLE positions (trade_id uuid NOT NULL, quantity integer)")
        migrate_processed_events(conn)  # `eventsctl consumer migrate`

    class Base(DeclarativeBase):
        pass

    class Trade(Base):  # the service's own model, as `myservice.models` would define it
        __tablename__ = "trades"
        id = Column(Uuid, primary_key=True)
        quantity = Column(Integer, nullable=False)

    models = types.ModuleType("myservice.models")
    models.Trade = Trade  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myservice", types.ModuleType("myservice"))
    monkeypatch.setitem(sys.modules, "myservice.models", models)
    url = sqlalchemy_url(outbox_db, "asyncpg").render_as_string(hide_password=False)
    monkeypatch.setenv("SQLALCHEMY_URL", url)

    service: dict = {}
    exec(compile(snippet("service-writer"), "docs/services.md:service-writer", "exec"), service)
    trade_id = uuid.uuid4()
    with TestClient(service["app"]) as client:
        response = client.post(f"/trades/{trade_id}", params={"quantity": 12})
    assert response.status_code == 200, response.text
    with psycopg.connect(outbox_db) as conn:
        [(event_type, aggregate)] = conn.execute(
            "SELECT event_type, aggregate_id FROM event_outbox"
        ).fetchall()
        [(quantity,)] = conn.execute("SELECT quantity FROM trades").fetchall()
    assert (event_type, aggregate, quantity) == ("trade.created", trade_id, 12)

    stack = make_stack(tmp_path)
    env = {**os.environ, "SUBSCRIPTION": stack.subscription("orders-sub"),
           "DATABASE_URL": outbox_db}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", snippet("service-consumer")], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with RelayThread(outbox_db, stack.topic):

            def positions() -> list:
                with psycopg.connect(outbox_db) as conn:
                    return conn.execute("SELECT trade_id, quantity FROM positions").fetchall()

            assert wait_until(lambda: positions() != [], seconds=60)
        assert positions() == [(trade_id, 12)]
    finally:
        child.send_signal(signal.SIGTERM)
        code = child.wait(30)
    assert code == 0, child.stderr.read()
