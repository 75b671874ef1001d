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
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events_infra.dlq.messages import DeadLetter, data_from_record
from events_infra.dlq.private_files import open_append, private_dir, state_dir


def journal_dir() -> Path:
    return state_dir() / "journal"


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


# --- retention ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalFile:
    path: Path
    age_seconds: float
    size: int


def journal_files(directory: Path | None = None) -> list[JournalFile]:
    """The journals in `directory` (the journal dir by default), oldest first: regular files
    named `*.jsonl` and owned by this user; a symlink or someone else's file is never listed
    (so never deleted)."""
    directory = directory or journal_dir()
    if not directory.is_dir():
        return []
    now = time.time()
    found = []
    for path in directory.iterdir():
        info = path.lstat()
        if path.suffix != ".jsonl" or not stat.S_ISREG(info.st_mode):
            continue
        if info.st_uid != os.getuid():
            continue
        found.append(JournalFile(path, now - info.st_mtime, info.st_size))
    return sorted(found, key=lambda j: -j.age_seconds)


def journals_report(
    stack: str,
    stacks_dir: str | None,
    older_than: str | None,
    prune: bool,
    dry_run: bool,
    audit_log: str | None,
) -> dict[str, Any]:
    """What `eventsctl dlq journals` shows and does: the journals, which are past retention
    (by default the stack's dead-letter retention: a journal restores dead letters, and those
    would be gone from the DLQ by then), and with `prune` those deleted (audited)."""
    from events_infra.dlq.audit import append_audit, audit_log_path
    from events_infra.dlq.errors import DlqError
    from events_infra.stack_config.durations import human_duration, parse_duration
    from events_infra.stack_config.stack_files import load_stack
    from events_infra.stack_config.stack_files import stacks_dir as find_dir

    if older_than is not None:
        try:
            retention = parse_duration(older_than)
        except ValueError as err:
            raise DlqError(f"--older-than {older_than!r}: {err}") from None
    else:
        retention = load_stack(stack, find_dir(stacks_dir)).dead_letter.message_retention
    files = journal_files()
    # past retention: they hold whole payloads, kept no longer than the letters they restore
    # (a journal of a run still going is being written to, so it is never that old)
    expired = {j.path for j in files if j.age_seconds > retention}
    removed = [j for j in files if j.path in expired] if prune else []
    if removed and not dry_run:
        for journal in removed:
            journal.path.unlink(missing_ok=True)
        append_audit(
            audit_log_path(audit_log), "journals-prune",
            retention=human_duration(retention), removed=[str(j.path) for j in removed],
        )  # fmt: skip
    return {
        "directory": str(journal_dir()),
        "retention": human_duration(retention),
        "journals": [
            {
                "path": str(j.path),
                "age": human_duration(int(j.age_seconds)),
                "bytes": j.size,
                "expired": j.path in expired,
            }
            for j in files
        ],
        "pruned": [str(j.path) for j in removed],
        "dry_run": dry_run,
    }
