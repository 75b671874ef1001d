"""The undo journal: every dead letter a replay or purge acknowledges is written here first.

A Pub/Sub snapshot is the fast undo, but it cannot always be had: it lives 7 days minus the age
of the oldest unacked message and cannot be created when that leaves under an hour, and it can be
refused. The journal always exists: before any ack, the letters go to a JSONL file (the export
format with the payload as base64, so restore gives back the exact bytes; flushed and fsynced),
and `eventsctl dlq restore --journal FILE` publishes them back to the dead-letter topic with
their data, ordering key and attributes (Pub/Sub's dead-letter bookkeeping included, so they
read as the same dead letters).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events_infra.dlq.messages import DeadLetter, data_from_record
from events_infra.dlq.private_files import open_append, private_dir


def journal_dir() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "eventsctl" / "journal"


def new_journal_path(subscription: str, operation: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return journal_dir() / f"{subscription}-{operation}-{stamp}.jsonl"


class Journal:
    """Append-only; `record` returns only once the lines are on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        self._file = open_append(path)  # 0600: it holds whole payloads
        self.count = 0

    def record(self, letters: Iterable[DeadLetter]) -> None:
        lines = [json.dumps(letter.to_record(exact=True)) + "\n" for letter in letters]
        if not lines:
            return
        self._file.writelines(lines)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.count += len(lines)

    def close(self) -> None:
        self._file.close()


def restore_journal(publisher: Any, dlq_topic: str, records: list[dict[str, Any]]) -> list[str]:
    """Publish journal records back to the dead-letter topic; return the ids restored (a
    record whose publish failed is not in the list; running restore again is safe to repeat
    only for those)."""
    from events_infra.pubsub.key_publisher import KeyPublisher
    from events_infra.pubsub.publish_requests import Outgoing

    messages = [
        Outgoing(
            record["message_id"],
            record.get("ordering_key") or "",
            data_from_record(record),
            {str(k): str(v) for k, v in (record.get("attributes") or {}).items()},
        )
        for record in records
    ]
    sender = KeyPublisher(publisher, dlq_topic, timeout=20.0)
    try:
        restored, _ = sender.publish_messages(messages)
    finally:
        sender.close()
    return restored
