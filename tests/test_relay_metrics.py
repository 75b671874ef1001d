"""The relay's Cloud Monitoring metrics, written by the real google-cloud-monitoring client to a
loopback MetricService (tests/monitoring_server.py) from a relay on real PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.api import metric_pb2

from events_infra.outbox import Event, enqueue
from events_infra.outbox import metric_names as names
from events_infra.outbox.relay import Relay, RelayConfig
from events_infra.outbox.relay import log as relay_log
from events_infra.outbox.relay_metrics import MetricsReporter
from tests.support.monitoring_server import MetricServiceServer


@pytest.fixture
def monitoring() -> Iterator[MetricServiceServer]:
    server = MetricServiceServer().start()
    try:
        yield server
    finally:
        server.stop()


def loopback_client(server: MetricServiceServer) -> Any:
    import grpc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import (
        MetricServiceGrpcTransport,
    )

    channel = grpc.insecure_channel(server.address)
    transport = MetricServiceGrpcTransport(channel=channel, credentials=AnonymousCredentials())
    return monitoring_v3.MetricServiceClient(transport=transport)


def relay_for(url: str) -> Relay:
    return Relay(RelayConfig(database_url=url, topic_path="projects/p/topics/t"), publisher=None)


def test_reports_backlog_oldest_age_and_counters_on_the_relays_task(
    outbox_db: str, monitoring: MetricServiceServer
) -> None:
    with psycopg.connect(outbox_db) as conn:
        for n in range(3):
            enqueue(conn, Event("trade.created", "trade", uuid.uuid4(), {"n": n}))
        conn.execute("UPDATE event_outbox SET created_at = now() - interval '90 seconds'")
    relay = relay_for(outbox_db)
    relay.totals.update(published=41, retried=2, failed=1)
    reporter = MetricsReporter(
        relay, "cotton-erp", "asia-south1", client=loopback_client(monitoring)
    )
    assert reporter.report_once() is True
    [request] = monitoring.created
    assert request.name == "projects/cotton-erp"
    by_type = {s.metric.type: s for s in request.time_series}
    assert set(by_type) == {
        names.BACKLOG,
        names.OLDEST_UNPUBLISHED_AGE,
        names.PUBLISHED,
        names.PUBLISH_FAILURES,
    }
    assert by_type[names.BACKLOG].points[0].value.int64_value == 3
    assert 89 <= by_type[names.OLDEST_UNPUBLISHED_AGE].points[0].value.double_value < 150
    assert by_type[names.PUBLISHED].points[0].value.int64_value == 41
    assert by_type[names.PUBLISH_FAILURES].points[0].value.int64_value == 3
    for series in request.time_series:  # as declared to Monitoring (alerting's descriptors)
        kind, value_type, _, _ = names.DESCRIPTORS[series.metric.type]
        assert series._pb.metric_kind == metric_pb2.MetricDescriptor.MetricKind.Value(kind)
        assert series.points[0].value._pb.WhichOneof("value") == f"{value_type.lower()}_value"
        assert series.resource.type == "generic_task"
        assert dict(series.resource.labels) == {
            "project_id": "cotton-erp", "location": "asia-south1", "namespace": "events-infra",
            "job": "outbox-relay", "task_id": relay.config.relay_id,
        }  # fmt: skip
    cumulative = by_type[names.PUBLISHED].points[0].interval
    assert cumulative.start_time.timestamp() < cumulative.end_time.timestamp()  # CUMULATIVE
    # what the alert policies filter on matches what was written
    assert names.relay_filter("cotton-erp", names.BACKLOG).startswith(
        'resource.type = "generic_task"'
    )


def test_a_further_outboxs_relay_reports_under_its_own_job(
    outbox_db: str, monitoring: MetricServiceServer
) -> None:
    """What that database's alerts filter on (alerting: relay_filter with its job)."""
    client = loopback_client(monitoring)
    reporter = MetricsReporter(
        relay_for(outbox_db), "cotton-erp", "asia-south1", client=client, job="outbox-relay-billing"
    )
    assert reporter.report_once() is True
    [request] = monitoring.created
    assert {s.resource.labels["job"] for s in request.time_series} == {"outbox-relay-billing"}
    assert 'resource.labels.job = "outbox-relay-billing"' in names.relay_filter(
        "cotton-erp", names.BACKLOG, "outbox-relay-billing"
    )


def test_monitoring_down_is_one_warning_and_the_next_interval_tries_again(
    outbox_db: str, monitoring: MetricServiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    relay = relay_for(outbox_db)
    reporter = MetricsReporter(relay, "cotton-erp", "asia-south1", interval_s=0.2,
                               client=loopback_client(monitoring))  # fmt: skip
    monitoring.refuse_writes = True
    caplog.set_level(logging.WARNING, logger=relay_log.name)
    started = time.monotonic()
    assert reporter.report_once() is False
    assert time.monotonic() - started < 15  # bounded by the write deadline
    [line] = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["event"] == "metrics_failed" and "unavailable" in line["error"].lower()
    monitoring.refuse_writes = False
    reporter.start()
    try:
        deadline = time.monotonic() + 10
        while not monitoring.created and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reporter.stop()
    assert monitoring.created and reporter.failures == 1
