"""`DlqAlerting`: the page when dead letters pile up, the optional early warnings, the
notification channels, and one dashboard per stack for the runbook to link to.

Metric filters select subscriptions by exact id and resource type (never a prefix that could match
another subscription), and every condition says how a gap in the metric is evaluated.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_gcp as gcp

from events_infra.components.args import DlqAlertingArgs
from events_infra.consumer.log_metrics import METRIC_NAME as LIBRARY_METRIC_NAME
from events_infra.consumer.log_metrics import SUBSCRIPTION_LABEL
from events_infra.consumer.log_metrics import log_filter as library_log_filter
from events_infra.consumer.log_metrics import subscription_filter as library_subscription_filter
from events_infra.dlq.alert_policies import (
    DeclaredCondition,
    DeclaredPolicy,
    declared_alert_policies,
)
from events_infra.outbox.metric_names import BACKLOG as OUTBOX_BACKLOG
from events_infra.outbox.metric_names import DESCRIPTORS as RELAY_METRICS
from events_infra.outbox.metric_names import OLDEST_UNPUBLISHED_AGE as OUTBOX_OLDEST_AGE
from events_infra.outbox.metric_names import relay_filter
from events_infra.pubsub.metrics import (
    DEAD_LETTERED,
    OLDEST_UNACKED,
    PUBLISHED,
    UNDELIVERED,
    subscription_filter,
)
from events_infra.stack_config.alerting_config import (
    AlertingConfig,
    EmailChannel,
    PagerDutyChannel,
    StuckOutboxAlert,
    WebhookChannel,
)
from events_infra.stack_config.durations import gcp_duration, human_duration
from events_infra.stack_config.outbox_config import OutboxConfig, relay_service_of

NO_OP = "EVALUATION_MISSING_DATA_NO_OP"
"""A gap keeps the incident as it is: it neither pages nor closes (hides) a backlog."""
INACTIVE = "EVALUATION_MISSING_DATA_INACTIVE"
MISSING_DATA_MIN_WINDOW_S = 60


def missing_data_control(missing_data: str, window: float) -> str | None:
    """`evaluation_missing_data` as Cloud Monitoring accepts it: only with a `duration` of 60 s
    or more (monitoring_v3 types/alert.py, MetricThreshold.evaluation_missing_data; below that
    `pulumi up` fails with HTTP 400). NO_OP is also what an unset field means (the enum's
    UNSPECIFIED "Equivalent to EVALUATION_MISSING_DATA_NO_OP"), so below a minute it is left out;
    any other choice needs the longer window, which the stack model enforces."""
    if window >= MISSING_DATA_MIN_WINDOW_S:
        return missing_data
    if missing_data == NO_OP:
        return None
    raise ValueError(
        f"{missing_data} needs a condition duration of {MISSING_DATA_MIN_WINDOW_S}s or more"
    )


"""A gap counts as "not firing": right for counts, where no data means nothing happened."""


def runbook(stack: str, spec: DlqAlertingArgs, dashboard_url: str | None) -> str:
    """The markdown on-call reads in the page: what happened and the exact commands to run."""
    dlq = spec.dead_letter.subscription
    alert = spec.alerting.dlq_backlog
    lines = [
        f"## Dead letters are piling up in `{dlq}` (stack `{stack}`)",
        "",
        f"More than {alert.threshold:g} messages have stayed in the dead-letter subscription "
        f"`{dlq}` for {human_duration(alert.duration)}. Each one failed "
        "delivery to a consumer the configured number of times.",
        "",
        "1. See how many, from which subscription, since when:",
        f"   `eventsctl dlq status --stack {stack}`",
        "2. Look at a few without consuming them:",
        f"   `eventsctl dlq inspect --stack {stack} --limit 10`",
        "3. Fix the failing consumer, then check what a replay would do:",
        f"   `eventsctl dlq replay --stack {stack} --dry-run`",
        "4. Replay them to the subscription that failed each one (healthy consumers are not "
        "sent duplicates):",
        f"   `eventsctl dlq replay --stack {stack}`",
    ]
    if dashboard_url:
        lines += ["", f"Dashboard: {dashboard_url}"]
    return "\n".join(lines)


def outbox_runbook(
    stack: str,
    spec: DlqAlertingArgs,
    dashboard_url: str | None,
    outbox: OutboxConfig | None = None,
) -> str:
    """What on-call reads when events stop leaving the outbox (`outbox`: one of `outboxes`,
    None for the first, `database`)."""
    database = outbox.database if outbox is not None else spec.database
    service = relay_service_of(outbox)
    region = spec.relay.region if spec.relay else None
    region = region or (database.region if database else "REGION")
    alert = spec.alerting.stuck_outbox
    age = human_duration(alert.threshold) if alert else "a while"
    where = f"database `{database.database}` on `{database.instance}`" if database else "the outbox"
    lines = [
        f"## Events are stuck in the outbox of {where} (stack `{stack}`)",
        "",
        f"The oldest committed event has not been published for more than {age}, or no relay "
        "has reported for a while. Services keep committing events; consumers see none of them.",
        "",
        "1. How far behind, and why the relay says it is failing (`last_error`):",
        f"   `eventsctl outbox status --database-url URL` (URL: the {where}, e.g. through "
        "`cloud-sql-proxy` to its connection name)",
        "2. Is the relay running, and what does it log (one JSON line per batch, `error` when "
        "something failed)?",
        f"   `gcloud run services describe {service} --region {region}`",
        f"   `gcloud run services logs read {service} --region {region} --limit 50`",
        "3. Pub/Sub refusing or unreachable (`last_error` says so): the relay's breaker retries "
        "every 30 s and nothing is lost; check Pub/Sub's status and the relay's publisher grant.",
        "4. Database unreachable or the relay crash-looping: check the `cloud-sql-proxy` "
        "container's log in the same service; redeploy the last good image with `pulumi up`.",
        "5. Events that can never be published are moved to `event_outbox_failed` (the status "
        "shows how many); they need a fix and re-enqueueing, not a restart.",
    ]
    if dashboard_url:
        lines += ["", f"Dashboard: {dashboard_url}"]
    return "\n".join(lines)


class DlqAlerting(pulumi.ComponentResource):
    """Alert policies, notification channels and the dashboard of one stack.

    Public fields: `channels` (name -> NotificationChannel), `dlq_backlog_policy`,
    `dead_letter_rate_policies`, `oldest_unacked_policies`, `dlq_retention_policy`,
    `dashboard`, `channel_ids` (every channel the policies notify).
    """

    def __init__(
        self,
        name: str,
        spec: DlqAlertingArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("events-infra:alerting:DlqAlerting", name, None, opts)
        stack = spec.stack
        self._name = name
        self._project = spec.project
        config: AlertingConfig = spec.alerting
        self._labels = {"stack": stack.lower(), **config.user_labels}

        self.channels = {c.name: self._channel(c) for c in config.channels}
        self.channel_ids: list[pulumi.Input[str]] = [
            *(c.id for c in self.channels.values()),
            *config.existing_channels,
        ]

        self.dashboard: gcp.monitoring.Dashboard | None = None
        dashboard_url: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if config.dashboard:
            self.dashboard = gcp.monitoring.Dashboard(
                f"{name}-dashboard",
                project=self._project,
                dashboard_json=json.dumps(dashboard_layout(spec, stack), sort_keys=True),
                opts=pulumi.ResourceOptions(parent=self),
            )
            dashboard_url = self.dashboard.id.apply(
                lambda ident: (
                    "https://console.cloud.google.com/monitoring/dashboards/custom/"
                    f"{ident.rsplit('/', 1)[-1]}?project={self._project}"
                )
            )
        documentation = dashboard_url.apply(lambda url: runbook(stack, spec, url))

        # display names, filters, thresholds and durations: one home, shared with `dlq doctor`
        declared = {
            p.key: p
            for p in declared_alert_policies(
                stack,
                self._project,
                config,
                spec.dead_letter,
                spec.subscriptions,
                spec.relay is not None,
                spec.outboxes,
            )
        }
        self.dlq_backlog_policy = self._policy(
            f"{name}-dlq-backlog",
            declared["dlq-backlog"],
            settings=config.dlq_backlog,
            aligner="ALIGN_MAX",
            missing_data=NO_OP,
            documentation=documentation,
        )

        self.dead_letter_rate_policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        self.oldest_unacked_policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        self.library_dead_letters: gcp.logging.Metric | None = None
        if config.dead_letter_rate is not None:
            self.library_dead_letters = self._library_dead_letter_metric(name)
        for sub in spec.subscriptions:
            if config.dead_letter_rate is not None:
                rate = config.dead_letter_rate
                per = human_duration(rate.alignment_period)
                policy = declared[f"dead-letter-rate-{sub.name}"]
                self.dead_letter_rate_policies[sub.name] = self._alert_policy(
                    f"{name}-dead-letter-rate-{sub.name}",
                    policy.display_name,
                    rate,
                    documentation,
                    [
                        self._threshold(policy.conditions[0], rate, "ALIGN_SUM", INACTIVE),
                        # of those, the consumer library's poison events (logged on their last
                        # delivery): events that can never succeed, not a failing handler
                        self._threshold(
                            DeclaredCondition(
                                f"{sub.name} poison events (consumer library) > "
                                f"{rate.threshold:g} per {per}",
                                library_subscription_filter(sub.name),
                                rate.threshold,
                                rate.duration,
                                rate.alignment_period,
                            ),
                            rate,
                            "ALIGN_SUM",
                            INACTIVE,
                        ),
                    ],
                    [self.library_dead_letters],
                )
            if config.oldest_unacked is not None:
                self.oldest_unacked_policies[sub.name] = self._policy(
                    f"{name}-oldest-unacked-{sub.name}",
                    declared[f"oldest-unacked-{sub.name}"],
                    settings=config.oldest_unacked,
                    aligner="ALIGN_MAX",
                    missing_data=NO_OP,
                    documentation=documentation,
                )

        self.dlq_retention_policy: gcp.monitoring.AlertPolicy | None = None
        if config.dlq_retention is not None:
            self.dlq_retention_policy = self._policy(
                f"{name}-dlq-retention",
                declared["dlq-retention"],
                settings=config.dlq_retention,
                aligner="ALIGN_MAX",
                missing_data=NO_OP,
                documentation=documentation,
            )

        self.stuck_outbox_policy: gcp.monitoring.AlertPolicy | None = None
        self.silent_relay_policy: gcp.monitoring.AlertPolicy | None = None
        self.relay_metric_descriptors: list[gcp.monitoring.MetricDescriptor] = []
        if spec.relay is not None:
            self.relay_metric_descriptors = [
                self._metric_descriptor(name, metric) for metric in RELAY_METRICS
            ]
        self.outbox_policies: dict[str, tuple[Any, Any]] = {}
        """Further outboxes (`outboxes`) -> their (stuck, silent relay) policies."""
        if spec.relay is not None and config.stuck_outbox is not None:
            self.stuck_outbox_policy, self.silent_relay_policy = self._outbox_policies(
                name, stack, spec, config.stuck_outbox, dashboard_url, declared
            )
            for outbox in spec.outboxes:
                self.outbox_policies[outbox.name] = self._outbox_policies(
                    name, stack, spec, config.stuck_outbox, dashboard_url, declared, outbox
                )

        self.register_outputs(
            {
                "dlq_backlog_policy": self.dlq_backlog_policy.name,
                "dashboard": self.dashboard.id if self.dashboard else None,
            }
        )

    def _outbox_policies(
        self,
        name: str,
        stack: str,
        spec: DlqAlertingArgs,
        stuck: StuckOutboxAlert,
        dashboard_url: pulumi.Output[str | None],
        declared: dict[str, DeclaredPolicy],
        outbox: OutboxConfig | None = None,
    ) -> tuple[gcp.monitoring.AlertPolicy, gcp.monitoring.AlertPolicy]:
        """ "Oldest unpublished event older than N" and "no relay reporting", max over the
        relays of one outbox database (the first, or `outbox`): each database pages on its own,
        and a relay that stops is not hidden by another database's relay still reporting."""
        documentation = dashboard_url.apply(lambda url: outbox_runbook(stack, spec, url, outbox))
        suffix = f"-{outbox.name}" if outbox is not None else ""
        stuck_policy = self._policy(
            f"{name}-stuck-outbox{suffix}",
            declared[f"stuck-outbox{suffix}"],
            settings=stuck,
            aligner="ALIGN_MAX",
            reducer="REDUCE_MAX",
            missing_data=NO_OP,
            documentation=documentation,
            depends_on=list(self.relay_metric_descriptors),
        )
        silent = declared[f"relay-silent{suffix}"]
        [silent_condition] = silent.conditions
        absent = gcp.monitoring.AlertPolicyConditionArgs(
            display_name=silent_condition.display_name,
            condition_absent=gcp.monitoring.AlertPolicyConditionConditionAbsentArgs(
                filter=silent_condition.filter,
                duration=gcp_duration(silent_condition.duration),
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs(
                        alignment_period=gcp_duration(stuck.alignment_period),
                        per_series_aligner="ALIGN_MAX",
                        cross_series_reducer="REDUCE_MAX",
                    )
                ],
                trigger=gcp.monitoring.AlertPolicyConditionConditionAbsentTriggerArgs(count=1),
            ),
        )
        silent_policy = self._alert_policy(
            f"{name}-relay-silent{suffix}",
            silent.display_name,
            stuck,
            documentation,
            [absent],
            list(self.relay_metric_descriptors),
        )
        return stuck_policy, silent_policy

    def _library_dead_letter_metric(self, name: str) -> gcp.logging.Metric:
        """A log-based counter of the consumer library's poison events (the JSON line it logs
        on the last delivery of each; consumer.log_metrics), labelled by subscription."""
        return gcp.logging.Metric(
            f"{name}-library-dead-letters",
            project=self._project,
            name=LIBRARY_METRIC_NAME,
            description="Poison events the events-infra consumer library nacked to the DLQ",
            filter=library_log_filter(),
            metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                metric_kind="DELTA",
                value_type="INT64",
                unit="1",
                labels=[
                    gcp.logging.MetricMetricDescriptorLabelArgs(
                        key=SUBSCRIPTION_LABEL,
                        value_type="STRING",
                        description="the subscription the event came from",
                    )
                ],
            ),
            label_extractors={SUBSCRIPTION_LABEL: f"EXTRACT(jsonPayload.{SUBSCRIPTION_LABEL})"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _metric_descriptor(self, name: str, metric: str) -> gcp.monitoring.MetricDescriptor:
        """The relay metric's descriptor, declared so the alerts on it can be created before
        the relay's first write (on `generic_task`, no metric labels: what the relay writes)."""
        kind, value_type, unit, description = RELAY_METRICS[metric]
        return gcp.monitoring.MetricDescriptor(
            f"{name}-metric-{metric.rsplit('/', 1)[-1].replace('_', '-')}",
            project=self._project,
            type=metric,
            metric_kind=kind,
            value_type=value_type,
            unit=unit,
            description=description,
            display_name=f"events-infra outbox {metric.rsplit('/', 1)[-1].replace('_', ' ')}",
            # deleting a descriptor makes the metric's data unusable: never on a stack change
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

    def _channel(
        self, channel: EmailChannel | PagerDutyChannel | WebhookChannel
    ) -> gcp.monitoring.NotificationChannel:
        args: dict[str, Any] = {}
        if isinstance(channel, EmailChannel):
            args = {"type": "email", "labels": {"email_address": channel.address}}
        elif isinstance(channel, PagerDutyChannel):
            key = pulumi.Output.secret(channel.service_key.get_secret_value())
            args = {
                "type": "pagerduty",
                "sensitive_labels": gcp.monitoring.NotificationChannelSensitiveLabelsArgs(
                    service_key=key
                ),
            }
        else:
            password = pulumi.Output.secret(channel.password.get_secret_value())
            args = {
                "type": "webhook_basicauth",
                "labels": {"url": channel.url, "username": channel.username},
                "sensitive_labels": gcp.monitoring.NotificationChannelSensitiveLabelsArgs(
                    password=password
                ),
            }
        return gcp.monitoring.NotificationChannel(
            f"{self._name}-channel-{channel.name}",
            project=self._project,
            display_name=channel.name,
            user_labels=self._labels,
            opts=pulumi.ResourceOptions(parent=self),
            **args,
        )

    def _policy(
        self,
        resource_name: str,
        declared: DeclaredPolicy,
        *,
        settings: Any,
        aligner: str,
        missing_data: str,
        documentation: pulumi.Input[str],
        reducer: str | None = None,
        depends_on: list[pulumi.Resource] | None = None,
    ) -> gcp.monitoring.AlertPolicy:
        """A policy of one threshold condition, as `declared` (dlq.alert_policies) says."""
        [declared_condition] = declared.conditions
        condition = self._threshold(declared_condition, settings, aligner, missing_data, reducer)
        return self._alert_policy(
            resource_name, declared.display_name, settings, documentation, [condition], depends_on
        )

    @staticmethod
    def _threshold(
        declared: DeclaredCondition,
        settings: Any,
        aligner: str,
        missing_data: str,
        reducer: str | None = None,
    ) -> gcp.monitoring.AlertPolicyConditionArgs:
        """A "value above the threshold for the window" condition, with the missing-data
        control only where Monitoring accepts it."""
        threshold_value = declared.threshold
        window = declared.duration
        return gcp.monitoring.AlertPolicyConditionArgs(
            display_name=declared.display_name,
            condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=declared.filter,
                comparison="COMPARISON_GT",
                threshold_value=threshold_value,
                duration=gcp_duration(window),
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                        alignment_period=gcp_duration(
                            declared.alignment_period or settings.alignment_period
                        ),
                        per_series_aligner=aligner,
                        cross_series_reducer=reducer,
                    )
                ],
                trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
                evaluation_missing_data=missing_data_control(missing_data, window),
            ),
        )

    def _alert_policy(
        self,
        resource_name: str,
        display_name: str,
        settings: Any,
        documentation: pulumi.Input[str],
        conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
        depends_on: list[pulumi.Resource | None] | None = None,
    ) -> gcp.monitoring.AlertPolicy:
        """Its conditions (any one fires it), the stack's channels and labels, the runbook as
        documentation."""
        return gcp.monitoring.AlertPolicy(
            resource_name,
            project=self._project,
            display_name=display_name,
            combiner="OR",
            severity=settings.severity,
            user_labels=self._labels,
            notification_channels=self.channel_ids,
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(
                auto_close=gcp_duration(settings.auto_close)
            ),
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                content=documentation,
                mime_type="text/markdown",
                subject=display_name,
            ),
            conditions=conditions,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[r for r in depends_on or [] if r is not None]
            ),
        )


def dashboard_layout(spec: DlqAlertingArgs, stack: str) -> dict[str, Any]:
    """One dashboard per stack: what was published, each subscription's backlog and age, the
    dead-letter rate per subscription, and the DLQ backlog against its alert threshold."""
    project = spec.project
    subs = [s.name for s in spec.subscriptions]
    one_of = ", ".join(f'"{s}"' for s in subs)
    consumer_filter = (
        f'resource.type = "pubsub_subscription" AND resource.labels.project_id = "{project}" '
        f"AND resource.labels.subscription_id = one_of({one_of})"
    )
    dlq = spec.dead_letter.subscription

    def chart(title: str, metric_filter: str, aligner: str, thresholds: list[float] = ()) -> dict:
        widget: dict[str, Any] = {
            "title": title,
            "xyChart": {
                "dataSets": [
                    {
                        "plotType": "LINE",
                        "timeSeriesQuery": {
                            "timeSeriesFilter": {
                                "filter": metric_filter,
                                "aggregation": {
                                    "alignmentPeriod": "60s",
                                    "perSeriesAligner": aligner,
                                },
                            }
                        },
                    }
                ],
                "thresholds": [{"value": t} for t in thresholds],
            },
        }
        return widget

    widgets = [
        chart(
            f"Events published to {spec.topic.name}",
            f'resource.type = "pubsub_topic" AND resource.labels.project_id = "{project}" AND '
            f'resource.labels.topic_id = "{spec.topic.name}" AND metric.type = "{PUBLISHED}"',
            "ALIGN_RATE",
        ),
        chart(
            "Backlog per subscription",
            f'{consumer_filter} AND metric.type = "{UNDELIVERED}"',
            "ALIGN_MAX",
        ),
        chart(
            "Oldest unacked message age per subscription",
            f'{consumer_filter} AND metric.type = "{OLDEST_UNACKED}"',
            "ALIGN_MAX",
        ),
        chart(
            "Dead-lettered per subscription",
            f'{consumer_filter} AND metric.type = "{DEAD_LETTERED}"',
            "ALIGN_RATE",
        ),
        chart(
            f"Dead-letter backlog ({dlq})",
            subscription_filter(project, dlq, UNDELIVERED),
            "ALIGN_MAX",
            [spec.alerting.dlq_backlog.threshold],
        ),
        chart(
            f"Oldest dead letter age ({dlq})",
            subscription_filter(project, dlq, OLDEST_UNACKED),
            "ALIGN_MAX",
        ),
    ]
    if spec.relay is not None:
        stuck = spec.alerting.stuck_outbox
        for outbox in (None, *spec.outboxes):  # the first outbox, then each of `outboxes`
            job = relay_service_of(outbox)
            of = f" ({outbox.name})" if outbox is not None else ""
            widgets += [
                chart(f"Outbox backlog{of} (events not yet published)",
                      relay_filter(project, OUTBOX_BACKLOG, job), "ALIGN_MAX"),
                chart(f"Oldest unpublished event age{of} (s)",
                      relay_filter(project, OUTBOX_OLDEST_AGE, job), "ALIGN_MAX",
                      [stuck.threshold] if stuck else []),
            ]  # fmt: skip
    tiles = [
        {"xPos": (i % 2) * 6, "yPos": (i // 2) * 4, "width": 6, "height": 4, "widget": w}
        for i, w in enumerate(widgets)
    ]
    return {"displayName": f"events-infra {stack}", "mosaicLayout": {"columns": 12, "tiles": tiles}}
