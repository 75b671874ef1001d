"""The relay at production latency: the strict proxy holds every Publish for a fixed time (its
`delay` control), as production's network does, with google-cloud-pubsub's own ordered
publisher sending the same messages as the baseline in the same run.

Every run: a fresh database and a topic without subscriptions (the emulator keeps nothing), the
backlog committed in one transaction, relays already running and idle (`eventsctl outbox relay`
child processes at their defaults, so two relays are two processes, as two Cloud Run instances
are), timed from the commit until every row is settled. CPU per event is the relay processes'
own user+system time over the drain (/proc/PID/stat), and the bench process's own for the
client. Rows, per publish latency:

  relay 1/key     N events on N keys, one relay
  2 relays 1/key  the same backlog, two relays
  client 1/key    the official client (`enable_message_ordering`) publishing the same N messages
  relay 10/key    N events on N/10 keys, interleaved, one relay
  client 10/key   the official client on the same
  slow key        N events on N keys plus one key whose one Publish is held 5 s: the other
                  keys' rate over the hold, against relay 1/key
  1 / 2 relays, few keys   at the highest latency, --scale-events on as many keys with
                  --scale-concurrency keys in flight per relay: where the network, not the
                  machine, is the limit, as it is for relays on separate Cloud Run instances

Goals (issue 24): at 50 and 200 ms relay 1/key >= 90 % of its ~0 ms rate and >= 1.0x the client;
the slow key's others >= 80 % of normal; 2 relays at 200 ms >= 1.7x one.

    python bench/relay_latency.py [--events 6000] [--publish-latency 0,0.05,0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from google.cloud import pubsub_v1  # noqa: E402

from bench.databases import fresh_database, postgres_server  # noqa: E402
from events_infra.local.proxy.control import ProxyControl  # noqa: E402
from events_infra.local.strict_proxy import strict_pubsub  # noqa: E402
from events_infra.outbox import Event, enqueue_many  # noqa: E402
from events_infra.outbox.schema import migrate  # noqa: E402

EVERY_CALL = 10_000_000
SLOW_HOLD_S = 5.0
TICKS = os.sysconf("SC_CLK_TCK")


def fresh_topic() -> str:
    topic = f"projects/bench-{uuid.uuid4().hex[:10]}/topics/events"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    return topic


def events_for(count: int, keys: int) -> list[Event]:
    """`count` events over `keys` aggregates, interleaved as concurrent writers leave them."""
    return [
        Event("trade.created", "trade", uuid.UUID(int=i % keys + 1), {"i": i}) for i in range(count)
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class RelayChildren:
    """`relays` relay processes on `url`, started and idle (LISTENing) before `__enter__` ends."""

    def __init__(self, url: str, topic: str, relays: int, *flags: str) -> None:
        command = [
            sys.executable, "-m", "events_infra.cli.app", "outbox", "relay",
            "--database-url", url, "--topic-path", topic, "--health-port", "0", *flags,
        ]  # fmt: skip
        self.children = [
            subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            for _ in range(relays)
        ]

    def __enter__(self) -> RelayChildren:
        for child in self.children:  # the health line comes just before the loop starts
            for line in child.stderr:
                if '"health_endpoint"' in line:
                    break
            # read the rest as it comes: a full pipe would stall the relay's log lines
            threading.Thread(target=child.stderr.read, daemon=True).start()
        time.sleep(1.0)  # connected and asleep on LISTEN
        return self

    def cpu(self) -> float:
        return sum(cpu_seconds(c.pid) for c in self.children)

    def __exit__(self, *exc: Any) -> None:
        for child in self.children:
            child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


def settled(url: str, keys: str | None = None) -> int:
    sql = "SELECT count(*) FROM event_outbox WHERE published"
    with psycopg.connect(url) as conn:
        if keys is None:
            return conn.execute(sql).fetchone()[0]
        return conn.execute(sql + " AND ordering_key <> %s", (keys,)).fetchone()[0]


def hold(latency: float, slow_key: str | None = None) -> None:
    """Every Publish held `latency` s from now on; first, `slow_key`'s next one SLOW_HOLD_S (the
    proxy gives a request the first delay that matches it)."""
    control = ProxyControl(os.environ["PUBSUB_EMULATOR_HOST"])
    control.reset()
    if slow_key:
        control.delay("Publish", SLOW_HOLD_S, count=1, ordering_key=slow_key)
    if latency > 0:
        control.delay("Publish", latency, count=EVERY_CALL)
    control.close()


def relay_run(
    server: str,
    events: list[Event],
    relays: int,
    latency: float,
    slow_key: bool = False,
    flags: tuple[str, ...] = (),
) -> dict:
    """Drain `events` (committed at once) with `relays` relays; events/s and CPU µs/event.
    With `slow_key`, one more key's Publish is held SLOW_HOLD_S: `rate` is then the other keys'
    rate over the hold (or until they were all settled, if sooner)."""
    url, topic = fresh_database(server, migrate), fresh_topic()
    slow = "trade:slow"
    hold(latency, slow if slow_key else None)
    during = None
    with RelayChildren(url, topic, relays, *flags) as children, psycopg.connect(url) as conn:
        if slow_key:
            enqueue_many(
                conn, [Event("trade.created", "trade", uuid.uuid4(), {}, ordering_key=slow)]
            )
        enqueue_many(conn, events)
        cpu_before = children.cpu()
        conn.commit()
        started = time.perf_counter()
        while (done := settled(url, slow if slow_key else None)) < len(events):
            time.sleep(0.02)
            elapsed = time.perf_counter() - started
            if slow_key and during is None and elapsed >= SLOW_HOLD_S:
                during = done / elapsed  # the other keys' rate while the slow one was held
            if elapsed > 900:
                raise SystemExit("bench: the relay did not drain in 15 minutes")
        seconds = time.perf_counter() - started
        cpu = children.cpu() - cpu_before
    rate = during if during is not None else len(events) / seconds
    return {"rate": rate, "cpu_us": cpu / len(events) * 1e6}


def client_run(events: list[Event], latency: float) -> dict:
    """The official client's ordered publisher on the same messages (attributes, payload)."""
    topic = fresh_topic()
    hold(latency)
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    publisher = pubsub_v1.PublisherClient(publisher_options=options)
    messages = [
        (json.dumps(e.payload, separators=(",", ":")).encode(), f"trade:{e.aggregate_id}",
         {"event_id": str(uuid.uuid4()), "event_type": e.event_type, "event_version": "1",
          "aggregate_type": e.aggregate_type, "aggregate_id": str(e.aggregate_id)})
        for e in events
    ]  # fmt: skip
    cpu_before, started = time.process_time(), time.perf_counter()
    futures = [publisher.publish(topic, data, ordering_key=key, **attrs)
               for data, key, attrs in messages]  # fmt: skip
    for future in futures:
        future.result(timeout=900)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    publisher.stop()
    return {"rate": len(events) / seconds, "cpu_us": cpu / len(events) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument(
        "--publish-latency",
        default="0,0.05,0.2",
        help="seconds the proxy holds every Publish, comma-separated",
    )
    parser.add_argument(
        "--scale-concurrency",
        type=int,
        default=16,
        help="keys in flight per relay for the network-bound scale-out run",
    )
    parser.add_argument("--scale-events", type=int, default=2000)  # fmt: skip
    args = parser.parse_args()
    latencies = [float(x) for x in args.publish_latency.split(",")]
    n = args.events
    one, ten = events_for(n, n), events_for(n, n // 10)
    table: dict[float, dict[str, dict]] = {}
    latencies.sort()
    with postgres_server() as server, strict_pubsub(project="bench"):
        for latency in latencies:
            row = table[latency] = {}
            row["relay 1/key"] = relay_run(server, one, 1, latency)
            row["2 relays 1/key"] = relay_run(server, one, 2, latency)
            row["client 1/key"] = client_run(one, latency)
            row["relay 10/key"] = relay_run(server, ten, 1, latency)
            row["client 10/key"] = client_run(ten, latency)
            row["slow key"] = relay_run(server, one, 1, latency, slow_key=True)
            if latency == max(latencies):  # scale-out where the network, not the CPU, limits
                few, flags = events_for(args.scale_events, args.scale_events), (
                    "--publish-concurrency", str(args.scale_concurrency))  # fmt: skip
                row["1 relay, few keys"] = relay_run(server, few, 1, latency, flags=flags)
                row["2 relays, few keys"] = relay_run(server, few, 2, latency, flags=flags)
            print(f"latency {latency * 1000:.0f} ms: " + ", ".join(
                f"{name} {r['rate']:.0f}/s" for name, r in row.items()), flush=True)  # fmt: skip
        hold(0.0)

    print(f"\n{n} events through the strict proxy; relays at their defaults; events/s "
          "(CPU µs per event)")  # fmt: skip
    names = list(next(iter(table.values())))
    print(f"{'Publish latency':<16}" + "".join(f"{name:>20}" for name in names))
    for latency, row in table.items():
        cells = "".join(f"{row[n]['rate']:>11.0f} ({row[n]['cpu_us']:>4.0f} µs)" for n in names)
        print(f"{f'{latency * 1000:.0f} ms':<16}{cells}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    base = table[min(table)]["relay 1/key"]["rate"]
    print("\ngoals:")
    for latency, row in table.items():
        relay, client = row["relay 1/key"]["rate"], row["client 1/key"]["rate"]
        slow = row["slow key"]
        two = row["2 relays 1/key"]["rate"]
        ms = f"{latency * 1000:.0f} ms"
        if latency > 0:
            print(f"  {ms}: relay 1/key {relay / base:.0%} of its ~0 ms rate >= 90 % "
                  f"({verdict(relay >= 0.9 * base)}); {relay / client:.2f}x the client >= 1.0x "
                  f"({verdict(relay >= client)})")  # fmt: skip
        print(
            f"  {ms}: other keys during a 5 s hold of one {slow['rate'] / relay:.0%} of normal "
            f">= 80 % ({verdict(slow['rate'] >= 0.8 * relay)}); 2 relays {two / relay:.2f}x "
            f"one (CPU-bound here)"
        )
        if "2 relays, few keys" in row:
            few1, few2 = row["1 relay, few keys"]["rate"], row["2 relays, few keys"]["rate"]
            print(
                f"  {ms}, {args.scale_concurrency} keys in flight per relay (network-bound): "
                f"2 relays {few2 / few1:.2f}x one >= 1.7x ({verdict(few2 >= 1.7 * few1)})"
            )


if __name__ == "__main__":
    main()
