"""`eventsctl dlq doctor` on the emulator: a healthy stack passes; each broken state, created
for real, is reported by name with exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.db.sql_admin import SQLADMIN_ENDPOINT_ENV
from events_infra.dlq.clients import MONITORING_ENDPOINT_ENV
from events_infra.stack_config.topology import merge_labels
from tests.support.dlq_support import DlqStack, make_stack
from tests.support.monitoring_server import MetricServiceServer
from tests.support.sqladmin_server import SqlAdminServer, live_instance

runner = CliRunner()


def doctor(stack: DlqStack) -> tuple[int, list[dict[str, Any]]]:
    out = runner.invoke(app, ["dlq", "doctor", *stack.cli_args(), "--json"])
    crashed = out.exception is not None and not isinstance(out.exception, SystemExit)
    assert out.exit_code in (0, 1) and not crashed, (out.output, out.exception)
    return out.exit_code, json.loads(out.stdout)


def failures(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["check"], r["resource"].rsplit("/", 1)[-1]) for r in rows if r["ok"] is False}


def recreate(stack: DlqStack, name: str, **request: Any) -> None:
    """Delete and create `name` again from `request` (the emulator's way to change what
    cannot be updated), keeping the labels it was provisioned with unless `request` sets them."""
    path = stack.subscription(name)
    labels = dict(stack.subscriber.get_subscription(subscription=path).labels)
    stack.subscriber.delete_subscription(subscription=path)
    stack.subscriber.create_subscription(request={"name": path, "labels": labels, **request})


SUBSCRIPTION_CHECKS = {
    "subscription-topic", "replay-filter", "message-ordering", "dead-letter-policy",
    "retry-backoff", "ack-deadline", "exactly-once", "push-config", "retain-acked",
    "message-retention", "subscription-never-expires", "labels",
}  # fmt: skip
"""Every field the program sets on a consumer subscription, one check each."""


def test_healthy_stack_passes(pubsub: str, tmp_path: Path) -> None:
    stack = make_stack(tmp_path, shorten_backoff=False)
    code, rows = doctor(stack)
    assert failures(rows) == set()
    assert code == 0
    checks: dict[str, set[str]] = {}
    for r in rows:
        checks.setdefault(r["resource"].rsplit("/", 1)[-1], set()).add(r["check"])
    for name in ("orders-sub", "billing-sub", "audit-sub"):
        assert checks[name] == SUBSCRIPTION_CHECKS
    assert {"dead-letter-retention", "subscription-never-expires", "dead-letter-policy",
            "labels"} <= checks["events-dlq-sub"]  # fmt: skip
    assert checks["events"] == {"topic-retention", "kms-key", "labels"}
    assert {"dead-letter-topic-has-subscription", "kms-key", "labels"} <= checks["events-dlq"]
    # no Cloud Monitoring on the emulator: the alert policies are "not checked", not failed
    [alerts] = [r for r in rows if r["check"] == "alert-policies"]
    assert alerts["ok"] is None and "EVENTSCTL_MONITORING_ENDPOINT" in alerts["detail"]


RETRY = {"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 600}}
"""The stack file's backoff (the model's default, 10–600 s): breakages keep it unless testing it."""


SLOW_RETRY = {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}}


def _dead_letter_policy(stack: DlqStack, attempts: int = 5) -> dict[str, Any]:
    return {"dead_letter_topic": stack.dlq_topic, "max_delivery_attempts": attempts}


def _no_dead_letter_policy(stack: DlqStack) -> None:
    recreate(stack, "orders-sub", topic=stack.topic, expiration_policy={},
             filter=stack.topology.subscription("orders-sub").delivery_filter,
             retry_policy=RETRY)  # fmt: skip


def _wrong_attempts(stack: DlqStack) -> None:
    sub = stack.topology.subscription("billing-sub")
    recreate(stack, "billing-sub", topic=stack.topic, expiration_policy={},
             filter=sub.delivery_filter,
             dead_letter_policy=_dead_letter_policy(stack, 10),
             retry_policy=RETRY)  # fmt: skip


def _wrong_backoff(stack: DlqStack) -> None:
    sub = stack.topology.subscription("audit-sub")
    recreate(stack, "audit-sub", topic=stack.topic, expiration_policy={},
             filter=sub.delivery_filter,
             dead_letter_policy=_dead_letter_policy(stack),
             retry_policy=SLOW_RETRY)  # fmt: skip


def _dead_letter_topic_without_subscription(stack: DlqStack) -> None:
    stack.subscriber.delete_subscription(subscription=stack.dlq_subscription)


def _expiring_subscription(stack: DlqStack) -> None:
    sub = stack.topology.subscription("orders-sub")
    recreate(stack, "orders-sub", topic=stack.topic, filter=sub.delivery_filter,
             expiration_policy={"ttl": {"seconds": 31 * 86400}},
             dead_letter_policy=_dead_letter_policy(stack), retry_policy=RETRY)  # fmt: skip


def _short_retention(stack: DlqStack) -> None:
    name = stack.topology.dead_letter.subscription
    recreate(stack, name, topic=stack.dlq_topic, expiration_policy={},
             message_retention_duration={"seconds": 3600})  # fmt: skip


def _wrong_filter(stack: DlqStack) -> None:
    recreate(stack, "billing-sub", topic=stack.topic, expiration_policy={},
             dead_letter_policy=_dead_letter_policy(stack), retry_policy=RETRY)  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_no_dead_letter_policy, {("dead-letter-policy", "orders-sub")}),
        (_wrong_attempts, {("dead-letter-policy", "billing-sub")}),
        (_wrong_backoff, {("retry-backoff", "audit-sub")}),
        (
            _dead_letter_topic_without_subscription,
            {
                ("dead-letter-topic-has-subscription", "events-dlq"),
                ("dead-letter-subscription-exists", "events-dlq-sub"),
            },
        ),
        (_expiring_subscription, {("subscription-never-expires", "orders-sub")}),
        (_short_retention, {("dead-letter-retention", "events-dlq-sub")}),
        (_wrong_filter, {("replay-filter", "billing-sub")}),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_each_broken_state_is_named(
    pubsub: str,
    tmp_path: Path,
    breakage: Callable[[DlqStack], None],
    expected: set[tuple[str, str]],
) -> None:
    stack = make_stack(tmp_path, shorten_backoff=False)
    breakage(stack)
    code, rows = doctor(stack)
    assert failures(rows) == expected
    assert code == 1


def test_unreadable_iam_policies_are_not_checked_rather_than_failed(
    pubsub: str, tmp_path: Path, strict_proxy: Any
) -> None:
    """The DLQ operator grants let doctor read topics and subscriptions but not IAM policies:
    Pub/Sub answers PERMISSION_DENIED (injected here, as the emulator has no IAM). The IAM checks
    say so; they do not blame the grants with a failure."""
    from events_infra.dlq.clients import publisher_client, subscriber_client
    from events_infra.dlq.doctor import diagnose
    from events_infra.dlq.target import resolve

    stack = make_stack(tmp_path, shorten_backoff=False)
    target = resolve(stack.name, stack.topology, None, None, None)
    strict_proxy.fail("GetIamPolicy", "PERMISSION_DENIED", count=4)
    findings = diagnose(
        publisher_client(), subscriber_client(), target, stack.topology, check_iam=True
    )
    iam = [f for f in findings if f.check.startswith("service-agent-")]
    assert len(iam) == 4 and all(f.ok is None for f in iam)
    assert all("not checked: reading IAM policies needs" in f.detail for f in iam)
    assert [f for f in findings if f.ok is False] == []


# --- drift: a console edit after provisioning -----------------------------------------------


def test_edits_after_provisioning_are_each_named(pubsub: str, tmp_path: Path) -> None:
    """What a console edit does, made the way the console makes it (UpdateSubscription, a new
    subscription): the dead-letter policy removed from one subscription, another's ack deadline
    changed, a foreign subscription on the events topic and one on the dead-letter topic.
    Doctor names each, with the class of change putting it back needs, and nothing else."""
    stack = make_stack(tmp_path, shorten_backoff=False)
    stack.subscriber.update_subscription(
        request={
            # a path in the mask with the field unset clears it (the API's update semantics)
            "subscription": {"name": stack.subscription("orders-sub")},
            "update_mask": {"paths": ["dead_letter_policy"]},
        }
    )
    stack.subscriber.update_subscription(
        request={
            "subscription": {"name": stack.subscription("billing-sub"), "ack_deadline_seconds": 30},
            "update_mask": {"paths": ["ack_deadline_seconds"]},
        }
    )
    stack.subscriber.create_subscription(
        request={"name": stack.subscription("foreign-sub"), "topic": stack.topic}
    )
    stack.subscriber.create_subscription(
        request={
            "name": stack.subscription("dlq-tap"),
            "topic": stack.dlq_topic,
            "filter": 'attributes.kind = "trade"',
        }
    )
    code, rows = doctor(stack)
    assert code == 1
    assert failures(rows) == {
        ("dead-letter-policy", "orders-sub"),
        ("ack-deadline", "billing-sub"),
        ("unknown-subscription", "foreign-sub"),
        ("unknown-subscription", "dlq-tap"),
    }
    found = {(r["check"], r["resource"].rsplit("/", 1)[-1]): r for r in rows if r["ok"] is False}
    policy = found[("dead-letter-policy", "orders-sub")]
    assert policy["detail"].startswith("is (none: failures retry forever), the stack declares")
    assert policy["change"] == "in place"
    deadline = found[("ack-deadline", "billing-sub")]
    assert deadline["detail"].startswith("is 30s, the stack declares 10s")
    assert "unfiltered" in found[("unknown-subscription", "foreign-sub")]["detail"]
    tap = found[("unknown-subscription", "dlq-tap")]["detail"]
    assert "dead-letter topic" in tap and "filtered: 'attributes.kind = \"trade\"'" in tap

    human = runner.invoke(app, ["dlq", "doctor", *stack.cli_args()])
    assert human.exit_code == 1
    for name in ("orders-sub", "billing-sub", "foreign-sub", "dlq-tap"):
        assert name in human.stdout
    assert "4 problem(s) found" in human.stderr


def test_a_subscription_named_foreign_is_known_not_drift(pubsub: str, tmp_path: Path) -> None:
    """Another team's subscription the stack lists in `foreign_subscriptions` is reported as
    known (ok); one it does not list is still unknown."""
    stack = make_stack(
        tmp_path, shorten_backoff=False, **{"events-infra:foreign_subscriptions": ["billing-team"]}
    )
    for name in ("billing-team", "stranger"):
        stack.subscriber.create_subscription(
            request={"name": stack.subscription(name), "topic": stack.topic}
        )
    code, rows = doctor(stack)
    assert code == 1
    assert failures(rows) == {("unknown-subscription", "stranger")}
    [known] = [r for r in rows if r["resource"].endswith("/billing-team")]
    assert known["check"] == "foreign-subscription" and known["ok"] is True
    assert known["detail"].startswith("known (foreign_subscriptions): on the events topic")


# --- alert policies, read through the real Monitoring client from a loopback server ----------

POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "notificationChannels/42"
ALERTING = {
    "dlq_backlog": {"threshold": 5},
    "dead_letter_rate": {},
    "oldest_unacked": {},
    "dlq_retention": {},
}


def alerting_stack(tmp_path: Path) -> DlqStack:
    stack = make_stack(tmp_path, shorten_backoff=False)
    config = {**ALERTING, "existing_channels": [f"projects/{stack.project}/{CHANNEL}"]}
    path = stack.stacks_dir / f"Pulumi.{stack.name}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["events-infra:alerting"] = config
    path.write_text(yaml.safe_dump(document))
    return stack


def deployed_policies(stack: DlqStack) -> dict[str, Any]:
    """The alert policies `pulumi up` would create for `stack`: the real program under Pulumi's
    mocks, each AlertPolicy's inputs as Monitoring would hold them (display name -> policy)."""
    from google.cloud.monitoring_v3 import types

    from events_infra.components.offline import run_program, stack_config

    config = stack_config(stack.stacks_dir / f"Pulumi.{stack.name}.yaml")
    declared = run_program(config, stack=stack.name).of_type(POLICY)

    def seconds(text: str) -> dict[str, int]:
        return {"seconds": int(text.rstrip("s"))}

    policies = {}
    for n, resource in enumerate(declared):
        inputs = resource.inputs
        conditions = []
        for condition in inputs["conditions"]:
            one: dict[str, Any] = {"display_name": condition["displayName"]}
            if "conditionThreshold" in condition:
                given = condition["conditionThreshold"]
                one["condition_threshold"] = {
                    "filter": given["filter"],
                    "comparison": given["comparison"],
                    "threshold_value": given["thresholdValue"],
                    "duration": seconds(given["duration"]),
                    "aggregations": [
                        {"alignment_period": seconds(a["alignmentPeriod"])}
                        for a in given.get("aggregations", [])
                    ],
                }
            else:
                given = condition["conditionAbsent"]
                one["condition_absent"] = {
                    "filter": given["filter"],
                    "duration": seconds(given["duration"]),
                }
            conditions.append(one)
        policies[inputs["displayName"]] = types.AlertPolicy(
            name=f"projects/{stack.project}/alertPolicies/{1000 + n}",
            display_name=inputs["displayName"],
            enabled=True,
            conditions=conditions,
            notification_channels=inputs.get("notificationChannels", []),
            user_labels=inputs.get("userLabels", {}),
        )
    return policies


def backlog_policy(stack: DlqStack) -> str:
    return f"[{stack.name}] dead letters above 5 in {stack.topology.dead_letter.subscription}"


def test_alert_policies_as_deployed_pass(
    pubsub: str, tmp_path: Path, monitoring: MetricServiceServer
) -> None:
    stack = alerting_stack(tmp_path)
    policies = deployed_policies(stack)
    assert len(policies) == 1 + 3 + 3 + 1  # backlog, rate and age per subscription, retention
    monitoring.alert_policies = list(policies.values())
    code, rows = doctor(stack)
    assert failures(rows) == set()
    assert code == 0
    enabled = {r["resource"] for r in rows if r["check"] == "alert-policy-enabled" and r["ok"]}
    assert enabled == set(policies)
    thresholds = [r for r in rows if r["check"] == "alert-threshold"]
    assert len(thresholds) == len(policies) and all(r["ok"] for r in thresholds)
    assert [r.name for r in monitoring.alert_policy_requests] == [f"projects/{stack.project}"]


def _disabled(policy: Any) -> None:
    policy.enabled = False


def _threshold_raised(policy: Any) -> None:
    policy.conditions[0].condition_threshold.threshold_value = 500


def _duration_changed(policy: Any) -> None:
    policy.conditions[0].condition_threshold.duration = {"seconds": 3600}


def _filter_changed(policy: Any) -> None:
    condition = policy.conditions[0].condition_threshold
    condition.filter = condition.filter.replace("events-dlq-sub", "events-dlq-su")


def _channels_removed(policy: Any) -> None:
    del policy.notification_channels[:]


def _alignment_lengthened(policy: Any) -> None:
    policy.conditions[0].condition_threshold.aggregations[0].alignment_period = {"seconds": 86400}


def _comparison_flipped(policy: Any) -> None:
    policy.conditions[0].condition_threshold.comparison = "COMPARISON_LT"


@pytest.mark.parametrize(
    ("edit", "check"),
    [
        (_disabled, "alert-policy-enabled"),
        (_threshold_raised, "alert-threshold"),
        (_duration_changed, "alert-duration"),
        (_filter_changed, "alert-condition"),
        (_channels_removed, "alert-notification-channels"),
        (_alignment_lengthened, "alert-alignment"),
        (_comparison_flipped, "alert-comparison"),
        (None, "alert-policy-exists"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else ("deleted" if v is None else ""),
)
def test_each_alert_policy_edit_is_named(
    pubsub: str,
    tmp_path: Path,
    monitoring: MetricServiceServer,
    edit: Callable[[Any], None] | None,
    check: str,
) -> None:
    """The DLQ backlog policy edited in the console (or deleted): doctor names that policy
    and that check, and nothing else."""
    stack = alerting_stack(tmp_path)
    policies = deployed_policies(stack)
    name = backlog_policy(stack)
    if edit is None:
        del policies[name]
    else:
        edit(policies[name])
    monitoring.alert_policies = list(policies.values())
    code, rows = doctor(stack)
    assert failures(rows) == {(check, name)}
    assert code == 1


def test_alert_policies_monitoring_will_not_show_are_not_checked(
    pubsub: str, tmp_path: Path, monitoring: MetricServiceServer
) -> None:
    """Without roles/monitoring.viewer Monitoring answers PERMISSION_DENIED: the policies are
    "not checked", the rest of doctor still runs and passes."""
    stack = alerting_stack(tmp_path)
    monitoring.deny_alert_policies = True
    code, rows = doctor(stack)
    assert code == 0
    [row] = [r for r in rows if r["check"].startswith("alert-")]
    assert row["ok"] is None and "roles/monitoring.viewer" in row["detail"]
    assert monitoring.alert_policy_requests  # it was asked, and refused


def test_the_shared_comparison_covers_every_field_it_names() -> None:
    """A subscription and topics differing from the model in everything: the comparison doctor
    and `adopt plan` share reports each field it says it covers (doctor's one row per field),
    and no other."""
    from google.pubsub_v1 import types

    from events_infra.stack_config import live_diff
    from events_infra.stack_config.stack_files import topology_from_config

    topology = topology_from_config(
        {
            "gcp:project": "cotton-erp",
            "events-infra:topic": {"message_retention": "1d"},
            "events-infra:subscriptions": [{"name": "orders-sub"}],
            "events-infra:labels": {"env": "prod"},
        },
        set(),
    )
    events, dlq = "projects/cotton-erp/topics/events", "projects/cotton-erp/topics/events-dlq"
    wrong = types.Subscription(
        name="projects/cotton-erp/subscriptions/orders-sub",
        topic="projects/cotton-erp/topics/other",
        filter='attributes.x = "y"',
        enable_message_ordering=True,
        dead_letter_policy={"dead_letter_topic": events, "max_delivery_attempts": 9},
        retry_policy={"minimum_backoff": {"seconds": 1}},
        ack_deadline_seconds=11,
        enable_exactly_once_delivery=True,
        push_config={"push_endpoint": "https://example.com/push"},
        retain_acked_messages=True,
        message_retention_duration={"seconds": 3600},
        expiration_policy={"ttl": {"seconds": 86400}},
    )
    sub = topology.subscription("orders-sub")
    found = [d.field for d in live_diff.subscription_diff(wrong, sub, events, dlq, topology)]
    assert sorted(found) == sorted(live_diff.SUBSCRIPTION_FIELDS)
    found = [d.field for d in live_diff.dead_letter_subscription_diff(wrong, dlq, topology)]
    assert sorted(found) == sorted(live_diff.DEAD_LETTER_SUBSCRIPTION_FIELDS)
    topic = types.Topic(name=events, kms_key_name="projects/p/locations/l/keyRings/r/cryptoKeys/k")
    found = [d.field for d in live_diff.topic_diff(topic, topology)]
    assert sorted(found) == sorted(live_diff.TOPIC_FIELDS)


def test_a_monitoring_endpoint_off_loopback_is_one_line_exit_2(
    pubsub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in endpoint is used without TLS or credentials: anything but loopback is
    refused before a call is made, in one line."""
    stack = make_stack(tmp_path)
    monkeypatch.setenv(MONITORING_ENDPOINT_ENV, "monitoring.example.com:443")
    out = runner.invoke(app, ["dlq", "doctor", *stack.cli_args()])
    assert out.exit_code == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {MONITORING_ENDPOINT_ENV}=monitoring.example.com:443")
    assert "Traceback" not in out.output


# --- Cloud SQL, read through the real Cloud SQL Admin client from a loopback server -----------

OUTBOX_DB = {
    "region": "asia-south1",
    "instance": "events-outbox",
    "database": "events",
    "retained_backups": 7,
    "migration_principal": "deployer@example.iam.gserviceaccount.com",
}


def as_declared(stack: DlqStack, server: SqlAdminServer, **changed: Any) -> None:
    """The stack's instance as OutboxDatabase makes it (from the model), with `changed`."""
    db = stack.topology.database
    assert db is not None
    fields: dict[str, Any] = {
        "region": db.region, "version": db.database_version, "tier": db.tier,
        "edition": db.edition, "availability": db.availability_type,
        "retained": db.retained_backups, "log_days": db.transaction_log_retention_days,
        "network": db.private_network or "", "deletion_protection": stack.topology.production,
        "flags": {"cloudsql.iam_authentication": "on"}, "public_ip": not db.private_ip_only,
        "start_time": db.backup_start_time,
        "labels": merge_labels(stack.topology.labels, db.labels),
    }  # fmt: skip
    live_instance(server, stack.project, db.instance, **(fields | changed))


def test_cloud_sql_edits_are_each_named(
    pubsub: str, tmp_path: Path, sqladmin: SqlAdminServer
) -> None:
    """A console edit on the outbox instance (PITR off, a smaller tier, fewer backups kept
    than declared is fine, more is data to lose) and a dropped database: doctor names each,
    and every other field the program sets passes."""
    stack = make_stack(tmp_path, **{"events-infra:database": OUTBOX_DB})
    as_declared(stack, sqladmin, pitr=False, tier="db-custom-4-15360", retained=30)
    code, rows = doctor(stack)
    assert code == 1
    sql = {r["check"]: r for r in rows if r["check"].startswith("cloud-sql")}
    assert {c for c, r in sql.items() if r["ok"] is False} == {
        "cloud-sql-point-in-time-recovery", "cloud-sql-tier", "cloud-sql-retained-backups",
        "cloud-sql-database",
    }  # fmt: skip
    assert sql["cloud-sql-tier"]["detail"].startswith("is db-custom-4-15360, the stack declares")
    assert "restarts the instance" in sql["cloud-sql-tier"]["detail"]
    assert sql["cloud-sql-tier"]["change"] == "in place, restarts"
    assert sql["cloud-sql-retained-backups"]["change"] == "in place, loses data"
    assert sql["cloud-sql-database"]["detail"].startswith("missing")
    assert len([c for c in sql if c not in ("cloud-sql-database",)]) == 16  # every field
    sqladmin.add_database(stack.project, "events-outbox", "events")
    as_declared(stack, sqladmin)
    code, rows = doctor(stack)
    assert [r for r in rows if r["check"].startswith("cloud-sql") and r["ok"] is not True] == []


def test_cloud_sql_unreadable_or_absent_is_not_checked_or_named(
    pubsub: str, tmp_path: Path, sqladmin: SqlAdminServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(tmp_path, **{"events-infra:database": OUTBOX_DB})
    code, rows = doctor(stack)
    assert code == 1
    [missing] = [r for r in rows if r["check"] == "cloud-sql-instance"]
    assert missing["ok"] is False and "missing: `pulumi up` creates it" in missing["detail"]
    sqladmin.deny = True
    _, rows = doctor(stack)
    [denied] = [r for r in rows if r["check"] == "cloud-sql-instance"]
    assert denied["ok"] is None and "roles/cloudsql.viewer" in denied["detail"]
    monkeypatch.delenv(SQLADMIN_ENDPOINT_ENV)  # the emulator alone: no Cloud SQL to read
    _, rows = doctor(stack)
    [local] = [r for r in rows if r["check"].startswith("cloud-sql")]
    assert local["ok"] is None and "EVENTSCTL_SQLADMIN_ENDPOINT" in local["detail"]


def test_a_services_own_instance_is_checked_for_what_the_stack_relies_on(
    pubsub: str, tmp_path: Path, sqladmin: SqlAdminServer
) -> None:
    existing = {
        "existing": True, "region": "asia-south1", "instance": "erp-main", "database": "trading",
        "migration_principal": "deployer@example.iam.gserviceaccount.com",
    }  # fmt: skip
    stack = make_stack(tmp_path, **{"events-infra:database": existing})
    live_instance(sqladmin, stack.project, "erp-main", region="asia-south1", flags={}, network="")
    sqladmin.add_database(stack.project, "erp-main", "trading")
    code, rows = doctor(stack)
    assert code == 1
    [need] = [r for r in rows if r["check"] == "cloud-sql-prerequisite"]
    assert need["detail"].startswith(
        "flag cloudsql.iam_authentication is (unset), the stack needs on"
    )
    live_instance(sqladmin, stack.project, "erp-main", region="asia-south1", network="")
    _, rows = doctor(stack)
    [ok] = [r for r in rows if r["check"].startswith("cloud-sql-prereq")]
    assert (ok["check"], ok["ok"]) == ("cloud-sql-prerequisites", True)
    assert not [r for r in rows if r["check"] == "cloud-sql-tier"]  # never managed: not compared


def test_a_subscription_from_another_project_is_named_by_its_path(
    pubsub: str, tmp_path: Path
) -> None:
    """Other teams subscribe from their own projects; doctor names the full path, and a
    full path in foreign_subscriptions makes it known."""
    stack = make_stack(tmp_path, shorten_backoff=False)
    theirs = f"projects/other-{stack.project[5:]}/subscriptions/their-sub"
    stack.subscriber.create_subscription(request={"name": theirs, "topic": stack.topic})
    code, rows = doctor(stack)
    assert code == 1
    [unknown] = [r for r in rows if r["check"] == "unknown-subscription"]
    assert unknown["resource"] == theirs
    human = runner.invoke(app, ["dlq", "doctor", *stack.cli_args()], env={"COLUMNS": "300"})
    assert theirs in human.stdout  # not cut to the last segment
    known = make_stack(tmp_path, shorten_backoff=False, **{"gcp:project": stack.project,
                       "events-infra:foreign_subscriptions": [theirs]})  # fmt: skip
    code, rows = doctor(known)
    assert [r["check"] for r in rows if r["resource"] == theirs] == ["foreign-subscription"]


def test_fail_unchecked_turns_what_could_not_be_read_into_exit_3(
    pubsub: str, tmp_path: Path
) -> None:
    stack = make_stack(tmp_path, shorten_backoff=False)
    plain = runner.invoke(app, ["dlq", "doctor", *stack.cli_args()])
    assert plain.exit_code == 0  # the alert policies are not checked here: not a problem
    strict = runner.invoke(app, ["dlq", "doctor", *stack.cli_args(), "--fail-unchecked"])
    assert strict.exit_code == 3 and "1 not checked" in strict.stderr
