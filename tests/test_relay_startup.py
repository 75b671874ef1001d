"""The relay in its container (a health port set, as on Cloud Run) waits for its database behind
/healthz instead of exiting: at instance start-up Direct VPC egress and the Auth Proxy sidecar
may take a minute, and an exit there is a crash loop or a failed revision. By hand (no health
port) an unreachable database is still a one-line error within seconds."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from events_infra.outbox import Event, enqueue
from events_infra.outbox.schema import migrate
from tests.support.relay_support import Bus, relay_process, wait_until


def free_port() -> int:
    """A port nothing listens on (for a database that must not answer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stderr:
    """A child's stderr lines, read as they come (so the pipe never fills)."""

    def __init__(self, child: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(child,), daemon=True)
        self._thread.start()

    def _read(self, child: subprocess.Popen) -> None:
        for line in child.stderr:
            self.lines.append(line.rstrip("\n"))

    def health_port(self) -> int | None:
        """The port the relay serves /healthz on (it picks a free one: --health-port 0)."""
        for line in self.lines:
            if '"health_endpoint"' in line:
                return json.loads(line)["port"]
        return None

    def text(self) -> str:
        self._thread.join(10)
        return "\n".join(self.lines)


def start_relay(url: str, tmp_path: Path, project: str) -> tuple[subprocess.Popen, Stderr, int]:
    child = relay_process(url, tmp_path, project, "--health-port", "0")
    err = Stderr(child)
    assert wait_until(lambda: err.health_port() is not None, seconds=30), err.text()
    port = err.health_port()
    assert port is not None
    return child, err, port


def healthz(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError:
        return None


def test_the_relay_waits_for_its_database_behind_healthz_then_publishes(
    pubsub: str, postgres_server_url: str, tmp_path: Path
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = make_conninfo(postgres_server_url, dbname=name)  # no such database yet
    bus = Bus.create()
    child, err, port = start_relay(url, tmp_path, bus.project)
    try:
        assert healthz(port)[0] == 200 and child.poll() is None, err.text()  # serving
        # it has tried and failed at least once (and says why) before the database appears
        assert wait_until(lambda: any("database_unreachable" in x for x in err.lines), 30)
        # the database becomes reachable, schema and one event already in (renamed in at once)
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}_prep"')
        with psycopg.connect(make_conninfo(postgres_server_url, dbname=f"{name}_prep")) as conn:
            migrate(conn)
            event_id = enqueue(conn, Event("trade.created", "trade", uuid.uuid4(), {"n": 1}))
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}_prep" RENAME TO "{name}"')
        received: list = []
        assert wait_until(lambda: received.extend(bus.received(seconds=0.5)) or received, 60), (
            err.text()
        )
        assert [m.message.attributes["event_id"] for m in received] == [str(event_id)]
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
        stderr = err.text()
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}_prep" WITH (FORCE)')
    assert child.returncode == 0, stderr
    waits = [json.loads(line) for line in stderr.splitlines() if "database_unreachable" in line]
    assert waits and any(name in w["error"] for w in waits), stderr  # each try logged, and why


def test_a_stop_while_waiting_for_the_database_is_a_clean_exit(
    pubsub: str, postgres_server_url: str, tmp_path: Path
) -> None:
    url = make_conninfo(postgres_server_url, dbname=f"t_{uuid.uuid4().hex[:12]}")
    child, err, port = start_relay(url, tmp_path, Bus.create().project)
    assert healthz(port) is not None
    child.send_signal(signal.SIGTERM)
    child.wait(30)
    stderr = err.text()
    assert child.returncode == 0 and "Traceback" not in stderr, stderr


def test_by_hand_an_unreachable_database_is_one_line(pubsub: str, tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    child = relay_process(url, tmp_path, Bus.create().project)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 2
    [line] = stderr.strip().splitlines()
    assert "127.0.0.1" in line and "Traceback" not in stderr
