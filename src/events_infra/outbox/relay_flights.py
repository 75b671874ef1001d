"""What a relay has claimed and not yet settled: one run of rows per ordering key, each published
on a thread of its own while the relay's loop keeps claiming other keys.

Production Pub/Sub answers a Publish in tens of milliseconds, with spikes in the hundreds, so a
relay's rate is the requests it keeps in flight divided by that latency. There is no batch-wide
barrier here: every run is settled as soon as its own requests are answered, so a key whose
request is slow (or retrying) holds back only itself.

Bounds: at most `wire` runs publishing at once (each run is one key; its requests go one after
the other, so this is the number of requests on the wire), at most `max_keys` runs held (those
plus up to as many waiting for a thread: claims stay large, which keeps their cost per row low,
yet a relay never hoards keys other relays could be publishing) and at most `max_bytes` of
events held (the budget the relay's memory is sized from).

One key has at most one run in flight in the whole fleet: the claim only starts a run at a
key's head, the oldest unpublished row, and only when that head is not leased; the relay renews
the leases of what it holds (`queries.RENEW_SQL`) so none runs out while a request may land.

Why threads and not asyncio: a run is `KeyPublisher.publish_key`, the per-key logic every
publishing path shares (request chunks within Pub/Sub's limits, a refused request narrowed to
the bad row, nothing of a key sent after a failure, a retry deadline on every call, no new
request once stopping). A blocked thread waits inside gRPC's C core with the GIL released, so a
few hundred of them cost stack memory (mostly untouched), not CPU; bench/relay_latency.py
measures the CPU per event against the official client's ordered publisher in the same run.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from events_infra.pubsub.key_publisher import KeyPublisher
from events_infra.pubsub.publish_requests import Outgoing, by_key


@dataclass
class Run:
    """Consecutive claimed rows of one ordering key, published in `seq` order."""

    key: str
    rows: list[dict[str, Any]]
    messages: list[Outgoing]
    outcomes: dict[Any, Any] = field(default_factory=dict)
    """Row id -> Pub/Sub message id, or the exception the row failed with. Rows the relay
    refused before sending (never publishable as they are) are filled in at once."""
    size: int = 0
    """Bytes it holds (`row_bytes`), counted against the in-flight budget."""


def row_bytes(row: dict[str, Any]) -> int:
    """What a claimed row holds in memory, roughly: its JSON text."""
    return len(row["payload"] or "") + len(row["attributes"] or "")


def runs_of(rows: list[dict[str, Any]]) -> list[Run]:
    """Claimed rows as runs, one per ordering key, in the order of their first row."""
    groups, refused = by_key(rows)
    runs: dict[str, Run] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        key = row["ordering_key"]
        if key not in runs:
            runs[key] = Run(key, [], groups.get(key, []))
        runs[key].rows.append(row)
        if row["id"] in refused:
            runs[key].outcomes[row["id"]] = refused[row["id"]]
    return list(runs.values())


class Flights:
    """Runs in flight, the room left for more, and the ones that are done."""

    def __init__(self, publisher: KeyPublisher, wire: int, max_keys: int, max_bytes: int) -> None:
        self.publisher = publisher
        self.wire = wire
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._held: dict[str, Run] = {}
        self._bytes = 0
        self._done: queue.SimpleQueue[Run] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=wire, thread_name_prefix="publish")

    def __len__(self) -> int:
        return len(self._held)

    def holds(self, key: str) -> bool:
        return key in self._held

    def keys_free(self) -> int:
        return self.max_keys - len(self._held)

    def bytes_free(self) -> int:
        return self.max_bytes - self._bytes

    def held_ids(self) -> list[Any]:
        return [row["id"] for run in self._held.values() for row in run.rows]

    def start(self, run: Run) -> None:
        """Publish `run` on a thread of the pool; it shows up in `finished` when answered."""
        run.size = sum(row_bytes(row) for row in run.rows)
        self._held[run.key] = run
        self._bytes += run.size
        self._pool.submit(self._publish, run)

    def _publish(self, run: Run) -> None:
        try:
            if run.messages:
                run.outcomes.update(self.publisher.publish_key(run.messages))
        except Exception as err:  # never lose a run: whatever went wrong is its rows' failure
            for row in run.rows:
                run.outcomes.setdefault(row["id"], err)
        finally:
            self._done.put(run)

    def finished(self, wait: float = 0.0) -> list[Run]:
        """Runs answered so far (waiting up to `wait` seconds for the first), no longer held."""
        done: list[Run] = []
        try:
            done.append(self._done.get(timeout=wait) if wait > 0 else self._done.get_nowait())
            while True:
                done.append(self._done.get_nowait())
        except queue.Empty:
            pass
        for run in done:
            self._held.pop(run.key, None)
            self._bytes -= run.size
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True)
