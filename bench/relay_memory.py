"""The relay's peak memory draining large events, by claim budget (`--claim-mib`), through the
strict proxy: the relay is a real `eventsctl outbox relay` process, its RSS sampled every 20 ms.
The baseline in the same run is the budget set out of the way (`--claim-mib 100000`), i.e. the
relay bounded by row count only, as it was: 500 rows of 1 MB in one claim.

    python bench/relay_memory.py [--events 500] [--event-kb 1000] [--budgets 8,32,64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database, postgres_server, unsettled  # the benches' own PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
UNBOUNDED_MIB = 100_000


def prepare(count: int, size: int):
    def fill(conn: psycopg.Connection) -> None:
        from events_infra.outbox import Event, enqueue_many
        from events_infra.outbox.schema import migrate

        migrate(conn)
        blob = "x" * size
        for start in range(0, count, 50):
            events = [
                Event("doc.stored", "doc", uuid.uuid4(), {"n": n, "blob": blob})
                for n in range(start, min(count, start + 50))
            ]
            enqueue_many(conn, events)
            conn.commit()

    return fill


def one_run(server: str, pubsub: str, events: int, size: int, budget_mib: int) -> dict:
    from google.cloud import pubsub_v1

    project = f"bench-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{project}/topics/events"
    pubsub_v1.PublisherClient().create_topic(name=topic)  # no subscription: nothing is kept
    url = fresh_database(server, prepare(events, size))
    command = [
        sys.executable, "-m", "events_infra.cli.app", "outbox", "relay", "--database-url", url,
        "--topic-path", topic, "--claim-mib", str(budget_mib),
    ]  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PUBSUB_EMULATOR_HOST": pubsub},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    process = psutil.Process(child.pid)
    peak = 0
    last_check = 0.0
    try:
        while True:
            rss = process.memory_info().rss
            peak = max(peak, rss)
            now = time.monotonic()
            if now - last_check > 0.5:
                last_check = now
                if unsettled(url) == 0:
                    break
            if now - started > 600:
                raise TimeoutError("the relay did not drain in 10 minutes")
            time.sleep(0.02)
    finally:
        child.terminate()
        child.wait(30)
    return {"peak_mib": peak / 2**20, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--event-kb", type=int, default=1000)
    parser.add_argument("--budgets", default="8,32,64")
    args = parser.parse_args()
    from events_infra.local.strict_proxy import strict_pubsub

    size = args.event_kb * 1000
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{args.events} events of {args.event_kb} kB, one key each, drained by one relay")
    print(f"{'claim budget':>16} {'peak RSS MiB':>12} {'drain s':>8}")
    with postgres_server() as server, strict_pubsub(project="bench") as pubsub:
        for budget in [*budgets, UNBOUNDED_MIB]:
            run = one_run(server, pubsub, args.events, size, budget)
            label = f"{budget} MiB" if budget != UNBOUNDED_MIB else "rows only (500)"
            print(f"{label:>16} {run['peak_mib']:>12.0f} {run['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
