"""The real stack program, run under Pulumi mocks with each committed stack file's config.

Assertions are on what the engine would send to GCP: resource types, counts, explicit names,
delivery settings, filters, IAM members, protect and replace_with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from events_infra.components.offline import PROJECT_NUMBER, Run, resolve, run_program, stack_config
from events_infra.stack_config.stack_files import read_stack_config, topology_from_config
from events_infra.stack_config.topology import REPLAY_TARGET_ATTRIBUTE, StackConfig

STACKS = Path(__file__).resolve().parent.parent / "stacks"
STACK_FILES = sorted(STACKS.glob("Pulumi.*.yaml"))

TOPIC = "gcp:pubsub/topic:Topic"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
TOPIC_MEMBER = "gcp:pubsub/topicIAMMember:TopicIAMMember"
SUB_MEMBER = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
EVENT_BUS = "events-infra:event_bus:EventBus"
AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def bus_part(run: Run) -> Run:
    """The EventBus component and its children only (other components grant IAM too)."""
    [bus] = run.of_type(EVENT_BUS)
    return Run(resources=[r for r in run.resources if r.urn == bus.urn or r.parent == bus.urn])


@pytest.fixture(params=STACK_FILES, ids=stack_name)
def deployed(request: pytest.FixtureRequest) -> tuple[StackConfig, Run]:
    """A committed stack's topology and the EventBus part of what its program declares."""
    path: Path = request.param
    topology = topology_from_config(read_stack_config(path))
    return topology, bus_part(run_program(stack_config(path), stack=stack_name(path)))


def test_both_stacks_are_committed() -> None:
    assert {"dev", "prod"} <= {stack_name(p) for p in STACK_FILES}


def test_resource_counts(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    n = len(topology.subscriptions)
    assert len(run.of_type(EVENT_BUS)) == 1
    assert len(run.of_type(TOPIC)) == 2
    assert len(run.of_type(SUBSCRIPTION)) == n + 1
    assert len(run.of_type(IDENTITY)) == 1
    assert len(run.of_type(TOPIC_MEMBER)) == 1
    assert len(run.of_type(SUB_MEMBER)) == n
    [bus] = run.of_type(EVENT_BUS)
    assert len([r for r in run.resources if r.parent == bus.urn]) == 2 * n + 5


def test_every_child_is_parented_to_the_event_bus(deployed: tuple[StackConfig, Run]) -> None:
    _, run = deployed
    [bus] = run.of_type(EVENT_BUS)
    pubsub = [r for r in run.resources if r.type.startswith(("gcp:pubsub/", "gcp:projects/"))]
    assert pubsub and all(r.parent == bus.urn for r in pubsub)


def test_topics_have_explicit_names(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    topic = run.named("events-topic").inputs
    dlq = run.named("events-dead-letter-topic").inputs
    assert topic["name"] == topology.topic.name
    assert dlq["name"] == topology.dead_letter.topic
    assert topic["project"] == dlq["project"] == topology.project


def test_consumer_subscriptions(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    dlq_topic_id = f"projects/{topology.project}/topics/{topology.dead_letter.topic}"
    topic_id = f"projects/{topology.project}/topics/{topology.topic.name}"
    for sub in topology.subscriptions:
        inputs = run.named(f"events-sub-{sub.name}").inputs
        assert inputs["name"] == sub.name
        assert inputs["topic"] == topic_id
        assert inputs["deadLetterPolicy"] == {
            "deadLetterTopic": dlq_topic_id,
            "maxDeliveryAttempts": sub.max_delivery_attempts,
        }
        assert inputs["retryPolicy"] == {
            "minimumBackoff": sub.min_backoff_gcp,
            "maximumBackoff": sub.max_backoff_gcp,
        }
        assert inputs["expirationPolicy"] == {"ttl": ""}
        assert inputs["ackDeadlineSeconds"] == sub.ack_deadline
        assert inputs["messageRetentionDuration"] == sub.message_retention_gcp
        assert inputs["filter"].endswith(
            f"NOT attributes:{REPLAY_TARGET_ATTRIBUTE} OR "
            f'attributes.{REPLAY_TARGET_ATTRIBUTE} = "{sub.name}"' + (")" if sub.filter else "")
        )
        assert inputs["enableMessageOrdering"] is sub.enable_message_ordering
        assert inputs["enableExactlyOnceDelivery"] is sub.enable_exactly_once_delivery


def test_prod_stack_settings_are_the_audits() -> None:
    run = run_program(stack_config(STACKS / "Pulumi.prod.yaml"), stack="prod")
    subs = {r.inputs["name"]: r.inputs for r in run.of_type(SUBSCRIPTION)}
    assert {"events-sub", "matching-engine", "notifications", "events-dlq-sub"} <= set(subs)
    events_sub = subs["events-sub"]
    assert events_sub["topic"] == "projects/cotton-erp/topics/events"
    assert events_sub["deadLetterPolicy"] == {
        "deadLetterTopic": "projects/cotton-erp/topics/events-dlq",
        "maxDeliveryAttempts": 5,
    }
    assert events_sub["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
    assert events_sub["filter"] == (
        'NOT attributes:replay_target OR attributes.replay_target = "events-sub"'
    )
    assert subs["notifications"]["filter"] == (
        '(hasPrefix(attributes.event_type, "trade.")) AND '
        '(NOT attributes:replay_target OR attributes.replay_target = "notifications")'
    )
    assert subs["matching-engine"]["enableMessageOrdering"] is True
    assert subs["matching-engine"]["labels"] == {
        "env": "prod",
        "system": "events-infra",
        "team": "trade-desk",
    }


def test_dead_letter_subscription(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    inputs = run.named("events-dead-letter-subscription").inputs
    assert inputs["name"] == topology.dead_letter.subscription
    assert inputs["topic"] == f"projects/{topology.project}/topics/{topology.dead_letter.topic}"
    assert inputs["expirationPolicy"] == {"ttl": ""}
    assert inputs["messageRetentionDuration"] == topology.dead_letter.message_retention_gcp
    assert "deadLetterPolicy" not in inputs  # dead letters are never dead-lettered again
    assert "filter" not in inputs


def test_service_agent_is_created_not_assumed(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    [identity] = run.of_type(IDENTITY)
    assert identity.inputs == {"project": topology.project, "service": "pubsub.googleapis.com"}


def test_service_agent_can_publish_dead_letters(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    [grant] = run.of_type(TOPIC_MEMBER)
    dlq = run.named("events-dead-letter-topic")
    assert (
        grant.inputs["topic"] == f"projects/{topology.project}/topics/{topology.dead_letter.topic}"
    )
    assert grant.inputs["role"] == "roles/pubsub.publisher"
    assert grant.inputs["member"] == AGENT
    assert grant.replace_with == [dlq.urn]


def test_service_agent_subscribes_to_every_source_subscription(
    deployed: tuple[StackConfig, Run],
) -> None:
    topology, run = deployed
    grants = {g.inputs["subscription"]: g for g in run.of_type(SUB_MEMBER)}
    expected = {
        f"projects/{topology.project}/subscriptions/{s.name}" for s in topology.subscriptions
    }
    assert set(grants) == expected  # every source subscription, and not the dead-letter one
    for sub in topology.subscriptions:
        grant = grants[f"projects/{topology.project}/subscriptions/{sub.name}"]
        assert grant.inputs["role"] == "roles/pubsub.subscriber"
        assert grant.inputs["member"] == AGENT
        assert grant.replace_with == [run.named(f"events-sub-{sub.name}").urn]


def test_no_authoritative_iam_anywhere(deployed: tuple[StackConfig, Run]) -> None:
    _, run = deployed
    authoritative = [r for r in run.resources if r.type.endswith(("IAMPolicy", "IAMBinding"))]
    assert authoritative == []


def test_production_protects_topics_and_subscriptions(deployed: tuple[StackConfig, Run]) -> None:
    topology, run = deployed
    for resource in run.of_type(TOPIC) + run.of_type(SUBSCRIPTION):
        assert resource.protect is topology.production, resource.name


def test_protect_follows_the_production_flag(prod_config: dict[str, Any]) -> None:
    prod_config["events-infra:production"] = False
    run = run_program(_engine_config(prod_config))
    assert not any(r.protect for r in run.resources)


def test_removing_a_subscription_leaves_the_others_untouched(prod_config: dict[str, Any]) -> None:
    before = run_program(_engine_config(prod_config))
    prod_config["events-infra:subscriptions"] = [
        s for s in prod_config["events-infra:subscriptions"] if s["name"] != "notifications"
    ]
    after = run_program(_engine_config(prod_config))
    old = {r.urn: r.inputs for r in before.resources}
    new = {r.urn: r.inputs for r in after.resources}
    removed = {old_urn.rsplit("::", 1)[-1] for old_urn in set(old) - set(new)}
    assert removed == {
        "events-sub-notifications",
        "events-sub-notifications-agent-subscriber",
        "access-consumer-notifications",
        "access-consumer-notifications-subscriber",
        "access-consumer-notifications-viewer",
        "access-replayer-notifications-viewer",
        "alerting-dead-letter-rate-notifications",
        "alerting-oldest-unacked-notifications",
    }
    assert set(new) <= set(old)  # nothing renamed or added
    changed = {u.rsplit("::", 1)[-1] for u in new if new[u] != old[u]}
    assert changed == {"alerting-dashboard"}  # its charts list the subscriptions


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
def test_stack_exports_names_for_later_tools(path: Path) -> None:
    topology = topology_from_config(read_stack_config(path))
    run = run_program(stack_config(path), stack=stack_name(path))
    assert run.exports["topic"] == topology.topic.name
    assert run.exports["dead_letter_subscription"] == topology.dead_letter.subscription
    assert set(run.exports["subscription_ids"]) == {s.name for s in topology.subscriptions}


def test_outputs_wait_for_grants_and_list_every_subscription() -> None:
    run = run_program(stack_config(STACKS / "Pulumi.prod.yaml"), stack="prod")
    bus = run.outputs["bus"]
    assert resolve(bus.dead_letter_subscription_id) == (
        "projects/cotton-erp/subscriptions/events-dlq-sub"
    )
    assert resolve(bus.subscription_ids) == {
        "events-sub": "projects/cotton-erp/subscriptions/events-sub",
        "matching-engine": "projects/cotton-erp/subscriptions/matching-engine",
        "notifications": "projects/cotton-erp/subscriptions/notifications",
    }


def test_optional_topic_settings_reach_gcp(prod_config: dict[str, Any]) -> None:
    key = "projects/cotton-erp/locations/asia-south1/keyRings/events/cryptoKeys/pubsub"
    prod_config["events-infra:topic"] = {"name": "events", "kms_key_name": key}
    run = run_program(_engine_config(prod_config))
    assert run.named("events-topic").inputs["kmsKeyName"] == key
    assert "messageRetentionDuration" not in run.named("events-topic").inputs
    # the Pub/Sub service agent may use the key before either topic is created with it
    [grant] = run.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert grant.inputs["cryptoKeyId"] == key
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant.inputs["member"].startswith("serviceAccount:service-")
    assert "gcp-sa-pubsub" in grant.inputs["member"]
    for topic in ("events-topic", "events-dead-letter-topic"):
        assert grant.urn in run.named(topic).dependencies


def test_no_kms_grant_without_a_key(prod: Any) -> None:
    assert prod.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember") == []


def test_push_subscription(prod_config: dict[str, Any]) -> None:
    prod_config["events-infra:access"] = {}
    prod_config["events-infra:subscriptions"] = [
        {
            "name": "webhooks",
            "push_endpoint": "https://hooks.example.invalid/events",
            "push_service_account": "pusher@cotton-erp.iam.gserviceaccount.com",
        }
    ]
    run = run_program(_engine_config(prod_config))
    assert run.named("events-sub-webhooks").inputs["pushConfig"] == {
        "pushEndpoint": "https://hooks.example.invalid/events",
        "oidcToken": {"serviceAccountEmail": "pusher@cotton-erp.iam.gserviceaccount.com"},
    }


def test_bad_config_fails_before_any_resource_is_declared(prod_config: dict[str, Any]) -> None:
    prod_config["events-infra:subscriptions"][1]["max_delivery_attempts"] = 3
    with pytest.raises(pulumi.RunError) as info:
        run_program(_engine_config(prod_config))
    message = str(info.value)
    assert "events-infra:subscriptions[matching-engine].max_delivery_attempts: 3 is outside" in (
        message
    )
    assert "5–100" in message


def test_bad_config_declares_nothing(prod_config: dict[str, Any]) -> None:
    prod_config["events-infra:topic"] = {"name": "ab"}
    recorded = Run()
    with pytest.raises(pulumi.RunError, match=r"events-infra:topic\.name: 'ab' is not a valid"):
        run_program(_engine_config(prod_config), run=recorded)
    assert recorded.resources == []


def _engine_config(config: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


@pytest.mark.parametrize(
    ("section", "change", "line"),
    [
        ("database", {"edition": "ENTERPRISE_PLUS"},
         "events-infra:database.tier: db-custom-2-7680 runs only on the ENTERPRISE edition"),
        ("database", {"tier": "db-perf-optimized-N-8"},
         "events-infra:database.tier: db-perf-optimized-N-8 runs only on the ENTERPRISE_PLUS"),
        ("database", {"tier": "db-n1-standard-2"},
         "events-infra:database.tier: db-n1-standard-2 is not a Cloud SQL for PostgreSQL"),
        ("database", {"tier": "db-custom-2-1024"},
         "events-infra:database.tier: db-custom-2-1024: memory must be a multiple of 256 MB"),
        ("alerting", {"dlq_backlog": {"threshold": 100, "duration": "90s"}},
         "events-infra:alerting.dlq_backlog.duration: 90s is not a whole number of minutes"),
        ("subscription_defaults", {"min_backoff": "5s"},
         "events-infra:subscription_defaults.min_backoff: 5s is outside the allowed range 10s–"),
    ],
)  # fmt: skip
def test_values_gcp_refuses_at_up_fail_the_program_with_one_line(
    prod_config: dict[str, Any], section: str, change: dict[str, Any], line: str
) -> None:
    """Each would pass the mocks and fail only at `pulumi up` (or in the policy pack)."""
    prod_config[f"events-infra:{section}"] = {**prod_config[f"events-infra:{section}"], **change}
    recorded = Run()
    with pytest.raises(pulumi.RunError) as info:
        run_program(_engine_config(prod_config), run=recorded)
    [problem] = [x for x in str(info.value).splitlines() if x.startswith("events-infra:")]
    assert problem.startswith(line)
    assert recorded.resources == []


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_committed_stacks_set_the_sql_edition_their_tier_needs(stack: str) -> None:
    run = run_program(stack_config(STACKS / f"Pulumi.{stack}.yaml"), stack=stack)
    [instance] = run.of_type("gcp:sql/databaseInstance:DatabaseInstance")
    settings = instance.inputs["settings"]
    assert settings["edition"] == "ENTERPRISE"
    assert settings["tier"] in ("db-custom-2-7680", "db-f1-micro")


DATA_TYPES = (TOPIC, SUBSCRIPTION, "gcp:sql/databaseInstance:DatabaseInstance",
              "gcp:sql/database:Database")  # fmt: skip


def retained(run: Run) -> dict[str, bool]:
    return {r.name: r.retain_on_delete for r in run.resources if r.type in DATA_TYPES}


def test_production_data_resources_are_retained_on_delete(prod: Run, dev: Run) -> None:
    """A forced replace of a retained, named resource stops at 409 instead of deleting it."""
    assert retained(prod) and all(retained(prod).values())
    [database] = prod.of_type("gcp:sql/database:Database")
    assert database.inputs["deletionPolicy"] == "ABANDON"
    assert retained(dev) and not any(retained(dev).values())
    [dev_database] = dev.of_type("gcp:sql/database:Database")
    assert "deletionPolicy" not in dev_database.inputs  # dev keeps the provider's default


def test_retention_is_set_per_subscription_too(prod_config: dict) -> None:
    """`retain_on_delete` on one subscription overrides the stack's, both ways; a dev stack can
    keep one subscription it means to abandon when it leaves the config."""
    config = dict(prod_config)
    subs = [dict(s) for s in config["events-infra:subscriptions"]]
    subs[0]["retain_on_delete"] = False
    config["events-infra:subscriptions"] = subs
    engine = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    run = run_program(engine, stack="prod")
    by_name = {r.inputs["name"]: r.retain_on_delete for r in run.of_type(SUBSCRIPTION)}
    assert by_name.pop(subs[0]["name"]) is False and all(by_name.values())

    config["events-infra:production"] = False
    config["events-infra:retain_on_delete"] = False
    subs[0]["retain_on_delete"] = True
    engine = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    run = run_program(engine, stack="prod")
    by_name = {r.inputs["name"]: r.retain_on_delete for r in run.of_type(SUBSCRIPTION)}
    assert by_name.pop(subs[0]["name"]) is True and not any(by_name.values())
