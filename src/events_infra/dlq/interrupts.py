"""How the DLQ operations meet stop signals (Ctrl-C, SIGTERM, SIGHUP).

`stopped_like_ctrl_c()` around a whole replay or purge makes SIGTERM and SIGHUP (a stopped job,
a closed terminal) end it as Ctrl-C does: what Pub/Sub confirmed is acknowledged, the rest
released, the summary printed and audited; without it they would kill the process mid-way
(nothing lost, but no summary).

`deferred_stop()` around one publish-and-settle step holds a stop signal back while a Publish
request is on the wire: a copy whose confirmation was abandoned would reach the topic while its
dead letter stays in the DLQ, a duplicate the summary does not count. It records the signal and
raises KeyboardInterrupt once the step is done (each step is bounded by the publish timeout); a
second signal during the step raises at once: whoever insists gets out.

Signal handlers can be set only in the main thread; elsewhere both run the block unchanged.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, Any], None]


@contextlib.contextmanager
def _handling(signals: tuple[signal.Signals, ...], handler: Handler) -> Iterator[bool]:
    """`handler` for `signals` during the block, the previous handlers after it; yields
    whether it could be installed (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def stopped_like_ctrl_c() -> contextlib.AbstractContextManager[bool]:
    """SIGTERM and SIGHUP end the block as Ctrl-C does (KeyboardInterrupt)."""
    return _handling((signal.SIGTERM, signal.SIGHUP), _interrupt)


@contextlib.contextmanager
def deferred_stop() -> Iterator[None]:
    """Run the block to its end despite one stop signal, then raise KeyboardInterrupt for it."""
    received: list[int] = []

    def record(signum: int, _frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    with _handling(STOP_SIGNALS, record):
        yield
    if received:
        raise KeyboardInterrupt
