"""Least-privilege access under Pulumi mocks: each binding's role and resource, and a guard
that fails if any grant is project-wide or broad."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from events_infra.components.access import (
    DLQ_SNAPSHOT_PERMISSIONS,
    READ_ONLY_PROJECT_ROLES,
    WRITE_ONLY_METRICS_ROLES,
)
from events_infra.components.offline import PROJECT_NUMBER, Declared, Run, run_program, stack_config
from events_infra.stack_config.topology import TopologyError, parse_topology

STACKS = Path(__file__).resolve().parent.parent / "stacks"
ACCOUNT = "gcp:serviceaccount/account:Account"
TOPIC_MEMBER = "gcp:pubsub/topicIAMMember:TopicIAMMember"
SUB_MEMBER = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
SQL_USER = "gcp:sql/user:User"
BROAD_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/pubsub.admin",
    "roles/pubsub.editor",
    "roles/cloudsql.admin",
    "roles/iam.securityAdmin",
}
EVENTS_TOPIC = "projects/cotton-erp/topics/events"
RELAY = "serviceAccount:events-relay@cotton-erp.iam.gserviceaccount.com"


def engine(config: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def grants_of(run: Run, member: str) -> set[tuple[str, str]]:
    """(role, resource) for every grant to `member`; project-level ones as `project`."""
    found = set()
    for r in run.resources:
        if r.inputs.get("member") != member:
            continue
        if r.type == TOPIC_MEMBER:
            found.add((r.inputs["role"], r.inputs["topic"]))
        elif r.type == SUB_MEMBER:
            found.add((r.inputs["role"], r.inputs["subscription"]))
        elif r.type == PROJECT_MEMBER:
            found.add((r.inputs["role"], "project"))
    return found


def test_relay_can_publish_and_use_the_outbox_database_only(prod: Run) -> None:
    account = prod.named("access-relay")
    assert account.inputs["accountId"] == "events-relay"
    assert grants_of(prod, RELAY) == {
        ("roles/pubsub.publisher", EVENTS_TOPIC),
        ("roles/cloudsql.client", "project"),
        ("roles/cloudsql.instanceUser", "project"),
        ("roles/monitoring.metricWriter", "project"),  # its backlog/age metrics, write-only
    }
    for name in ("access-relay-client", "access-relay-instanceuser"):
        condition = prod.named(name).inputs["condition"]
        assert condition["expression"] == (
            'resource.name == "projects/cotton-erp/instances/events-outbox"'
        )
    publisher = prod.named("access-relay-publisher")
    assert publisher.replace_with == [prod.named("events-topic").urn]


def test_relay_is_an_iam_database_user_with_the_relay_role(prod: Run) -> None:
    user = prod.named("access-relay-database-user")
    assert user.inputs["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user.inputs["name"] == "events-relay@cotton-erp.iam"
    assert user.inputs["databaseRoles"] == ["events_outbox_relay"]
    assert user.inputs["instance"] == "events-outbox"
    assert prod.named("outbox-schema").urn in user.dependencies  # the role exists by then


def test_each_consumer_subscribes_to_its_own_subscription_only(prod: Run) -> None:
    expected = {
        "events-sub": "events-consumer",  # set in the stack's access.consumers
        "matching-engine": "matching-engine-consumer",  # derived default
        "notifications": "notifications-consumer",
    }
    for sub, account_id in expected.items():
        assert prod.named(f"access-consumer-{sub}").inputs["accountId"] == account_id
        member = f"serviceAccount:{account_id}@cotton-erp.iam.gserviceaccount.com"
        assert grants_of(prod, member) == {
            ("roles/pubsub.subscriber", f"projects/cotton-erp/subscriptions/{sub}"),
            # the consumer library reads its subscription; it never publishes to the DLQ
            ("roles/pubsub.viewer", f"projects/cotton-erp/subscriptions/{sub}"),
        }


def dlq_topic_publishers(run: Run) -> set[str]:
    return {
        str(r.inputs["member"])
        for r in run.of_type(TOPIC_MEMBER)
        if r.inputs["topic"] == "projects/cotton-erp/topics/events-dlq"
        and r.inputs["role"] == "roles/pubsub.publisher"
    }


def test_only_pubsub_and_the_replayer_can_put_a_letter_in_the_dlq(prod: Run) -> None:
    """Replay routes a letter by its source subscription: anyone who could publish to the DLQ
    topic could have a forged event delivered to one chosen subscription. Only Pub/Sub's own
    service agent (dead-lettering) and the replayer (`dlq restore`) may."""
    agent = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
    replayer = "serviceAccount:events-replayer@cotton-erp.iam.gserviceaccount.com"
    assert dlq_topic_publishers(prod) == {agent, replayer}


def test_dlq_operators_impersonate_the_replayer_and_hold_nothing_else(prod: Run) -> None:
    group = "group:oncall@cotton-erp.com"
    assert grants_of(prod, group) == set()  # no standing publish right on the live topic
    [impersonation] = [
        r for r in prod.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if r.inputs["member"] == group
    ]  # fmt: skip
    assert impersonation.inputs["role"] == "roles/iam.serviceAccountTokenCreator"
    assert prod.named("access-replayer").inputs["accountId"] == "events-replayer"
    replayer = "serviceAccount:events-replayer@cotton-erp.iam.gserviceaccount.com"
    assert grants_of(prod, replayer) == {
        ("roles/pubsub.subscriber", "projects/cotton-erp/subscriptions/events-dlq-sub"),
        ("roles/pubsub.viewer", "projects/cotton-erp/subscriptions/events-dlq-sub"),
        ("roles/pubsub.publisher", EVENTS_TOPIC),
        ("roles/pubsub.viewer", EVENTS_TOPIC),  # dlq doctor lists its subscriptions
        ("roles/pubsub.publisher", "projects/cotton-erp/topics/events-dlq"),  # restore --journal
        ("roles/pubsub.viewer", "projects/cotton-erp/topics/events-dlq"),  # dlq doctor
        *{
            ("roles/pubsub.viewer", f"projects/cotton-erp/subscriptions/{sub}")
            for sub in ("events-sub", "matching-engine", "notifications")
        },
        ("roles/monitoring.viewer", "project"),
        ("projects/cotton-erp/roles/eventsDlqOperator", "project"),
    }
    [role] = prod.of_type(CUSTOM_ROLE)
    assert sorted(role.inputs["permissions"]) == sorted(DLQ_SNAPSHOT_PERMISSIONS)
    assert all(p.startswith("pubsub.snapshots.") for p in role.inputs["permissions"])


def broad_or_project_wide(run: Run) -> list[str]:
    """Every grant that is broad, authoritative, or project-wide without a good reason."""
    custom_roles = {r.id: r for r in run.of_type(CUSTOM_ROLE)}
    problems = []
    for r in run.resources:
        if r.type.endswith(("IAMPolicy", "IAMBinding")):
            problems.append(f"{r.name}: authoritative {r.type}")
        role = r.inputs.get("role", "")
        if role in BROAD_ROLES:
            problems.append(f"{r.name}: broad role {role}")
        if r.type == PROJECT_MEMBER:
            scoped = "condition" in r.inputs and "resource.name ==" in str(r.inputs["condition"])
            read_only = role in READ_ONLY_PROJECT_ROLES | WRITE_ONLY_METRICS_ROLES
            snapshots_only = role in custom_roles and all(
                p.startswith("pubsub.snapshots.") for p in custom_roles[role].inputs["permissions"]
            )
            if not (scoped or read_only or snapshots_only):
                problems.append(f"{r.name}: project-wide {role} for {r.inputs['member']}")
    return problems


@pytest.mark.parametrize("path", sorted(STACKS.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_no_grant_is_broad_or_project_wide(path: Path) -> None:
    run = run_program(stack_config(path))
    assert broad_or_project_wide(run) == []


def test_the_guard_catches_a_project_wide_grant() -> None:
    """The guard above must be able to fail: feed it a project-wide pubsub.subscriber."""
    bad = Declared(
        type=PROJECT_MEMBER,
        name="oops",
        urn="urn:oops",
        id="oops",
        inputs={"role": "roles/pubsub.subscriber", "member": "user:a@b.c", "project": "p"},
        protect=False,
        parent="",
        replace_with=[],
        dependencies=[],
    )
    editor = Declared(
        **{**bad.__dict__, "name": "ed", "inputs": {**bad.inputs, "role": "roles/editor"}}
    )
    assert broad_or_project_wide(Run(resources=[bad, editor])) == [
        "oops: project-wide roles/pubsub.subscriber for user:a@b.c",
        "ed: broad role roles/editor",
        "ed: project-wide roles/editor for user:a@b.c",
    ]


def test_existing_consumer_identity_is_used_not_created(prod_config: dict[str, Any]) -> None:
    existing = "billing@other-project.iam.gserviceaccount.com"
    prod_config["events-infra:access"] = {"consumers": {"notifications": existing}}
    run = run_program(engine(prod_config))
    with pytest.raises(AssertionError):
        run.named("access-consumer-notifications")
    assert grants_of(run, f"serviceAccount:{existing}") == {
        ("roles/pubsub.subscriber", "projects/cotton-erp/subscriptions/notifications"),
        ("roles/pubsub.viewer", "projects/cotton-erp/subscriptions/notifications"),
    }


def test_push_subscriptions_get_no_consumer_grant(prod_config: dict[str, Any]) -> None:
    prod_config["events-infra:subscriptions"].append(
        {"name": "webhooks", "push_endpoint": "https://hooks.example.invalid/e"}
    )
    run = run_program(engine(prod_config))
    assert not [r for r in run.resources if "consumer-webhooks" in r.name]


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            {"dlq_operators": ["oncall@cotton-erp.com"]},
            "events-infra:access.dlq_operators[0]: 'oncall@cotton-erp.com' is not an IAM member",
        ),
        (
            {"consumers": {"billing": "billing-consumer"}},
            "events-infra:access.consumers.billing: no subscription 'billing' in this stack",
        ),
        ({"relay": "Relay"}, "events-infra:access.relay: 'Relay' is neither a service account id"),
    ],
)
def test_access_validation(access: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology({"subscriptions": [{"name": "orders"}], "access": access}, "cotton-erp")
    assert message in info.value.problems[0]


def test_writers_log_in_as_the_outbox_writer_role_on_the_outbox_instance_only(prod: Any) -> None:
    """`access.writers`: the services writing events get INSERT on the outbox and nothing else
    (migration 0002's role; tests/test_outbox_writers.py logs in as it on real PostgreSQL)."""
    user = prod.named("access-writer-events-writer-database-user")
    assert user.inputs["databaseRoles"] == ["events_outbox_writer"]
    assert user.inputs["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user.inputs["name"] == "events-writer@cotton-erp.iam"
    assert prod.named("outbox-schema").urn in user.dependencies  # the role exists by then
    for role in ("client", "instanceuser"):
        grant = prod.named(f"access-writer-events-writer-{role}")
        assert grant.inputs["condition"]["expression"] == (
            'resource.name == "projects/cotton-erp/instances/events-outbox"'
        )


def test_the_application_password_user_gets_the_writer_role(dev: Any) -> None:
    [user] = [r for r in dev.of_type("gcp:sql/user:User") if r.inputs.get("type") == "BUILT_IN"]
    assert user.inputs["databaseRoles"] == ["events_outbox_writer"]
    assert any("schema" in urn for urn in user.dependencies)  # the role exists by then
