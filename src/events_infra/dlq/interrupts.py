"""Holding a stop signal back while a Publish request is on the wire.

A copy whose Publish went out but whose confirmation was abandoned on Ctrl-C reaches the topic
while its dead letter stays in the DLQ: a duplicate the replay summary does not count. So
`deferred_stop()` around one publish-and-settle step records SIGINT / SIGTERM / SIGHUP and raises
KeyboardInterrupt once the step is done (each step is bounded by the publish timeout). A second
signal during the step raises at once: whoever insists gets out.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def deferred_stop() -> Iterator[None]:
    """Run the block to its end despite one stop signal, then raise KeyboardInterrupt for it.
    Outside the main thread (where handlers cannot be set) the block runs unshielded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, _frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt
