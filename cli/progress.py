"""A progress bar on stderr for long operations: count, rate and, when the total is known,
ETA."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """A rich progress bar on stderr (count, rate, ETA when the total is known)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class Rate(TaskProgressColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.0f} msg/s" if speed else "- msg/s")

        self.progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=self.total)
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
