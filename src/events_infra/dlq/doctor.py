"""`dlq doctor`: the live Pub/Sub configuration against the stack model, naming each silent
failure mode (things that look fine until a message should have been dead-lettered)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.paths import subscription_path, topic_path
from events_infra.stack_config.topology import StackConfig

_AGENT = re.compile(r"^serviceAccount:service-\d+@gcp-sa-pubsub\.iam\.gserviceaccount\.com$")


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str
    detail: str
    ok: bool | None
    """None: could not be checked with the caller's permissions (not a problem found)."""


def _seconds(duration: Any) -> float:
    if hasattr(duration, "total_seconds"):
        return float(duration.total_seconds())
    return float(getattr(duration, "seconds", 0)) + getattr(duration, "nanos", 0) / 1e9


def _never_expires(sub: Any) -> bool:
    # "never" is an expiration policy without a ttl; no policy at all means 31 days
    if "expiration_policy" not in sub:
        return False
    return "ttl" not in sub.expiration_policy or _seconds(sub.expiration_policy.ttl) == 0


def diagnose(
    publisher: Any, subscriber: Any, target: DlqTarget, topology: StackConfig, check_iam: bool
) -> list[Finding]:
    from google.api_core.exceptions import NotFound

    from events_infra.pubsub.api_calls import bounded

    limits = bounded()  # every call gives up in seconds, not after the client's 10 minutes
    findings: list[Finding] = []

    def add(check: str, resource: str, ok: bool | None, detail: str) -> None:
        findings.append(Finding(check, resource, detail, ok))

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

    project = target.project
    dlq_topic = topic_path(project, topology.dead_letter.topic)
    try:
        publisher.get_topic(topic=dlq_topic, **limits)
        attached = list(publisher.list_topic_subscriptions(topic=dlq_topic, **limits))
        add(
            "dead-letter-topic-has-subscription",
            dlq_topic,
            bool(attached),
            f"{len(attached)} subscription(s)"
            if attached
            else "no subscription: everything dead-lettered is dropped",
        )
    except NotFound:
        add("dead-letter-topic-exists", dlq_topic, False, "missing: dead-lettering fails")

    try:
        dlq_sub = subscriber.get_subscription(subscription=target.subscription_path, **limits)
        add(
            "subscription-never-expires",
            target.subscription_path,
            _never_expires(dlq_sub),
            "never expires" if _never_expires(dlq_sub) else "expires after 31 idle days",
        )
        retention = _seconds(dlq_sub.message_retention_duration)
        wanted = topology.dead_letter.message_retention
        add(
            "dead-letter-retention",
            target.subscription_path,
            retention >= wanted,
            f"{retention:.0f}s retained, model says {wanted:.0f}s",
        )
    except NotFound:
        add("dead-letter-subscription-exists", target.subscription_path, False, "missing")

    for model in topology.subscriptions:
        path = subscription_path(project, model.name)
        try:
            live = subscriber.get_subscription(subscription=path, **limits)
        except NotFound:
            add("subscription-exists", path, False, "missing")
            continue
        policy = live.dead_letter_policy if "dead_letter_policy" in live else None
        if policy is None or not policy.dead_letter_topic:
            add("dead-letter-policy", path, False, "no dead-letter policy: failures retry forever")
        else:
            add(
                "dead-letter-topic",
                path,
                policy.dead_letter_topic == dlq_topic,
                f"dead-letters to {policy.dead_letter_topic}",
            )
            add(
                "max-delivery-attempts",
                path,
                policy.max_delivery_attempts == model.max_delivery_attempts,
                f"{policy.max_delivery_attempts}, model says {model.max_delivery_attempts}",
            )
        retry = live.retry_policy if "retry_policy" in live else None
        live_backoff = (
            (_seconds(retry.minimum_backoff), _seconds(retry.maximum_backoff)) if retry else None
        )
        add(
            "retry-backoff",
            path,
            live_backoff == (model.min_backoff, model.max_backoff),
            f"{live_backoff or 'no retry policy (immediate redelivery)'}, model says "
            f"{(model.min_backoff, model.max_backoff)}",
        )
        add(
            "subscription-never-expires",
            path,
            _never_expires(live),
            "never expires" if _never_expires(live) else "expires after 31 idle days",
        )
        matches = live.filter == model.delivery_filter
        if not model.replay_filter and matches:
            detail = (
                "accepted: no replay filter (replay_filter: false), so every replayed copy "
                "reaches it, also those targeted at other subscriptions (consumers dedupe)"
            )
        elif matches:
            detail = "targeted replay works"
        else:
            detail = f"filter is {live.filter!r}: replays would reach the wrong subscriptions"
        add("replay-filter", path, matches, detail)
        if check_iam:
            agent_check(subscriber, path, "roles/pubsub.subscriber")

    if check_iam:
        agent_check(publisher, dlq_topic, "roles/pubsub.publisher")
    return findings


def _members(policy: Any, role: str) -> list[str]:
    return [m for binding in policy.bindings if binding.role == role for m in binding.members]
