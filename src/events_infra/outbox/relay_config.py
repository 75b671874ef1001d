"""What one relay is told (`RelayConfig`) and what it reports per settle (`BatchResult`).

`outbox.relay_process.RelaySettings` is the flag-and-environment side of the same settings; the
stack sizes the relay's memory from `claim_bytes` (`stack_config.relay_config`)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field


@dataclass
class RelayConfig:
    database_url: str
    topic_path: str
    batch_size: int = 500
    """Rows claimed per claim, over all keys."""
    claim_bytes: int = 32 * 1024 * 1024
    """Bytes of events held in flight at most, over every claim not yet settled (at least one
    row): what the relay holds in memory is a few times this, so its memory is sized from it
    (`stack_config.relay_config`)."""
    per_key: int = 100
    """Consecutive rows of one ordering key claimed together (and sent in one request)."""
    publish_concurrency: int = 256
    """Ordering keys in flight at once, each with at most one request on the wire: enough to
    cover production's latency (256 keys / 0.2 s per Publish = 1,280 requests a second)."""
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    max_attempts: int = 20
    """Failed publishes before a row is moved to event_outbox_failed."""
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    breaker_failures: int = 3
    """Consecutive batches that all failed before the breaker opens."""
    breaker_cooldown: float = 30.0
    publish_timeout: float = 20.0
    """Seconds one Publish (with its retries) may take before the rows are retried later."""
    relay_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )


@dataclass
class BatchResult:
    claimed: int = 0
    published: int = 0
    retried: int = 0
    failed: int = 0
    keys: int = 0
    latency_ms: float = 0.0
    error: str | None = None
    """The first failure of the batch, as Pub/Sub (or the client) put it."""
