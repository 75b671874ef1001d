"""Outbox relay throughput and latency through the strict Pub/Sub proxy, with baselines.

Everything publishes through the strict proxy in front of the real emulator (started here unless
PUBSUB_EMULATOR_HOST names one), so every figure is for requests production would accept. Each
run gets a fresh database on one PostgreSQL (embedded unless DATABASE_URL is set) and a fresh
topic. In one run:

  raw ceiling     a plain client, no database: one single-key Publish request per event, the
                  same concurrency as the relay (--concurrency), 1 event per key
  relay 1/key     20,000 committed events over 20,000 keys, drained by one relay
  poller 1/key    the audit's design (poll every second, publish through the client library's
                  ordered publisher) on the same backlog
  relay 10/key    20,000 events over 2,000 keys (interleaved, as concurrent writers leave them)
  latency         one event per transaction at a steady rate; commit -> a streaming-pull
                  subscriber's receive, idle relay; p50/p99, relay and poller
  burst           a 10-event transaction on one key; commit -> the 10th received; p50/max
  delivery floor  no database: one Publish request (1 message, then 10 of one key) -> the same
                  subscriber's receive; what the emulator itself takes to deliver

Goals (issue 11): relay 1/key >= 50 % of the raw ceiling and >= 3x the poller; relay 10/key
>= 3,000 events/s; latency p50 < 50 ms, p99 < 250 ms; burst < 200 ms.

    python bench/outbox_relay.py [--events 20000] [--rate 100] [--seconds 10] [--bursts 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from google.cloud import pubsub_v1  # noqa: E402

from bench.databases import fresh_database as new_database  # noqa: E402
from bench.databases import postgres_server  # noqa: E402
from events_infra.local.proxy.control import ProxyControl  # noqa: E402
from events_infra.local.strict_proxy import strict_pubsub  # noqa: E402
from events_infra.outbox import Event, enqueue_many  # noqa: E402
from events_infra.outbox.relay import Relay, RelayConfig, make_publisher  # noqa: E402
from events_infra.outbox.schema import migrate  # noqa: E402

CONCURRENCY = 32


def fresh_database(server_url: str) -> str:
    return new_database(server_url, migrate)


def fresh_topic(with_subscription: bool = False) -> tuple[str, str]:
    project = f"bench-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{project}/topics/events"
    subscription = f"projects/{project}/subscriptions/receiver"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    if with_subscription:
        pubsub_v1.SubscriberClient().create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
    return topic, subscription


class OurRelay:
    def __init__(self, url: str, topic: str) -> None:
        config = RelayConfig(url, topic, batch_size=500, per_key=100)  # defaults otherwise
        self.relay = Relay(config, make_publisher())
        self.thread = threading.Thread(target=self.relay.run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.relay.stop()
        self.thread.join(30)


class OncePerSecondPoller:
    """The audit's design: a worker that polls the outbox every second and publishes what it
    finds through the client library's ordered publisher (one request per key, as production
    requires), then marks the rows published."""

    def __init__(self, url: str, topic: str) -> None:
        self.url, self.topic = url, topic
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)

    def _run(self) -> None:
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        publisher = pubsub_v1.PublisherClient(publisher_options=options)
        with psycopg.connect(self.url) as conn:
            while not self.stopping.is_set():
                rows = conn.execute(
                    "SELECT id, payload, ordering_key FROM event_outbox WHERE NOT published "
                    "ORDER BY seq LIMIT 1000"
                ).fetchall()
                futures = [
                    publisher.publish(
                        self.topic, json.dumps(p).encode(), ordering_key=k, event_id=str(i)
                    )
                    for i, p, k in rows
                ]
                for future in futures:
                    future.result()
                conn.execute(
                    "UPDATE event_outbox SET published = true, published_at = now() "
                    "WHERE id = ANY(%s)",
                    ([r[0] for r in rows],),
                )
                conn.commit()
                if len(rows) < 1000:
                    self.stopping.wait(1.0)


def backlog(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM event_outbox WHERE NOT published").fetchone()[0]


def write_backlog(url: str, events: int, keys: int) -> None:
    """`events` committed events over `keys` aggregates, interleaved, 500 per transaction."""
    with psycopg.connect(url) as conn:
        for start in range(0, events, 500):
            batch = [
                Event("trade.created", "trade", uuid.UUID(int=i % keys + 1), {"i": i})
                for i in range(start, min(events, start + 500))
            ]
            enqueue_many(conn, batch)
            conn.commit()


def throughput(make: Callable[[str, str], Any], server: str, events: int, keys: int) -> float:
    url, (topic, _) = fresh_database(server), fresh_topic()
    write_backlog(url, events, keys)
    relay = make(url, topic)
    started = time.perf_counter()
    relay.start()
    while backlog(url) and time.perf_counter() - started < 900:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    relay.stop()
    return events / seconds


def raw_ceiling(events: int) -> float:
    """Single-key Publish requests (one event each, its own key), CONCURRENCY at a time."""
    from google.pubsub_v1.types import PubsubMessage

    topic, _ = fresh_topic()
    api = make_publisher()
    data = json.dumps({"i": 0}).encode()

    def send(i: int) -> None:
        attributes = {"event_id": str(uuid.uuid4()), "event_type": "trade.created",
                      "event_version": "1", "aggregate_type": "trade",
                      "aggregate_id": str(uuid.UUID(int=i + 1))}  # fmt: skip
        message = PubsubMessage(data=data, attributes=attributes, ordering_key=f"trade:{i}")
        api.publish(topic=topic, messages=[message], timeout=30)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, range(events)))
    return events / (time.perf_counter() - started)


class Receiver:
    """A streaming-pull subscriber recording when each event_id arrived (wall clock)."""

    def __init__(self, subscription: str) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = pubsub_v1.SubscriberClient()
        self.future = self.client.subscribe(subscription, self._on_message)

    def _on_message(self, message: Any) -> None:
        now = time.time()
        message.ack()
        with self.lock:
            self.arrived.setdefault(message.attributes["event_id"], now)

    def wait_for(self, ids: list[str], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if all(i in self.arrived for i in ids):
                    return
            time.sleep(0.005)

    def stop(self) -> None:
        self.future.cancel()
        self.client.close()


def latency(
    make: Callable[[str, str], Any], server: str, rate: float, seconds: float, bursts: int
) -> tuple[list[float], list[float]]:
    """Per-event commit -> receive (ms) at a steady rate, then per-burst commit -> 10th
    received (ms) for `bursts` 10-event transactions on one key."""
    url, (topic, subscription) = fresh_database(server), fresh_topic(with_subscription=True)
    relay, receiver = make(url, topic), Receiver(subscription)
    relay.start()
    time.sleep(1.0)  # idle, waiting for work
    committed: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        next_at = time.perf_counter()
        end = next_at + seconds
        i = 0
        while time.perf_counter() < end:
            [event_id] = enqueue_many(conn, [Event("trade.created", "trade", uuid.uuid4(), {})])
            conn.commit()
            committed[str(event_id)] = time.time()
            i += 1
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
        receiver.wait_for(list(committed))
        burst_ms = []
        for _ in range(bursts):
            time.sleep(0.3)  # idle again
            aggregate = uuid.uuid4()
            ids = enqueue_many(
                conn, [Event("trade.updated", "trade", aggregate, {"n": n}) for n in range(10)]
            )
            conn.commit()
            at = time.time()
            receiver.wait_for([str(x) for x in ids])
            with receiver.lock:
                burst_ms.append((max(receiver.arrived[str(x)] for x in ids) - at) * 1000)
    relay.stop()
    receiver.stop()
    steady = sorted((receiver.arrived[i] - t) * 1000 for i, t in committed.items())
    return steady, burst_ms


def delivery_floor(count: int, rounds: int) -> list[float]:
    """Publish `count` messages of one key in one request, `rounds` times; ms until the last
    one is received (the emulator and client's own delivery time, no relay, no database)."""
    from google.pubsub_v1.types import PubsubMessage

    topic, subscription = fresh_topic(with_subscription=True)
    api, receiver = make_publisher(), Receiver(subscription)
    time.sleep(1.0)
    out = []
    for _ in range(rounds):
        ids = [str(uuid.uuid4()) for _ in range(count)]
        messages = [PubsubMessage(data=b"{}", attributes={"event_id": i}, ordering_key="k")
                    for i in ids]  # fmt: skip
        at = time.time()
        api.publish(topic=topic, messages=messages, timeout=30)
        receiver.wait_for(ids)
        with receiver.lock:
            out.append((max(receiver.arrived[i] for i in ids) - at) * 1000)
        time.sleep(0.3)
    receiver.stop()
    return out


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s for latency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()

    with postgres_server() as server_url, strict_pubsub(project="bench") as address:
        control = ProxyControl(address)
        control.reset()
        n = args.events
        raw = raw_ceiling(n)
        relay_1 = throughput(OurRelay, server_url, n, n)
        poller_1 = throughput(OncePerSecondPoller, server_url, n, n)
        relay_10 = throughput(OurRelay, server_url, n, n // 10)
        steady, bursts = latency(OurRelay, server_url, args.rate, args.seconds, args.bursts)
        poller_steady, _ = latency(OncePerSecondPoller, server_url, args.rate, 5.0, 0)
        floor_1 = delivery_floor(1, 50)
        floor_10 = delivery_floor(10, args.bursts)
        stats = control.stats()["stats"]

    print(f"through the strict proxy; {n} events; raw ceiling at concurrency {CONCURRENCY}, "
          "relay at its defaults")  # fmt: skip
    print(f"{'run':<16} {'events/s':>9}")
    for name, rate in (("raw ceiling", raw), ("relay 1/key", relay_1),
                       ("poller 1/key", poller_1), ("relay 10/key", relay_10)):  # fmt: skip
        print(f"{name:<16} {rate:>9.0f}")
    p50, p99 = percentile(steady, 50), percentile(steady, 99)
    q50, q99 = percentile(poller_steady, 50), percentile(poller_steady, 99)
    print(f"latency relay    p50 {p50:.1f} ms  p99 {p99:.1f} ms  (n={len(steady)})")
    print(f"latency poller   p50 {q50:.1f} ms  p99 {q99:.1f} ms  (n={len(poller_steady)})")
    burst_50, burst_max = statistics.median(bursts), max(bursts)
    print(f"10-event burst   p50 {burst_50:.1f} ms  max {burst_max:.1f} ms  (n={len(bursts)})")
    one, ten = statistics.median(floor_1), statistics.median(floor_10)
    print(f"delivery floor   1 message p50 {one:.1f} ms; 10 in one request p50 {ten:.1f} ms, "
          f"max {max(floor_10):.1f} ms")  # fmt: skip
    print(f"proxy: {stats.get('publish_refused', 0)} requests refused, "
          f"{stats.get('publish_requests', 0)} accepted")  # fmt: skip

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(
        f"goals: relay/raw {relay_1 / raw:.0%} >= 50% ({verdict(relay_1 >= raw / 2)}); "
        f"relay/poller {relay_1 / poller_1:.1f}x >= 3x ({verdict(relay_1 >= 3 * poller_1)}); "
        f"10/key {relay_10:.0f} >= 3000/s ({verdict(relay_10 >= 3000)}); "
        f"p50 < 50 ms ({verdict(p50 < 50)}); p99 < 250 ms ({verdict(p99 < 250)}); "
        f"burst < 200 ms ({verdict(burst_max < 200)})"
    )


if __name__ == "__main__":
    main()
