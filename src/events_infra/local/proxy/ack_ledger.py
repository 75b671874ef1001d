"""Ack deadlines as production keeps them: an ack id is good until its deadline passes.

Pub/Sub gives a delivered message an ack deadline (the subscription's, or the stream's); a
ModifyAckDeadline moves it (0 gives the message back at once). "If the ack deadline expires, the
message is redelivered" and an acknowledgement sent after that is dropped without error on a
subscription without exactly-once delivery (Subscriber API reference, `Acknowledge` and
`ModifyAckDeadline`; https://cloud.google.com/pubsub/docs/lease-management). The emulator accepts
a late ack and deletes the message, which hides tools that hold messages past their deadline.
The proxy records each delivered ack id's deadline here and forwards only acks and deadline
changes of ack ids still in time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

KEEP_EXPIRED_S = 3600.0
"""How long an expired ack id is remembered (so a late ack is recognised as late)."""


class AckLedger:
    """Ack id -> monotonic deadline. Used from the proxy's event loop only."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._deadlines: dict[str, float] = {}
        self._clock = clock
        self._next_prune = 0.0

    def delivered(self, ack_ids: Iterable[str], seconds: float) -> None:
        now = self._clock()  # type: ignore[operator]
        for ack_id in ack_ids:
            self._deadlines[ack_id] = now + seconds
        self._prune(now)

    def modified(self, ack_ids: Iterable[str], seconds: float) -> list[str]:
        """Move the deadlines of the ack ids still in time; return those (the others are late
        and their change is dropped, as production ignores it)."""
        now = self._clock()  # type: ignore[operator]
        live = []
        for ack_id in ack_ids:
            deadline = self._deadlines.get(ack_id)
            if deadline is None:
                live.append(ack_id)  # not delivered through this proxy: pass it on
            elif deadline > now:
                self._deadlines[ack_id] = now + seconds if seconds > 0 else now
                live.append(ack_id)
        return live

    def acknowledged(self, ack_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """(in time, late): only the first go on to the backend."""
        now = self._clock()  # type: ignore[operator]
        live, late = [], []
        for ack_id in ack_ids:
            deadline = self._deadlines.pop(ack_id, None)
            (late if deadline is not None and deadline <= now else live).append(ack_id)
        return live, late

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + 60.0
        stale = [a for a, d in self._deadlines.items() if d < now - KEEP_EXPIRED_S]
        for ack_id in stale:
            del self._deadlines[ack_id]
