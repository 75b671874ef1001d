"""DLQ alerting under Pulumi mocks: exact filters, thresholds, aggregation, missing-data
handling, channels, runbook, dashboard; and the alerting config's validation errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from events_infra.components.alerting import INACTIVE, NO_OP
from events_infra.components.offline import Declared, Run, run_program
from events_infra.pubsub.metrics import (
    DEAD_LETTERED,
    OLDEST_UNACKED,
    UNDELIVERED,
    subscription_filter,
)
from events_infra.stack_config.topology import TopologyError, parse_topology

STACKS = Path(__file__).resolve().parent.parent / "stacks"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"


def threshold_of(policy: Declared) -> dict[str, Any]:
    [condition] = policy.inputs["conditions"]
    return condition["conditionThreshold"]


def engine(config: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def test_dlq_backlog_policy(prod: Run) -> None:
    policy = prod.named("alerting-dlq-backlog")
    threshold = threshold_of(policy)
    assert threshold["filter"] == (
        'resource.type = "pubsub_subscription" AND resource.labels.project_id = "cotton-erp" '
        'AND resource.labels.subscription_id = "events-dlq-sub" AND '
        'metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages"'
    )
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == 100
    assert threshold["duration"] == "300s"
    assert threshold["aggregations"] == [
        {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MAX"}
    ]
    assert threshold["trigger"] == {"count": 1}
    # a metric gap keeps the incident as it is: it neither pages nor closes a real backlog
    assert threshold["evaluationMissingData"] == NO_OP == "EVALUATION_MISSING_DATA_NO_OP"
    assert policy.inputs["severity"] == "CRITICAL"
    assert policy.inputs["combiner"] == "OR"
    assert policy.inputs["alertStrategy"] == {"autoClose": "1800s"}
    assert policy.inputs["userLabels"] == {"stack": "prod", "team": "platform"}


def test_filter_selects_one_subscription_exactly() -> None:
    text = subscription_filter("p", "events-dlq-sub", UNDELIVERED)
    assert 'resource.labels.subscription_id = "events-dlq-sub"' in text
    assert 'resource.type = "pubsub_subscription"' in text
    for prefix_match in ("starts_with", "has_substring", "monitoring.regex", "one_of"):
        assert prefix_match not in text


WEBHOOK = {
    "type": "webhook",
    "name": "chatops",
    "url": "https://chatops.cotton-erp.com/hooks/events",
    "username": "monitoring",
    "password": "hook-password-123",
}


def with_webhook(prod_config: dict[str, Any], **change: Any) -> dict[str, Any]:
    alerting = prod_config["events-infra:alerting"]
    alerting["channels"] = [*alerting["channels"], {**WEBHOOK, **change}]
    return prod_config


def test_policies_notify_every_configured_channel(prod_config: dict[str, Any]) -> None:
    run = run_program(engine(with_webhook(prod_config)), secret_keys=["events-infra:alerting"])
    channels = {c.inputs["displayName"]: c for c in run.of_type(CHANNEL)}
    assert channels["oncall-email"].inputs["type"] == "email"
    assert channels["oncall-email"].inputs["labels"] == {"email_address": "oncall@cotton-erp.com"}
    expected = [channels["oncall-email"].id, channels["chatops"].id]
    policies = run.of_type(POLICY)
    assert policies and all(p.inputs["notificationChannels"] == expected for p in policies)


def test_a_webhook_authenticates_with_a_secret_password(prod_config: dict[str, Any]) -> None:
    """Unauthenticated, a webhook receiver cannot tell Monitoring's alerts from forged ones:
    basic auth, the password a Pulumi secret (encrypted in state, never in outputs)."""
    run = run_program(engine(with_webhook(prod_config)), secret_keys=["events-infra:alerting"])
    hook = next(c for c in run.of_type(CHANNEL) if c.inputs["displayName"] == "chatops")
    assert hook.inputs["type"] == "webhook_basicauth"
    assert hook.inputs["labels"] == {
        "url": "https://chatops.cotton-erp.com/hooks/events",
        "username": "monitoring",
    }
    labels = hook.inputs["sensitiveLabels"]
    assert labels[rpc._special_sig_key] == rpc._special_secret_sig
    assert labels["value"] == {"password": "hook-password-123"}
    assert "hook-password-123" not in json.dumps(run.exports, default=str)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, r"channels\[chatops\].password: is plain text in the stack file"),
        ({"password": None}, "password"),
        ({"username": None}, "username"),
    ],
)
def test_a_webhook_without_credentials_or_with_a_plain_password_is_refused(
    prod_config: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    config = with_webhook(prod_config, **change)
    hook = config["events-infra:alerting"]["channels"][-1]
    for key in [k for k, v in change.items() if v is None]:
        del hook[key]
    secret = ["events-infra:alerting"] if change else []
    with pytest.raises(pulumi.RunError, match=message):
        run_program(engine(config), secret_keys=secret)


def test_runbook_names_the_commands_for_this_stack(prod: Run, dev: Run) -> None:
    for run, stack in ((prod, "prod"), (dev, "dev")):
        docs = run.named("alerting-dlq-backlog").inputs["documentation"]
        assert docs["mimeType"] == "text/markdown"
        content = docs["content"]
        assert "`events-dlq-sub`" in content
        for command in (
            f"eventsctl dlq status --stack {stack}",
            f"eventsctl dlq inspect --stack {stack} --limit 10",
            f"eventsctl dlq replay --stack {stack} --dry-run",
            f"eventsctl dlq replay --stack {stack}`",
        ):
            assert command in content
        [dashboard] = run.of_type(DASHBOARD)
        dashboard_id = dashboard.id.rsplit("/", 1)[-1]
        assert f"monitoring/dashboards/custom/{dashboard_id}?project=" in content


def test_dead_letter_rate_per_source_subscription(prod: Run) -> None:
    """Pub/Sub's count and the consumer library's own dead-lettering, either one fires it."""
    from events_infra.consumer import log_metrics

    [metric] = prod.of_type("gcp:logging/metric:Metric")
    for sub in ("events-sub", "matching-engine", "notifications"):
        policy = prod.named(f"alerting-dead-letter-rate-{sub}")
        pubsub, library = (c["conditionThreshold"] for c in policy.inputs["conditions"])
        assert pubsub["filter"] == subscription_filter("cotton-erp", sub, DEAD_LETTERED)
        assert library["filter"] == log_metrics.subscription_filter(sub)
        assert policy.inputs["combiner"] == "OR"
        for threshold in (pubsub, library):
            assert threshold["thresholdValue"] == 0
            assert threshold["aggregations"] == [
                {"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_SUM"}
            ]
            # no data for a count means nothing was dead-lettered
            assert threshold["evaluationMissingData"] == INACTIVE
        assert metric.urn in policy.dependencies  # a new log metric must exist first


def test_the_library_dead_letter_metric_counts_the_line_the_consumer_logs(prod: Run) -> None:
    from events_infra.consumer import log_metrics

    [metric] = prod.of_type("gcp:logging/metric:Metric")
    assert metric.inputs["name"] == log_metrics.METRIC_NAME
    assert metric.inputs["filter"] == 'jsonPayload.event="poison_dead_lettered"'
    assert metric.inputs["labelExtractors"] == {"subscription": "EXTRACT(jsonPayload.subscription)"}
    descriptor = metric.inputs["metricDescriptor"]
    assert (descriptor["metricKind"], descriptor["valueType"]) == ("DELTA", "INT64")
    assert [label["key"] for label in descriptor["labels"]] == ["subscription"]


def test_stuck_consumer_alert(prod: Run) -> None:
    for sub in ("events-sub", "matching-engine", "notifications"):
        threshold = threshold_of(prod.named(f"alerting-oldest-unacked-{sub}"))
        assert threshold["filter"] == subscription_filter("cotton-erp", sub, OLDEST_UNACKED)
        assert threshold["thresholdValue"] == 3600
        assert threshold["duration"] == "600s"
        assert threshold["evaluationMissingData"] == NO_OP


def test_dead_letters_about_to_expire_alert(prod: Run) -> None:
    policy = prod.named("alerting-dlq-retention")
    threshold = threshold_of(policy)
    assert threshold["filter"] == subscription_filter(
        "cotton-erp", "events-dlq-sub", OLDEST_UNACKED
    )
    assert threshold["thresholdValue"] == round(14 * 86400 * 0.75)
    assert policy.inputs["severity"] == "CRITICAL"


def test_optional_alerts_are_off_unless_configured(dev: Run) -> None:
    """dev sets none of the optional alerts; the outbox pair is on wherever a relay runs."""
    names = sorted(p.name for p in dev.of_type(POLICY))  # registration order is not fixed
    assert names == ["alerting-dlq-backlog", "alerting-relay-silent", "alerting-stuck-outbox"]
    assert dev.named("alerting-dlq-backlog").inputs["severity"] == "WARNING"


def test_dashboard_has_every_panel(prod: Run) -> None:
    [dashboard] = prod.of_type(DASHBOARD)
    layout = json.loads(dashboard.inputs["dashboardJson"])
    widgets = {t["widget"]["title"]: t["widget"] for t in layout["mosaicLayout"]["tiles"]}
    assert set(widgets) == {
        "Events published to events",
        "Backlog per subscription",
        "Oldest unacked message age per subscription",
        "Dead-lettered per subscription",
        "Dead-letter backlog (events-dlq-sub)",
        "Oldest dead letter age (events-dlq-sub)",
        "Outbox backlog (events not yet published)",
        "Oldest unpublished event age (s)",
    }

    def query(title: str) -> str:
        [data] = widgets[title]["xyChart"]["dataSets"]
        return data["timeSeriesQuery"]["timeSeriesFilter"]["filter"]

    assert "pubsub.googleapis.com/topic/send_message_operation_count" in query(
        "Events published to events"
    )
    assert 'one_of("events-sub", "matching-engine", "notifications")' in query(
        "Backlog per subscription"
    )
    assert DEAD_LETTERED in query("Dead-lettered per subscription")
    assert query("Dead-letter backlog (events-dlq-sub)") == subscription_filter(
        "cotton-erp", "events-dlq-sub", UNDELIVERED
    )
    assert widgets["Dead-letter backlog (events-dlq-sub)"]["xyChart"]["thresholds"] == [
        {"value": 100}
    ]


def pagerduty_config(prod_config: dict[str, Any]) -> dict[str, Any]:
    prod_config["events-infra:alerting"] = {
        "channels": [
            {"type": "pagerduty", "name": "pager", "service_key": "pd-integration-key-123"}
        ],
        "existing_channels": ["projects/cotton-erp/notificationChannels/42"],
    }
    return prod_config


def test_pagerduty_key_stays_secret(prod_config: dict[str, Any]) -> None:
    run = run_program(engine(pagerduty_config(prod_config)), secret_keys=["events-infra:alerting"])
    [channel] = run.of_type(CHANNEL)
    assert channel.inputs["type"] == "pagerduty"
    labels = channel.inputs["sensitiveLabels"]  # the engine receives it wrapped as a secret
    assert labels[rpc._special_sig_key] == rpc._special_secret_sig
    assert labels["value"] == {"serviceKey": "pd-integration-key-123"}
    assert "pd-integration-key-123" not in json.dumps(run.exports, default=str)
    policy = run.named("alerting-dlq-backlog")
    assert policy.inputs["notificationChannels"] == [
        channel.id,
        "projects/cotton-erp/notificationChannels/42",
    ]


def test_plain_text_pagerduty_key_is_refused(prod_config: dict[str, Any]) -> None:
    with pytest.raises(pulumi.RunError, match=r"service_key: is plain text in the stack file"):
        run_program(engine(pagerduty_config(prod_config)))


@pytest.mark.parametrize(
    ("alerting", "message"),
    [
        (
            {"dlq_backlog": {"threshold": -1}},
            "events-infra:alerting.dlq_backlog.threshold: -1 is negative",
        ),
        (
            {"channels": [{"type": "slack", "name": "x"}]},
            "events-infra:alerting.channels[x]: unknown channel type 'slack': use one of "
            "email, pagerduty, webhook",
        ),
        (
            {"channels": [{"type": "email", "name": "oncall", "address": "not-an-email"}]},
            "events-infra:alerting.channels[oncall].email.address: 'not-an-email' is not an "
            "email address",
        ),
        (
            {
                "channels": [
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": "http://x.invalid",
                        "username": "u",
                        "password": "p",
                    }
                ]
            },
            "not an https:// URL",
        ),
        ({"existing_channels": ["42"]}, "'42' is not a notification channel id"),
        ({"dlq_backlog": {"severity": "PANIC"}}, "'PANIC' is not valid"),
        ({"dlq_backlog": {"thresold": 5}}, "did you mean 'threshold'?"),
        (
            {
                "channels": [
                    {"type": "email", "name": "a", "address": "a@x.io"},
                    {"type": "email", "name": "a", "address": "b@x.io"},
                ]
            },
            "channel names must be unique; used twice: a",
        ),
    ],
)
def test_alerting_validation(alerting: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology({"subscriptions": [{"name": "orders"}], "alerting": alerting}, "cotton-erp")
    assert len(info.value.problems) == 1
    assert message in info.value.problems[0]


def test_stuck_outbox_and_silent_relay_page_the_same_channels(prod: Run) -> None:
    """Reads the metrics the relay writes (events_infra.outbox.metric_names), max over relays."""
    from events_infra.outbox.metric_names import BACKLOG, OLDEST_UNPUBLISHED_AGE

    backlog = prod.named("alerting-dlq-backlog")
    stuck = prod.named("alerting-stuck-outbox")
    silent = prod.named("alerting-relay-silent")
    for policy in (stuck, silent):
        assert policy.inputs["notificationChannels"] == backlog.inputs["notificationChannels"]
        assert policy.inputs["severity"] == "CRITICAL"
        content = policy.inputs["documentation"]["content"]
        # commands on-call can run as written: outbox status reads the database, not a stack
        assert "eventsctl outbox status --database-url URL" in content
        assert "database `events` on `events-outbox`" in content
        assert "gcloud run services describe outbox-relay --region asia-south1" in content
    [condition] = stuck.inputs["conditions"]
    threshold = condition["conditionThreshold"]
    assert f'metric.type = "{OLDEST_UNPUBLISHED_AGE}"' in threshold["filter"]
    assert 'resource.type = "generic_task"' in threshold["filter"]
    assert (threshold["thresholdValue"], threshold["duration"]) == (600, "300s")
    assert threshold["aggregations"] == [
        {
            "alignmentPeriod": "60s",
            "perSeriesAligner": "ALIGN_MAX",
            "crossSeriesReducer": "REDUCE_MAX",
        }
    ]
    [condition] = silent.inputs["conditions"]
    absent = condition["conditionAbsent"]
    assert f'metric.type = "{BACKLOG}"' in absent["filter"]
    assert absent["duration"] == "600s"
    assert absent["aggregations"][0]["crossSeriesReducer"] == "REDUCE_MAX"


def test_no_outbox_alerts_without_a_relay() -> None:
    """dev (a public-IP outbox, which needs no relay image to migrate) without its relay."""
    from events_infra.stack_config.stack_files import read_stack_config

    config = read_stack_config(Path(__file__).parent.parent / "stacks" / "Pulumi.dev.yaml")
    del config["events-infra:relay"]
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    names = {p.name for p in run_program(engine_config, stack="dev").of_type(POLICY)}
    assert "alerting-dlq-backlog" in names
    assert not {"alerting-stuck-outbox", "alerting-relay-silent"} & names


def test_relay_metrics_are_declared_before_the_alerts_that_read_them(prod: Run) -> None:
    """An alert policy on a custom metric that does not exist yet is refused (404 "Cannot find
    metric(s) that match type"): the first `up` declares the relay's descriptors, as the relay
    writes them, and the outbox alerts wait for them."""
    from events_infra.outbox import metric_names

    descriptors = {
        d.inputs["type"]: d
        for d in prod.of_type("gcp:monitoring/metricDescriptor:MetricDescriptor")
    }
    assert {t: (d.inputs["metricKind"], d.inputs["valueType"]) for t, d in descriptors.items()} == {
        metric_names.BACKLOG: ("GAUGE", "INT64"),
        metric_names.OLDEST_UNPUBLISHED_AGE: ("GAUGE", "DOUBLE"),
        metric_names.PUBLISHED: ("CUMULATIVE", "INT64"),
        metric_names.PUBLISH_FAILURES: ("CUMULATIVE", "INT64"),
    }
    assert all(d.retain_on_delete for d in descriptors.values())  # deleting one loses its data
    urns = {d.urn for d in descriptors.values()}
    for name in ("alerting-stuck-outbox", "alerting-relay-silent"):
        assert urns <= set(prod.named(name).dependencies)


def test_missing_data_control_only_with_a_minute_or_more(prod: Run) -> None:
    """Cloud Monitoring refuses `evaluation_missing_data` unless `duration` >= 60 s
    (monitoring_v3 types/alert.py, MetricThreshold.evaluation_missing_data): prod's dead-letter
    rate (INACTIVE) and DLQ retention (duration 0) conditions failed `pulumi up` with HTTP 400."""
    from events_infra.stack_config.durations import parse_duration

    checked = 0
    for policy in prod.of_type(POLICY):
        for condition in policy.inputs["conditions"]:
            threshold = condition.get("conditionThreshold")
            if threshold and "evaluationMissingData" in threshold:
                assert parse_duration(threshold["duration"]) >= 60, policy.name
                checked += 1
    assert checked >= 3
    rate = [
        c["conditionThreshold"]
        for p in prod.of_type(POLICY)
        if "dead-letter-rate" in p.name
        for c in p.inputs["conditions"]
    ]
    assert rate and all(
        t["evaluationMissingData"] == "EVALUATION_MISSING_DATA_INACTIVE" and t["duration"] == "60s"
        for t in rate
    )
    retention = threshold_of(prod.named("alerting-dlq-retention"))
    assert retention["duration"] == "0s" and "evaluationMissingData" not in retention


def test_a_dead_letter_rate_under_a_minute_is_refused() -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology(
            {
                "subscriptions": [{"name": "orders"}],
                "alerting": {"dead_letter_rate": {"duration": "0s"}},
            },
            "cotton-erp",
        )
    [problem] = info.value.problems
    assert "alerting.dead_letter_rate.duration" in problem and "60s" in problem


def test_the_component_never_sends_a_control_the_api_refuses() -> None:
    from events_infra.components.alerting import INACTIVE, NO_OP, missing_data_control

    assert missing_data_control(NO_OP, 0) is None
    assert missing_data_control(INACTIVE, 60) == INACTIVE
    with pytest.raises(ValueError, match="60s or more"):
        missing_data_control(INACTIVE, 0)
