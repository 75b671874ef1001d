"""`eventsctl local up/down/status` and `eventsctl demo`, starting real processes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.local.stack import read_state

runner = CliRunner()


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state dir, and no external emulator/database: local up starts its own."""
    base = tmp_path / "local"
    monkeypatch.setenv("EVENTSCTL_LOCAL_DIR", str(base))
    for name in ("PUBSUB_EMULATOR_HOST", "DATABASE_URL"):
        # set, then unset: monkeypatch then restores the caller's value afterwards, whatever
        # `local up` wrote into os.environ meanwhile
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    yield base
    runner.invoke(app, ["local", "down"])  # never leave processes behind, even on failure


@pytest.fixture
def local_services(local_dir: Path) -> Path:
    """`local_dir` for a test whose `local up` starts a real emulator and PostgreSQL of its own
    (marked emulator + postgres by tests/conftest.py, so `make test-fast` leaves it out)."""
    return local_dir


def processes_using(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline:
            found.append(proc)
    return found


def test_up_twice_changes_nothing_and_down_leaves_nothing(local_services: Path) -> None:
    local_dir = local_services
    first = runner.invoke(app, ["local", "up", "--stack", "dev"])
    assert first.exit_code == 0, first.output
    assert "Pub/Sub emulator: started" in first.stdout
    assert "6 created, 0 already there" in first.stdout
    assert "retry backoff shortened locally" in first.stdout
    assert "strict Pub/Sub proxy: started" in first.stdout
    state = read_state(local_dir)
    assert state is not None and state.emulator_pid and state.pgdata and state.proxy_pid
    assert state.pubsub_host != state.emulator_host  # clients go through the proxy

    second = runner.invoke(app, ["local", "up", "--stack", "dev"])
    assert second.exit_code == 0, second.output
    assert f"already running at {state.pubsub_host}" in second.stdout
    assert "PostgreSQL: already running" in second.stdout
    assert "0 created, 6 already there" in second.stdout
    assert "(0 migrations applied now)" in second.stdout
    assert read_state(local_dir) == state

    doctor = runner.invoke(app, ["dlq", "doctor", "--stack", "dev"],
                           env={"PUBSUB_EMULATOR_HOST": state.pubsub_host})  # fmt: skip
    assert doctor.exit_code == 0, doctor.output  # local mode's short backoff is not a problem
    assert "checked against local mode's 0.1s–1s" in doctor.stderr

    env = (local_dir / "local.env").read_text()
    assert f"PUBSUB_EMULATOR_HOST={state.pubsub_host}" in env and "DATABASE_URL=" in env
    assert f"CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=http://{state.pubsub_host}/" in env
    listed = httpx.get(f"http://{state.pubsub_host}/v1/projects/{state.project}/subscriptions")
    assert listed.status_code == 200  # REST clients reach the local stack at the same address
    assert f"projects/{state.project}/subscriptions/events-sub" in {
        s["name"] for s in listed.json()["subscriptions"]
    }
    status = runner.invoke(app, ["local", "status", "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)["running"] is True
    assert json.loads(status.stdout)["pubsub"]["strict_proxy"] is True

    down = runner.invoke(app, ["local", "down"])
    assert down.exit_code == 0
    assert "Pub/Sub emulator stopped" in down.stdout and "PostgreSQL stopped" in down.stdout
    assert "strict Pub/Sub proxy stopped" in down.stdout
    for pid in (state.emulator_pid, state.proxy_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert processes_using(local_dir) == []  # no JVM, no postgres left for this state dir
    assert runner.invoke(app, ["local", "status"]).exit_code == 1
    assert "nothing to stop" in runner.invoke(app, ["local", "down"]).stdout


def test_demo_processes_every_event_and_leaves_your_local_stack_alone(
    local_services: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With your own local stack running (and sourced, as the README says) holding dead letters,
    the demo runs on a stack of its own, leaves yours and its dead letters as they were, and
    leaves no process or temp dir behind. A second `local up` then still owns its PostgreSQL."""
    local_dir = local_services
    import tempfile

    from google.cloud import pubsub_v1

    assert runner.invoke(app, ["local", "up", "--stack", "dev"]).exit_code == 0
    state = read_state(local_dir)
    assert state is not None
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", state.pubsub_host)  # source .eventsctl/local.env
    monkeypatch.setenv("DATABASE_URL", state.database_url)
    dlq_topic = f"projects/{state.project}/topics/events-dlq"
    publisher = pubsub_v1.PublisherClient()
    for i in range(2):
        publisher.publish(dlq_topic, b"{}", mine=str(i)).result(timeout=30)
    temp_before = set(Path(tempfile.gettempdir()).glob("eventsctl-demo-*"))

    out = runner.invoke(app, ["demo", "--stack", "dev", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["ok"] is True
    assert result["events"] == result["published"] == result["processed"] == 300
    assert result["failing"] == result["dead_lettered"] == result["replayed"] == 120
    assert result["processed_after_replay"] == 120
    assert result["duplicate_effects"] == 0  # the consumer library's dedupe
    assert result["alert_fired"] is True and result["alert_threshold"] == 100
    assert set(Path(tempfile.gettempdir()).glob("eventsctl-demo-*")) == temp_before
    assert [p for p in processes_using(Path(tempfile.gettempdir())) if "eventsctl-demo" in
            " ".join(p.info["cmdline"] or [])] == []  # fmt: skip

    subscriber = pubsub_v1.SubscriberClient()
    mine = subscriber.pull(
        subscription=f"projects/{state.project}/subscriptions/events-dlq-sub",
        max_messages=10,
        timeout=10,
    ).received_messages
    assert sorted(m.message.attributes["mine"] for m in mine) == ["0", "1"]

    again = runner.invoke(app, ["local", "up", "--stack", "dev"])
    assert again.exit_code == 0, again.output
    assert "PostgreSQL: already running" in again.stdout  # ours, though DATABASE_URL is set
    assert "State: " in again.stdout and str(local_dir) in again.stdout
    down = runner.invoke(app, ["local", "down"])
    assert "PostgreSQL stopped" in down.stdout
    assert processes_using(local_dir) == []


def test_missing_gcloud_is_a_clear_error(local_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    out = runner.invoke(app, ["local", "up"])
    assert out.exit_code == 2
    assert out.stderr.startswith("error: gcloud is not installed")
    assert read_state(local_dir) is None


def test_missing_java_is_a_clear_error(
    local_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").symlink_to("/usr/bin/gcloud")
    monkeypatch.setenv("PATH", str(bin_dir))
    out = runner.invoke(app, ["local", "up"])
    assert out.exit_code == 2
    assert out.stderr.startswith("error: Java is not installed")


def test_taken_port_is_a_clear_error(local_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = runner.invoke(app, ["local", "up", "--pubsub-port", str(port)])
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there or "
        "choose another port"
    )
    assert read_state(local_dir) is None
    assert os.listdir(local_dir) == []  # nothing started, nothing written


def test_unreachable_database_url_is_one_line_and_starts_nothing(
    local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from events_infra.local.emulator import free_port

    def pubsub_processes() -> set[int]:
        return {p.pid for p in psutil.process_iter(["cmdline"])
                if "pubsub" in " ".join(p.info["cmdline"] or [])}  # fmt: skip

    before = pubsub_processes()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://x:y@127.0.0.1:{free_port()}/db")
    out = runner.invoke(app, ["local", "up", "--stack", "dev"])
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to PostgreSQL at 127")
    assert "unset DATABASE_URL" in lines[0]
    assert read_state(local_dir) is None
    assert pubsub_processes() <= before  # no emulator or proxy started and left behind
