"""The relay as a process: check its settings, build its publisher, serve /healthz, report
metrics, stop cleanly on SIGTERM/SIGINT. `eventsctl outbox relay` parses flags and calls
`run_relay_process`; the OutboxRelay component sets the container's environment from
`RelayEnvironment`, so the names the image reads and the names the stack writes are one list.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events_infra.errors import EventsInfraError
from events_infra.outbox import metric_names
from events_infra.pubsub.paths import TOPIC_PATH, topic_path


class RelayEnvironment:
    """The environment variables the relay process reads (its container's configuration)."""

    DATABASE_URL = "DATABASE_URL"
    TOPIC_PATH = "EVENTSCTL_TOPIC_PATH"
    PUBSUB_ENDPOINT = "EVENTSCTL_PUBSUB_ENDPOINT"
    HEALTH_PORT = "EVENTSCTL_HEALTH_PORT"
    METRICS_PROJECT = "EVENTSCTL_METRICS_PROJECT"
    METRICS_LOCATION = "EVENTSCTL_METRICS_LOCATION"
    METRICS_JOB = "EVENTSCTL_METRICS_JOB"
    PUBLISH_TIMEOUT = "EVENTSCTL_PUBLISH_TIMEOUT"
    CLAIM_MIB = "EVENTSCTL_CLAIM_MIB"


class RelaySettingsError(EventsInfraError):
    """A relay setting is missing or out of range; the message names the flag and the fix."""


@dataclass(frozen=True)
class RelaySettings:
    """Everything `eventsctl outbox relay` may be told. Either `topic_path` (the container's
    way, with `endpoint`), or a stack (`stack`, `stacks_dir`, optional `project`/`topic`)."""

    database_url: str | None
    stack: str = "dev"
    stacks_dir: str | None = None
    project: str | None = None
    topic: str | None = None
    topic_path: str | None = None
    endpoint: str | None = None
    batch_size: int = 500
    claim_mib: int = 32
    """Bytes of events held in flight at most, in MiB (the container's memory is sized from
    it)."""
    per_key: int = 100
    publish_concurrency: int = 256
    """Ordering keys in flight at once (`RelayConfig.publish_concurrency`)."""
    poll_interval: float = 1.0
    lease: float = 60.0
    publish_timeout: float = 20.0
    """Deadline of one Publish with its retries; on Cloud Run it must let the requests in flight
    finish inside the 10 s between SIGTERM and SIGKILL (components.outbox_relay sets 7 s)."""
    max_attempts: int = 20
    health_port: int | None = None
    metrics_project: str | None = None
    metrics_location: str = "global"
    metrics_job: str = metric_names.JOB
    """The `job` label of its metrics: one per outbox database, so its alerts are its own."""


def resolve(settings: RelaySettings) -> tuple[str, str | None]:
    """(topic path, endpoint) to publish to, or RelaySettingsError saying what to change."""
    from events_infra.db.connect import require_url
    from events_infra.stack_config.stack_files import load_stack, stacks_dir

    require_url(settings.database_url)
    counts = (settings.batch_size, settings.max_attempts, settings.per_key, settings.claim_mib)
    if min(*counts, settings.publish_concurrency) < 1:
        raise RelaySettingsError(
            "--batch-size, --per-key, --publish-concurrency, --max-attempts and --claim-mib "
            "must be 1 or more"
        )
    if min(settings.poll_interval, settings.lease, settings.publish_timeout) <= 0:
        raise RelaySettingsError(
            "--poll-interval, --lease and --publish-timeout must be more than 0"
        )
    if settings.topic_path:
        if not re.fullmatch(TOPIC_PATH, settings.topic_path):
            raise RelaySettingsError(
                f"--topic-path {settings.topic_path!r}: use projects/PROJECT/topics/TOPIC"
            )
        if not settings.endpoint and not os.environ.get("PUBSUB_EMULATOR_HOST"):
            raise RelaySettingsError(
                "--topic-path needs --pubsub-endpoint (e.g. asia-south1-pubsub.googleapis."
                "com:443): per-key order holds only among messages published in one region"
            )
        return settings.topic_path, settings.endpoint
    topology = load_stack(settings.stack, stacks_dir(settings.stacks_dir))
    path = topic_path(settings.project or topology.project, settings.topic or topology.topic.name)
    return path, settings.endpoint or topology.pubsub.api_endpoint


def make_relay_publisher(endpoint: str | None) -> Any:
    """The publisher client, or a one-line error when Google credentials are missing."""
    from google.auth.exceptions import DefaultCredentialsError

    from events_infra.pubsub.key_publisher import make_publisher

    try:
        return make_publisher(endpoint)
    except DefaultCredentialsError:
        raise RelaySettingsError(
            "no Google credentials: run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or point PUBSUB_EMULATOR_HOST at an emulator"
        ) from None


def run_relay_process(
    settings: RelaySettings, publisher_factory: Callable[[str | None], Any] = make_relay_publisher
) -> int:
    """Run the relay until SIGTERM/SIGINT; the number of events it published.

    Every setting and the credentials are checked before anything starts, so a bad start fails
    in one line within seconds. Run by hand (no health port), an unreachable database is such a
    failure too (the connect has a 10 s timeout). In a container (`health_port` set) it is not:
    there /healthz is served first and the database retried with backoff, logged on each try,
    because on Cloud Run the database may take a minute to be reachable (Direct VPC egress at
    instance start-up; the Auth Proxy sidecar starting) and an exit would be a crash loop or a
    failed revision. A relay that never connects stops going round and /healthz turns 503 after
    its stale limit, so the platform restarts it."""
    from events_infra.db.connect import connect
    from events_infra.outbox.relay import Relay, RelayConfig

    path, endpoint = resolve(settings)
    if settings.health_port is None:  # by hand: fail fast, in one line, if it is unreachable
        connect(settings.database_url).close()
    publisher = publisher_factory(endpoint)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    relay = Relay(
        RelayConfig(
            database_url=settings.database_url or "",
            topic_path=path,
            batch_size=settings.batch_size,
            claim_bytes=settings.claim_mib * 1024 * 1024,
            per_key=settings.per_key,
            publish_concurrency=settings.publish_concurrency,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.lease,
            publish_timeout=settings.publish_timeout,
            max_attempts=settings.max_attempts,
        ),
        publisher,
    )
    relay.install_signals()
    if settings.health_port is not None:
        from events_infra.outbox.relay import log
        from events_infra.outbox.relay_health import serve_health

        server = serve_health(relay, settings.health_port)  # port 0: a free one, logged
        log.info(json.dumps({"event": "health_endpoint", "port": server.server_address[1]}))
    reporter = None
    if settings.metrics_project:
        from events_infra.outbox.relay_metrics import MetricsReporter

        reporter = MetricsReporter(
            relay, settings.metrics_project, settings.metrics_location, job=settings.metrics_job
        )
        reporter.start()
    try:
        return relay.run()
    finally:
        if reporter is not None:
            reporter.stop()
