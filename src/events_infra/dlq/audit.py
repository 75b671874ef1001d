"""An append-only JSONL record of every operation that changes a dead-letter subscription:
who, when, which stack and filter, the counts and the message ids."""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events_infra.dlq.private_files import open_append, private_dir, state_dir

AUDIT_LOG_ENV = "EVENTSCTL_AUDIT_LOG"


def audit_log_path(override: str | None = None) -> Path:
    if override:
        return Path(override)
    if os.environ.get(AUDIT_LOG_ENV):
        return Path(os.environ[AUDIT_LOG_ENV])
    return state_dir() / "audit.jsonl"


def append_audit(path: Path, operation: str, **fields: Any) -> dict[str, Any]:
    """Append one record (one line, flushed and fsynced) and return it."""
    record = {
        "time": datetime.now(UTC).isoformat(),
        "user": _user(),
        "host": socket.gethostname(),
        "operation": operation,
        **fields,
    }
    private_dir(path.parent)
    with open_append(path) as log:
        log.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        log.flush()
        os.fsync(log.fileno())
    return record


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
