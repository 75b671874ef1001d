"""`dlq doctor`: the live Pub/Sub configuration and alert policies against the stack model,
naming each silent failure mode (things that look fine until a message should have been
dead-lettered, or on-call paged) and each drift (a console edit Pulumi does not see without a
refresh, and `pulumi up` does not revert).

What it reads, each call bounded:
- the events topic and the dead-letter topic: each setting the program declares on them
  (retention, KMS key, labels), and every subscription attached to them that the stack does
  not declare (listed as unknown, with its filter);
- each declared subscription and the dead-letter subscription: every field the program sets,
  compared by `stack_config.live_diff` (the comparison `adopt plan` makes, so the two agree),
  each difference classed by what restoring it means (in place, losing data, a migration);
- on real GCP, the Pub/Sub service agent's grants (when IAM policies may be read);
- the alert policies the stack declares (`dlq.alert_policies`), found in Cloud Monitoring by
  display name: enabled, each condition's filter, threshold and duration, notification channels.

A check that cannot be made with the caller's permissions, or in local mode (no Monitoring on
the emulator), is reported with ok None ("not checked"), never as a failure or a crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from events_infra.dlq.alert_policies import DeclaredPolicy, stack_alert_policies
from events_infra.dlq.doctor_sql import check_databases
from events_infra.dlq.findings import Finding, drift_detail
from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.paths import project_path, subscription_path, topic_path
from events_infra.stack_config import live_diff
from events_infra.stack_config.durations import human_duration
from events_infra.stack_config.topology import StackConfig

_AGENT = re.compile(r"^serviceAccount:service-\d+@gcp-sa-pubsub\.iam\.gserviceaccount\.com$")

CHECKS = {
    "topic": "subscription-topic",
    "filter": "replay-filter",
    "enable_message_ordering": "message-ordering",
    "dead_letter_policy": "dead-letter-policy",
    "retry_policy": "retry-backoff",
    "ack_deadline": "ack-deadline",
    "enable_exactly_once_delivery": "exactly-once",
    "push_endpoint": "push-config",
    "retain_acked_messages": "retain-acked",
    "message_retention": "message-retention",
    "expiration": "subscription-never-expires",
    "labels": "labels",
    "kms_key_name": "kms-key",
}
"""live_diff field -> the check doctor reports it under (consumer subscriptions)."""
DEAD_LETTER_CHECKS = {**CHECKS, "filter": "subscription-filter",
                      "message_retention": "dead-letter-retention"}  # fmt: skip
TOPIC_CHECKS = {**CHECKS, "message_retention": "topic-retention"}

MONITORING_UNREAD = (
    "not checked: the emulator has no Cloud Monitoring (set EVENTSCTL_MONITORING_ENDPOINT to a "
    "Monitoring API, or run against the project)"
)


def _seconds(duration: Any) -> float:
    return live_diff.seconds(duration)


def diagnose(
    publisher: Any,
    subscriber: Any,
    target: DlqTarget,
    topology: StackConfig,
    check_iam: bool,
    alerts: Any | None = None,
    alerts_note: str | None = None,
    sql: tuple[Any, Any] | None = None,
    sql_note: str | None = None,
) -> list[Finding]:
    """Every finding for the stack. `alerts`: a Cloud Monitoring AlertPolicyService client, or
    None where there is none (`alerts_note` says why; the alert policies are not checked);
    `sql`: Cloud SQL Admin (instances, databases) clients, likewise with `sql_note`."""
    from google.api_core.exceptions import NotFound

    from events_infra.pubsub.api_calls import bounded

    limits = bounded()  # every call gives up in seconds, not after the client's 10 minutes
    findings: list[Finding] = []
    if topology.project != target.project:  # --project: every path and filter follows it
        topology = topology.model_copy(update={"project": target.project})

    def add(check: str, resource: str, ok: bool | None, detail: str, change: str | None = None):
        findings.append(Finding(check, resource, detail, ok, change))

    def agent_check(client: Any, resource: str, role: str) -> None:
        """Does the Pub/Sub service agent hold `role` on `resource`? Not checked (ok None) when
        we may not read the IAM policy: the DLQ operator grants do not include getIamPolicy."""
        from google.api_core.exceptions import PermissionDenied

        kind = role.rsplit(".", 1)[-1]
        check = f"service-agent-{kind}"
        try:
            policy = client.get_iam_policy(request={"resource": resource}, **limits)
        except PermissionDenied:
            add(check, resource, None, unreadable)
            return
        granted = any(_AGENT.match(m) for m in _members(policy, role))
        add(check, resource, granted, f"Pub/Sub service agent must be {kind} here to dead-letter")

    unreadable = "not checked: reading IAM policies needs pubsub.*.getIamPolicy (a project owner)"

    def compared(
        resource: str,
        fields: tuple[str, ...],
        differences: list[live_diff.Difference],
        checks: dict[str, str],
        ok_detail: Callable[[str], str] = lambda field: "as the stack declares",
    ) -> None:
        """One finding per field the comparison covers: ok, or what differs."""
        by_field = {d.field: d for d in differences}
        for field in (*fields, *(f for f in by_field if f not in fields)):
            check = checks.get(field, field.replace("_", "-"))
            found = by_field.get(field)
            if found is None:
                add(check, resource, True, ok_detail(field))
            else:
                add(check, resource, False, drift_detail(found), found.change)

    project = target.project
    events = topic_path(project, topology.topic.name)
    dlq_topic = topic_path(project, topology.dead_letter.topic)

    def topic(path: str, dead_letter: bool) -> None:
        from google.api_core.exceptions import PermissionDenied

        check = "dead-letter-topic-exists" if dead_letter else "topic-exists"
        try:
            live = publisher.get_topic(topic=path, **limits)
            attached = list(publisher.list_topic_subscriptions(topic=path, **limits))
        except NotFound:
            effect = "dead-lettering fails" if dead_letter else "nothing can be published"
            add(check, path, False, f"missing: {effect}")
            return
        except PermissionDenied:  # a replayer deployed before it was granted pubsub.viewer here
            add(check, path, None, "not checked: reading the topic needs roles/pubsub.viewer on it")
            return
        fields = ("kms_key_name", "labels") if dead_letter else live_diff.TOPIC_FIELDS
        compared(path, fields, live_diff.topic_diff(live, topology, dead_letter), TOPIC_CHECKS)
        if dead_letter:
            add(
                "dead-letter-topic-has-subscription",
                path,
                bool(attached),
                f"{len(attached)} subscription(s)"
                if attached
                else "no subscription: everything dead-lettered is dropped",
            )
        declared = live_diff.declared_subscriptions(topology, dead_letter)
        foreign = topology.foreign_paths()
        for unknown in sorted(set(attached) - declared):
            known = unknown in foreign
            detail = _unknown(subscriber, unknown, dead_letter)
            if known:
                detail = "known (foreign_subscriptions): " + detail.removeprefix(
                    "not declared by the stack, "
                )
            add(
                "foreign-subscription" if known else "unknown-subscription",
                unknown,
                known or False,
                detail,
            )

    topic(events, dead_letter=False)
    topic(dlq_topic, dead_letter=True)

    try:
        dlq_sub = subscriber.get_subscription(subscription=target.subscription_path, **limits)
    except NotFound:
        add("dead-letter-subscription-exists", target.subscription_path, False, "missing")
    else:
        compared(
            target.subscription_path,
            live_diff.DEAD_LETTER_SUBSCRIPTION_FIELDS,
            live_diff.dead_letter_subscription_diff(dlq_sub, dlq_topic, topology),
            DEAD_LETTER_CHECKS,
            lambda field: _ok_detail(field, topology.dead_letter.message_retention),
        )

    for model in topology.subscriptions:
        path = subscription_path(project, model.name)
        try:
            live = subscriber.get_subscription(subscription=path, **limits)
        except NotFound:
            add("subscription-exists", path, False, "missing")
            continue

        def ok_detail(field: str, model: Any = model) -> str:
            if field == "filter":
                if not model.replay_filter:
                    return (
                        "accepted: no replay filter (replay_filter: false), so every replayed "
                        "copy reaches it, also those targeted at other subscriptions (consumers "
                        "dedupe)"
                    )
                return "targeted replay works"
            if field == "dead_letter_policy":
                return f"dead-letters to {dlq_topic} after {model.max_delivery_attempts}"
            return _ok_detail(field, model.message_retention)

        differences = live_diff.subscription_diff(live, model, events, dlq_topic, topology)
        compared(path, live_diff.SUBSCRIPTION_FIELDS, differences, CHECKS, ok_detail)
        if check_iam:
            agent_check(subscriber, path, "roles/pubsub.subscriber")

    if check_iam:
        agent_check(publisher, dlq_topic, "roles/pubsub.publisher")

    declared = stack_alert_policies(target.stack, topology)
    if alerts is None:
        add("alert-policies", project_path(project), None, alerts_note or MONITORING_UNREAD)
    else:
        findings += check_alert_policies(alerts, project, declared, topology)
    findings += check_databases(sql, topology, sql_note)
    return findings


def check_alert_policies(
    alerts: Any, project: str, declared: list[DeclaredPolicy], topology: StackConfig
) -> list[Finding]:
    """Each declared policy, found by display name in the project's alert policies
    (ListAlertPolicies, read-only: roles/monitoring.viewer)."""
    from google.api_core import exceptions as gexc

    from events_infra.pubsub.api_calls import bounded, error_detail

    findings: list[Finding] = []

    def add(check: str, resource: str, ok: bool | None, detail: str) -> None:
        findings.append(Finding(check, resource, detail, ok))

    try:
        live = list(
            alerts.list_alert_policies(request={"name": project_path(project)}, **bounded())
        )
    except gexc.PermissionDenied as err:
        add("alert-policies", project_path(project), None,
            f"not checked: reading alert policies needs roles/monitoring.viewer "
            f"({error_detail(err)})")  # fmt: skip
        return findings
    except (gexc.GoogleAPICallError, gexc.RetryError) as err:
        add("alert-policies", project_path(project), None,
            f"not checked: Cloud Monitoring did not answer ({error_detail(err)})")  # fmt: skip
        return findings

    by_name: dict[str, list[Any]] = {}
    for policy in live:
        by_name.setdefault(policy.display_name, []).append(policy)
    wanted_channels = set(topology.alerting.existing_channels)
    for spec in declared:
        name = spec.display_name
        found = by_name.get(name, [])
        if not found:
            add("alert-policy-exists", name, False, "missing: nobody is paged for this")
            continue
        found = sorted(found, key=lambda p: p.name)  # the API promises no order
        policy = found[0]
        ident = policy.name.rsplit("/", 1)[-1]
        if len(found) > 1:
            others = ", ".join(p.name.rsplit("/", 1)[-1] for p in found[1:])
            add("alert-policy-unique", name, False,
                f"{len(found)} policies have this name ({ident}, {others}): checked {ident}; "
                "delete the copies Pulumi does not manage")  # fmt: skip
        enabled = policy.enabled
        add(
            "alert-policy-enabled",
            name,
            enabled is not False,
            f"disabled ({ident}): it never pages" if enabled is False else f"enabled ({ident})",
        )
        for condition in spec.conditions:
            findings += _condition(name, condition, policy.conditions)
        channels = list(policy.notification_channels)
        missing = sorted(wanted_channels - set(channels))
        expected = len(topology.alerting.channels) + len(wanted_channels)
        if not channels:
            detail, ok = "no notification channels: its incidents reach nobody", False
        elif missing:
            detail, ok = f"without the declared channel(s) {', '.join(missing)}", False
        elif len(channels) < expected:
            detail = f"{len(channels)} notification channel(s), the stack declares {expected}"
            ok = False
        else:
            detail, ok = f"{len(channels)} notification channel(s)", True
        add("alert-notification-channels", name, ok, detail)
    return findings


def _condition(policy: str, declared: Any, live_conditions: Any) -> list[Finding]:
    """The live condition on the declared condition's metric filter, its threshold and duration."""
    kind = "condition_absent" if declared.threshold is None else "condition_threshold"
    for condition in live_conditions:
        if kind in condition and getattr(condition, kind).filter == declared.filter:
            live = getattr(condition, kind)
            break
    else:
        return [
            Finding(
                "alert-condition",
                policy,
                f"no condition on {declared.filter!r} (declared as {declared.display_name!r}): "
                "its filter was changed or the condition removed",
                False,
            )
        ]
    found = [Finding("alert-condition", policy, f"{declared.display_name}: present", True)]
    if declared.threshold is not None:
        have = float(live.threshold_value)
        found.append(
            Finding(
                "alert-threshold",
                policy,
                f"{declared.display_name}: {have:g}, the stack declares {declared.threshold:g}",
                have == declared.threshold,
            )
        )
    if declared.threshold is not None:
        comparison = live.comparison.name
        detail = f"{declared.display_name}: {comparison}, the stack declares COMPARISON_GT"
        found.append(Finding("alert-comparison", policy, detail, comparison == "COMPARISON_GT"))
    if declared.alignment_period is not None:
        periods = [_seconds(a.alignment_period) for a in live.aggregations]
        shown = ", ".join(live_diff.shown_duration(p) for p in periods) or "none"
        found.append(
            Finding(
                "alert-alignment",
                policy,
                f"{declared.display_name}: aligned over {shown}, the stack declares "
                f"{live_diff.shown_duration(declared.alignment_period)}",
                periods == [declared.alignment_period],
            )
        )
    have_s = _seconds(live.duration)
    found.append(
        Finding(
            "alert-duration",
            policy,
            f"{declared.display_name}: for {live_diff.shown_duration(have_s)}, the stack declares "
            f"{live_diff.shown_duration(declared.duration)}",
            have_s == declared.duration,
        )
    )
    return found


def _unknown(subscriber: Any, path: str, dead_letter: bool) -> str:
    """What an undeclared subscription on the events (or dead-letter) topic means."""
    from google.api_core import exceptions as gexc

    from events_infra.pubsub.api_calls import bounded

    where = "the dead-letter topic" if dead_letter else "the events topic"
    try:
        live = subscriber.get_subscription(subscription=path, **bounded())
    except (gexc.GoogleAPICallError, gexc.RetryError):
        return f"not declared by the stack, on {where}; its filter could not be read"
    if live.filter:
        return f"not declared by the stack, on {where}; filtered: {live.filter!r}"
    receives = "a copy of every dead letter" if dead_letter else "every event and replayed copy"
    return f"not declared by the stack, on {where}; unfiltered: it receives {receives}"


def _ok_detail(field: str, retention: float) -> str:
    if field == "expiration":
        return "never expires"
    if field == "message_retention":
        return f"{human_duration(retention)} retained, as the stack declares"
    return "as the stack declares"


def _members(policy: Any, role: str) -> list[str]:
    return [m for binding in policy.bindings if binding.role == role for m in binding.members]
