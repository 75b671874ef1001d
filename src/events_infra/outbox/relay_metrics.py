"""The relay reports to Cloud Monitoring: backlog, oldest unpublished age, published, failures.

Why the Monitoring client rather than OpenTelemetry: the project already ships
google-cloud-monitoring (dlq status reads Pub/Sub metrics with it), four series a minute need no
SDK, exporter or collector, and the metric names stay plain constants the alert policies share
(events_infra.outbox.metric_names). A failed write is logged and retried next interval; it never
touches the relay loop. Every call has a deadline.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from events_infra.errors import first_line
from events_infra.outbox import metric_names as names
from events_infra.outbox.relay import log  # one logger for the relay process's lines
from events_infra.pubsub.paths import project_path

WRITE_DEADLINE_S = 10.0
STOP_WAIT_S = 1.0


class MetricsReporter:
    """Writes the relay's metrics every `interval_s` from a daemon thread until `stop()`."""

    def __init__(
        self,
        relay: Any,
        project: str,
        location: str,
        interval_s: float = 60.0,
        client: Any = None,
        job: str = names.JOB,
    ) -> None:
        self.relay = relay
        self.project = project
        self.location = location
        self.job = job
        self.interval_s = interval_s
        self._client = client
        self._conn: Any = None
        self._started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="relay-metrics", daemon=True)
        self.writes = 0
        self.failures = 0

    def start(self) -> MetricsReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reporting. Waits at most STOP_WAIT_S for a write in progress (a shutdown must
        fit in Cloud Run's 10 s; one metric point more or less does not matter)."""
        self._stop.set()
        self._thread.join(STOP_WAIT_S)
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report_once()

    def report_once(self) -> bool:
        """Read the outbox's figures and write one point per metric; False (logged) on error."""
        try:
            status = self._read_status()
            self._write(status)
        except Exception as err:  # Monitoring or the database: report, and try next interval
            self.failures += 1
            log.warning(json.dumps({"event": "metrics_failed", "error": first_line(err)}))
            return False
        self.writes += 1
        return True

    def _read_status(self) -> Any:
        import psycopg

        from events_infra.outbox.status import read_status

        # one connection for the reporter's life (a reading a minute), opened again if it broke
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.relay.config.database_url, connect_timeout=5)
        return read_status(self._conn)

    def _write(self, status: Any) -> None:
        from google.api_core import retry as retries
        from google.cloud import monitoring_v3

        client = self._client or monitoring_v3.MetricServiceClient()
        self._client = client
        now = time.time()
        resource = {
            "type": names.RESOURCE_TYPE,
            "labels": {
                "project_id": self.project,
                "location": self.location,
                "namespace": names.NAMESPACE,
                "job": self.job,
                "task_id": self.relay.config.relay_id,
            },
        }
        totals = self.relay.totals

        def series(metric: str, value: float, start: float | None = None) -> Any:
            kind, value_type, _, _ = names.DESCRIPTORS[metric]
            typed = (
                {"int64_value": int(value)}
                if value_type == "INT64"
                else {"double_value": float(value)}
            )
            interval = {"end_time": {"seconds": int(now), "nanos": int(now % 1 * 1e9)}}
            if start is not None:
                interval["start_time"] = {"seconds": int(start), "nanos": int(start % 1 * 1e9)}
            return monitoring_v3.TimeSeries(
                metric={"type": metric},
                resource=resource,
                metric_kind=kind,
                points=[{"interval": interval, "value": typed}],
            )

        client.create_time_series(
            name=project_path(self.project),
            time_series=[
                series(names.BACKLOG, status.backlog),
                series(names.OLDEST_UNPUBLISHED_AGE, status.oldest_unpublished_age_s or 0.0),
                series(names.PUBLISHED, totals["published"], self._started),
                series(names.PUBLISH_FAILURES, totals["retried"] + totals["failed"], self._started),
            ],
            timeout=WRITE_DEADLINE_S,
            retry=retries.Retry(initial=0.5, maximum=2.0, timeout=WRITE_DEADLINE_S),
        )
