"""What a test (or `eventsctl local`) can change in a running strict proxy, and the client for it.

The proxy serves one extra gRPC method, `/events_infra.StrictProxy/Control`, taking and returning
JSON, so a proxy in another process (local mode, a child process in a test) can be told to fail
calls or to answer pulls partially, and asked what it did.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CONTROL_METHOD = "/events_infra.StrictProxy/Control"

FAULT_CODES = (
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "FAILED_PRECONDITION", "INTERNAL", "RESOURCE_EXHAUSTED",
    "ABORTED", "PERMISSION_DENIED", "NOT_FOUND", "INVALID_ARGUMENT", "UNKNOWN", "CANCELLED",
    "UNAUTHENTICATED",
)  # fmt: skip


@dataclass
class Fault:
    code: str
    remaining: int
    details: str


@dataclass
class ProxyState:
    """Faults to inject, the partial-pull setting and counters; shared by the proxy's threads."""

    partial_fraction: float = 0.0
    seed: int = 0
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    delays: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Method -> [[seconds, calls left, ordering key or None], ...]: slow answers, for deadline
    tests and for benches that model production's latency; an entry with an ordering key holds
    only Publish requests of that key (one slow key among many)."""
    stats: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    def fail(self, method: str, code: str, count: int = 1, details: str = "") -> None:
        """Make the next `count` calls of `method` (e.g. "Publish") fail with `code`."""
        code = code.upper()
        if code not in FAULT_CODES:
            raise ValueError(f"unknown status code {code!r}; use one of {', '.join(FAULT_CODES)}")
        if count < 1:
            raise ValueError("count must be 1 or more")
        with self.lock:
            text = details or f"injected by the strict proxy: {code}"
            self.faults.setdefault(method, []).append(Fault(code, count, text))

    def take_fault(self, method: str) -> Fault | None:
        """The fault this call of `method` gets, if one is queued (using one of its count)."""
        with self.lock:
            queue = self.faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            self.stats[f"faults_injected.{method}"] += 1
            return fault

    def delay(
        self, method: str, seconds: float, count: int = 1, ordering_key: str | None = None
    ) -> None:
        """Hold the next `count` calls of `method` for `seconds` before forwarding them; with
        `ordering_key`, only Publish requests of that key (others pass at once)."""
        if seconds <= 0 or count < 1:
            raise ValueError("seconds must be positive and count 1 or more")
        if ordering_key is not None and method != "Publish":
            raise ValueError("ordering_key applies to Publish only")
        with self.lock:
            self.delays.setdefault(method, []).append([seconds, count, ordering_key])

    def keyed_delays(self, method: str) -> bool:
        """True when a delay waits for requests of one ordering key (the proxy then reads the
        request's key; otherwise it does not parse the request for it)."""
        with self.lock:
            return any(entry[2] is not None for entry in self.delays.get(method, ()))

    def take_delay(self, method: str, ordering_key: str | None = None) -> float:
        """The delay this call gets: the first entry for any key, or for this call's key."""
        with self.lock:
            queue = self.delays.get(method)
            if not queue:
                return 0.0
            index = next(
                (i for i, e in enumerate(queue) if e[2] is None or e[2] == ordering_key), None
            )
            if index is None:
                return 0.0
            entry = queue[index]
            entry[1] -= 1
            if entry[1] <= 0:
                queue.pop(index)
            self.stats[f"delays_injected.{method}"] += 1
            if entry[2] is not None:
                self.stats[f"delays_injected.{method}.key"] += 1
            return entry[0]

    def set_partial(self, fraction: float, seed: int) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        with self.lock:
            self.partial_fraction, self.seed = fraction, seed
            self.rng.seed(seed)

    def partial_size(self, wanted: int) -> int | None:
        """None for a full answer, else how many messages (0..wanted-1) this pull may return:
        a third of partial answers are empty, the rest a random smaller number."""
        with self.lock:
            if self.partial_fraction <= 0 or self.rng.random() >= self.partial_fraction:
                return None
            self.stats["partial_pulls"] += 1
            if wanted <= 1 or self.rng.random() < 1 / 3:
                return 0
            return self.rng.randrange(1, wanted)

    def split_point(self, size: int) -> int | None:
        """Where to split a StreamingPull response in two (None: deliver it whole)."""
        if size < 2:
            return None
        with self.lock:
            if self.partial_fraction <= 0 or self.rng.random() >= self.partial_fraction:
                return None
            self.stats["partial_pulls"] += 1
            return self.rng.randrange(1, size)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def entered(self, name: str) -> None:
        """A call of `name` started: `<name>_in_flight_max` keeps the most at once."""
        with self.lock:
            self.in_flight[name] += 1
            key = f"{name}_in_flight_max"
            self.stats[key] = max(self.stats[key], self.in_flight[name])

    def left(self, name: str) -> None:
        with self.lock:
            self.in_flight[name] -= 1

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.delays.clear()
            self.stats.clear()
            self.partial_fraction = 0.0

    def handle(self, command: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        """Run one control command (the JSON body of a Control call)."""
        op = command.get("op")
        if op == "fail":
            self.fail(
                command["method"], command["code"], int(command.get("count", 1)),
                str(command.get("details", "")),
            )  # fmt: skip
        elif op == "delay":
            self.delay(
                command["method"], float(command["seconds"]), int(command.get("count", 1)),
                command.get("ordering_key"),
            )  # fmt: skip
        elif op == "partial":
            self.set_partial(float(command["fraction"]), int(command.get("seed", 0)))
        elif op == "reset":
            self.reset()
        elif op != "stats":
            raise ValueError(f"unknown control op {op!r}")
        with self.lock:
            return {
                **info,
                "partial_fraction": self.partial_fraction,
                "pending_faults": {
                    m: sum(f.remaining for f in q) for m, q in self.faults.items() if q
                },
                "stats": dict(self.stats),
            }


class ProxyControl:
    """Client for a strict proxy's control method."""

    def __init__(self, address: str) -> None:
        import grpc

        self.address = address
        self._channel = grpc.insecure_channel(address)
        self._call = self._channel.unary_unary(CONTROL_METHOD)

    def _send(self, command: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(self._call(json.dumps(command).encode(), timeout=timeout))

    def fail(self, method: str, code: str, count: int = 1, details: str = "") -> dict[str, Any]:
        """The next `count` calls of `method` (short name, e.g. "Publish") fail with `code`."""
        return self._send(
            {"op": "fail", "method": method, "code": code, "count": count, "details": details}
        )

    def delay(
        self, method: str, seconds: float, count: int = 1, ordering_key: str | None = None
    ) -> dict[str, Any]:
        """The next `count` calls of `method` are held `seconds` before being forwarded; with
        `ordering_key`, only Publish requests of that key."""
        command = {"op": "delay", "method": method, "seconds": seconds, "count": count}
        if ordering_key is not None:
            command["ordering_key"] = ordering_key
        return self._send(command)

    def partial_pulls(self, fraction: float, seed: int = 0) -> dict[str, Any]:
        """That share of pull responses returns fewer messages than available (or none)."""
        return self._send({"op": "partial", "fraction": fraction, "seed": seed})

    def reset(self) -> dict[str, Any]:
        """No faults pending, full pulls, counters at zero."""
        return self._send({"op": "reset"})

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        return self._send({"op": "stats"}, timeout)

    def is_proxy(self, timeout: float = 2.0) -> bool:
        """True when a strict proxy answers at this address."""
        try:
            self.stats(timeout)
        except Exception:
            return False
        return True

    def close(self) -> None:
        self._channel.close()
