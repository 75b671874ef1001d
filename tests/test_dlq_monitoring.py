"""`dlq status` reading Cloud Monitoring (the metric the alert uses) through the real client,
against a MetricService on loopback; the emulator still provides the Pub/Sub side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.pubsub.metrics import OLDEST_UNACKED, UNDELIVERED, subscription_filter
from tests.support.dlq_support import make_stack
from tests.support.monitoring_server import MetricServiceServer

runner = CliRunner()


def test_status_uses_cloud_monitoring_counts(
    pubsub: str, tmp_path: Path, monitoring: MetricServiceServer
) -> None:
    stack = make_stack(tmp_path, threshold=100)
    stack.seed(3, source="billing-sub")
    monitoring.values = {UNDELIVERED: 250, OLDEST_UNACKED: 5400}
    out = runner.invoke(app, ["dlq", "status", *stack.cli_args(), "--json"])
    assert out.exit_code == 1, out.output  # 250 > 100
    row = json.loads(out.stdout)
    assert row["source"] == "cloud-monitoring"
    assert (row["undelivered"], row["oldest_age_s"]) == (250, 5400)
    assert row["by_source"] == {"billing-sub": 3}  # the breakdown samples Pub/Sub itself
    dlq = stack.topology.dead_letter.subscription
    filters = {r.filter for r in monitoring.requests}
    assert filters == {
        subscription_filter(stack.project, dlq, UNDELIVERED),
        subscription_filter(stack.project, dlq, OLDEST_UNACKED),
    }
    assert {r.name for r in monitoring.requests} == {f"projects/{stack.project}"}


def test_status_below_threshold_exits_0(
    pubsub: str, tmp_path: Path, monitoring: MetricServiceServer
) -> None:
    stack = make_stack(tmp_path, threshold=100)
    monitoring.values = {UNDELIVERED: 7, OLDEST_UNACKED: 60}
    out = runner.invoke(app, ["dlq", "status", *stack.cli_args()])
    assert out.exit_code == 0, out.output
    assert "counts from Cloud Monitoring" in out.stderr


def test_no_recent_metric_data_falls_back_to_pubsub(
    pubsub: str, tmp_path: Path, monitoring: MetricServiceServer
) -> None:
    stack = make_stack(tmp_path, threshold=1)
    stack.seed(2)
    out = runner.invoke(app, ["dlq", "status", *stack.cli_args(), "--json"])
    assert out.exit_code == 1
    row = json.loads(out.stdout)
    assert (row["source"], row["undelivered"]) == ("pubsub", 2)
    assert "no recent data" in row["note"]


@pytest.mark.parametrize(("counted", "remaining"), [(12, 0), (15, 3)])
def test_export_reads_the_whole_counted_backlog_or_says_what_may_be_missing(
    pubsub: str,
    tmp_path: Path,
    monitoring: MetricServiceServer,
    strict_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    counted: int,
    remaining: int,
) -> None:
    """Pulls come back short (a third of them empty, from the strict proxy): an export keeps
    pulling until it has seen Monitoring's count, and when the count is higher than what exists
    (Monitoring lags a drain) it stops after its budget and says how many may be missing."""
    from events_infra.dlq import scan

    monkeypatch.setattr(scan, "SCAN_BUDGET_S", 3.0)
    stack = make_stack(tmp_path)
    stack.seed(12, source="billing-sub")
    strict_proxy.partial_pulls(0.5, seed=7)
    monitoring.values = {UNDELIVERED: counted, OLDEST_UNACKED: 60}
    out_file = tmp_path / "letters.jsonl"
    out = runner.invoke(app, ["dlq", "export", *stack.cli_args(), "--out", str(out_file), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert (result["exported"], result["backlog"]) == (12, counted)
    assert result["possibly_remaining"] == remaining
    assert len(out_file.read_text().splitlines()) == 12
    human = runner.invoke(app, ["dlq", "export", *stack.cli_args(), "--out", str(out_file)])
    assert ("may not be in the file" in human.stderr) is bool(remaining)
