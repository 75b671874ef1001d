"""Work done behind the caller: a replay hands each confirmed group's journal write and ack to
one background thread and goes on publishing the next batch.

Jobs run one at a time, in the order submitted; the queue is bounded, so a caller that runs
ahead waits instead of piling up letters. The first job that fails stops the rest (they are not
run: their letters stay held and are released, so they remain in the DLQ) and its error is
raised to the caller at its next `submit` or at `finish`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_END = object()


class Behind:
    def __init__(self, depth: int = 4, name: str = "dlq-behind") -> None:
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._finished = False

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self._jobs.put(job)

    def finish(self, timeout: float = 60.0) -> None:
        """Wait until every submitted job has run (or the first failure stopped them); safe to
        call again. Does not raise: `check` does."""
        if not self._finished:
            self._finished = True
            self._jobs.put(_END)
        self._thread.join(timeout)

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (job := self._jobs.get()) is not _END:
            if self._error is None:
                try:
                    job()
                except BaseException as err:  # raised in the caller's thread by `check`
                    self._error = err
