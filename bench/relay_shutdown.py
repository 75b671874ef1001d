"""How long the relay takes from SIGTERM to exit while a batch is in flight, and what it leaves
unsettled, at several Publish latencies (the strict proxy holds every Publish), with the
container's publish deadline (7 s, components.outbox_relay) beside the CLI default (20 s) in the
same run. Cloud Run kills an instance 10 s after SIGTERM: what is still leased then is published
again after its lease (a duplicate, deduped by event_id), never lost.

    python bench/relay_shutdown.py [--events 200] [--latencies 0.05,2,6,12]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database, postgres_server, unsettled  # the benches' own PostgreSQL

ROOT = Path(__file__).resolve().parent.parent


def prepare(count: int):
    def fill(conn: psycopg.Connection) -> None:
        from events_infra.outbox import Event, enqueue_many
        from events_infra.outbox.schema import migrate

        migrate(conn)
        events = [Event("trade.created", "trade", uuid.uuid4(), {"n": n}) for n in range(count)]
        enqueue_many(conn, events)

    return fill


def one_run(server: str, pubsub: str, events: int, latency: float, deadline: float) -> dict:
    from google.cloud import pubsub_v1

    from events_infra.local.proxy.control import ProxyControl

    project = f"bench-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{project}/topics/events"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    url = fresh_database(server, prepare(events))
    control = ProxyControl(pubsub)
    control.reset()
    control.delay("Publish", latency, count=100_000)
    command = [
        sys.executable, "-m", "events_infra.cli.app", "outbox", "relay", "--database-url", url,
        "--topic-path", topic, "--publish-timeout", str(deadline), "--batch-size", "500",
    ]  # fmt: skip
    child = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PUBSUB_EMULATOR_HOST": pubsub},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while not control.stats()["stats"].get("delays_injected.Publish"):  # a batch on the wire
        time.sleep(0.01)
    time.sleep(min(latency / 2, 0.5))
    signalled = time.monotonic()
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
    seconds = time.monotonic() - signalled
    control.reset()
    left = unsettled(url)
    return {"seconds": seconds, "left": left, "code": child.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--latencies", default="0.05,2,6,12")
    args = parser.parse_args()
    from events_infra.local.strict_proxy import strict_pubsub

    latencies = [float(x) for x in args.latencies.split(",")]
    print(f"{args.events} committed events on {args.events} keys; SIGTERM with a batch in flight")
    print(f"{'publish latency':>15} {'deadline':>8} {'SIGTERM->exit s':>15} {'unsettled':>9}  "
          "within Cloud Run's 10 s")  # fmt: skip
    with postgres_server() as server, strict_pubsub(project="bench") as pubsub:
        for latency in latencies:
            for deadline in (7.0, 20.0):  # the container's, the CLI default (the baseline)
                run = one_run(server, pubsub, args.events, latency, deadline)
                fits = "yes" if run["seconds"] <= 10 else "NO (SIGKILL: republished after lease)"
                print(f"{latency:>15.2f} {deadline:>8.0f} {run['seconds']:>15.2f} "
                      f"{run['left']:>9}  {fits}")  # fmt: skip


if __name__ == "__main__":
    main()
