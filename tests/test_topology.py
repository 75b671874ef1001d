"""The topology model: defaults, and one test per validation rule showing the error text."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from events_infra.stack_config.stack_files import (
    load_stack,
    read_stack_config,
    topology_from_config,
)
from events_infra.stack_config.topology import (
    REPLAY_TARGET_ATTRIBUTE,
    TopologyError,
    parse_topology,
)

NS = "events-infra"


def minimal(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"subscriptions": [{"name": "orders-sub"}]}
    values.update(overrides)
    return values


def problems(values: dict[str, Any], project: Any = "cotton-erp") -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse_topology(values, project)
    return info.value.problems


def test_defaults_are_the_audits() -> None:
    config = parse_topology(minimal(), "cotton-erp")
    sub = config.subscription("orders-sub")
    assert (sub.max_delivery_attempts, sub.min_backoff_gcp, sub.max_backoff_gcp) == (
        5,
        "10s",
        "600s",
    )
    assert sub.ack_deadline == 60
    assert config.topic.name == "events"
    assert config.dead_letter.topic == "events-dlq"
    assert config.dead_letter.subscription == "events-dlq-sub"
    assert config.dead_letter.message_retention_gcp == "604800s"  # 7 days
    assert config.production is False


def test_dead_letter_names_follow_the_topic_name() -> None:
    config = parse_topology(minimal(topic={"name": "orders"}), "cotton-erp")
    assert (config.dead_letter.topic, config.dead_letter.subscription) == (
        "orders-dlq",
        "orders-dlq-sub",
    )


def test_subscription_defaults_apply_and_are_overridable() -> None:
    values = minimal(
        subscription_defaults={
            "max_delivery_attempts": 7,
            "max_backoff": "2m",
            "max_delivery_attempts_reason": "slow downstream",
        },
        subscriptions=[{"name": "a-sub"}, {"name": "b-sub", "max_delivery_attempts": 20}],
    )
    config = parse_topology(values, "cotton-erp")
    assert config.subscription("a-sub").max_delivery_attempts == 7
    assert config.subscription("a-sub").max_backoff_gcp == "120s"
    assert config.subscription("b-sub").max_delivery_attempts == 20
    assert config.subscription("b-sub").max_backoff_gcp == "120s"


def test_subscriptions_may_be_a_map_keyed_by_name() -> None:
    config = parse_topology(
        minimal(
            subscriptions={
                "a-sub": {
                    "max_delivery_attempts": 9,
                    "max_delivery_attempts_reason": "idempotent retries",
                },
                "b-sub": None,
            }
        ),
        "cotton-erp",
    )
    assert [s.name for s in config.subscriptions] == ["a-sub", "b-sub"]
    assert config.subscription("a-sub").max_delivery_attempts == 9


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10, "10s"), ("10s", "10s"), ("2m", "120s"), (10.5, "10.5s"), ("600", "600s")],
)
def test_backoff_accepts_seconds_and_duration_strings(value: Any, expected: str) -> None:
    values = minimal(subscriptions=[{"name": "orders-sub", "min_backoff": value}])
    assert parse_topology(values, "cotton-erp").subscriptions[0].min_backoff_gcp == expected


def test_delivery_filter_admits_untargeted_and_own_replays() -> None:
    sub = parse_topology(minimal(), "cotton-erp").subscriptions[0]
    attr = REPLAY_TARGET_ATTRIBUTE
    assert sub.delivery_filter == (f'NOT attributes:{attr} OR attributes.{attr} = "orders-sub"')


def test_user_filter_is_combined_with_the_replay_filter() -> None:
    values = minimal(subscriptions=[{"name": "orders-sub", "filter": 'attributes.kind = "x"'}])
    sub = parse_topology(values, "cotton-erp").subscriptions[0]
    assert sub.delivery_filter == (
        f'(attributes.kind = "x") AND (NOT attributes:{REPLAY_TARGET_ATTRIBUTE} OR '
        f'attributes.{REPLAY_TARGET_ATTRIBUTE} = "orders-sub")'
    )


# --- one test per rule, asserting the text a platform engineer sees ------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_delivery_attempts", 4, "4 is outside the allowed range 5–100"),
        ("max_delivery_attempts", 101, "101 is outside the allowed range 5–100"),
        ("min_backoff", "601s", "601s is outside the allowed range 10s–600s"),
        ("max_backoff", 900, "900s is outside the allowed range 10s–600s"),
        # GCP accepts 0s; the policy pack does not, so neither does the model (one fact)
        ("min_backoff", 0, "0s is outside the allowed range 10s–600s (the policy pack's"),
        ("min_backoff", -1, "-1 is negative"),
        ("ack_deadline", 5, "5s is outside the allowed range 10s–600s"),
        ("ack_deadline", "11m", "660s is outside the allowed range 10s–600s"),
        ("message_retention", "5m", "5m is outside the allowed range 10m–31d"),
        ("message_retention", "32d", "32d is outside the allowed range 10m–31d"),
    ],
)
def test_out_of_range_values_name_key_value_and_range(field: str, value: Any, message: str) -> None:
    values = minimal(subscriptions=[{"name": "orders-sub", field: value}])
    [problem] = problems(values)
    assert problem.startswith(f"{NS}:subscriptions[orders-sub].{field}: ")
    assert message in problem


def test_min_backoff_greater_than_max_is_refused() -> None:
    values = minimal(subscriptions=[{"name": "orders-sub", "min_backoff": 300, "max_backoff": 60}])
    [problem] = problems(values)
    assert problem.startswith(f"{NS}:subscriptions[orders-sub]: ")
    assert "min_backoff 5m is greater than max_backoff 1m" in problem


def test_bad_default_is_reported_once_under_its_own_key() -> None:
    values = minimal(
        subscription_defaults={"max_delivery_attempts": 200},
        subscriptions=[{"name": "a-sub"}, {"name": "b-sub"}],
    )
    assert problems(values) == [
        f"{NS}:subscription_defaults.max_delivery_attempts: 200 is outside the allowed range "
        "5–100 (GCP's limit on delivery attempts before dead-lettering)"
    ]


def test_duplicate_subscription_names_are_refused() -> None:
    values = minimal(subscriptions=[{"name": "orders-sub"}, {"name": "orders-sub"}])
    [problem] = problems(values)
    assert problem == (
        f"{NS}:subscriptions[orders-sub].name: 'orders-sub' is used by more than one "
        "subscription; subscription names must be unique"
    )


def test_subscription_named_like_the_dead_letter_subscription_is_refused() -> None:
    [problem] = problems(minimal(subscriptions=[{"name": "events-dlq-sub"}]))
    assert "also the name of the dead-letter subscription" in problem


def test_topic_cannot_be_its_own_dead_letter_topic() -> None:
    [problem] = problems(minimal(topic={"name": "events"}, dead_letter={"topic": "events"}))
    assert problem.startswith(f"{NS}:dead_letter.topic: 'events' is also {NS}:topic.name")


def test_no_subscriptions_is_refused() -> None:
    [problem] = problems({"subscriptions": []})
    assert "a topic with no subscription drops every message" in problem


@pytest.mark.parametrize(
    "name",
    ["ab", "1orders", "orders sub", "orders/sub", "goog-orders", "GOOGorders", "a" * 256],
)
def test_names_gcp_would_refuse(name: str) -> None:
    [problem] = problems(minimal(subscriptions=[{"name": name}]))
    assert problem.startswith(f"{NS}:subscriptions[{name}].name: {name!r} is not a valid Pub/Sub")
    assert "3–255 characters, starting with a letter" in problem


@pytest.mark.parametrize("name", ["abc", "a.b~c+d%e_f-g", "A" * 90])
def test_names_gcp_accepts(name: str) -> None:
    access = {"consumers": {name: "odd-name-consumer"}}
    parse_topology(minimal(subscriptions=[{"name": name}], access=access), "cotton-erp")


def test_bad_topic_name_names_its_key() -> None:
    [problem] = problems(minimal(topic={"name": "goog-events"}))
    assert problem.startswith(f"{NS}:topic.name: 'goog-events' is not a valid Pub/Sub name")


def test_unknown_subscription_key_suggests_the_right_one() -> None:
    values = minimal(subscriptions=[{"name": "orders-sub", "max_delivery_attemps": 5}])
    assert problems(values) == [
        f"{NS}:subscriptions[orders-sub].max_delivery_attemps: unknown key "
        "(did you mean 'max_delivery_attempts'?)"
    ]


def test_unknown_top_level_key_is_refused() -> None:
    [problem] = problems(minimal(subscriptionz=[]))
    assert problem.startswith(f"{NS}:subscriptionz: unknown key (did you mean 'subscriptions'?)")


def test_unknown_key_without_a_close_match_lists_known_keys() -> None:
    [problem] = problems(minimal(dead_letter={"colour": "blue"}))
    assert problem.startswith(f"{NS}:dead_letter.colour: unknown key (known keys: ")
    assert "message_retention" in problem


def test_missing_and_invalid_project() -> None:
    assert problems(minimal(), project=None) == [
        "gcp:project: None is not valid: input should be a valid string"
    ]
    [problem] = problems(minimal(), project="Cotton_ERP")
    assert problem.startswith("gcp:project: 'Cotton_ERP' is not a valid GCP project id")


def test_push_with_exactly_once_is_refused() -> None:
    sub = {
        "name": "orders-sub",
        "push_endpoint": "https://example.invalid/push",
        "enable_exactly_once_delivery": True,
    }
    [problem] = problems(minimal(subscriptions=[sub]))
    assert "exactly_once_delivery works only for pull subscriptions" in problem


def test_push_endpoint_must_be_https() -> None:
    [problem] = problems(
        minimal(subscriptions=[{"name": "orders-sub", "push_endpoint": "http://x.invalid/"}])
    )
    assert problem.startswith(f"{NS}:subscriptions[orders-sub].push_endpoint: ")
    assert "not an https:// URL" in problem


def test_filter_over_gcp_limit_is_refused() -> None:
    long_filter = 'attributes.kind = "' + "x" * 200 + '"'
    [problem] = problems(minimal(subscriptions=[{"name": "orders-sub", "filter": long_filter}]))
    assert "over GCP's limit of 256" in problem


def test_invalid_labels_are_refused() -> None:
    [problem] = problems(minimal(labels={"Team": "x"}))
    assert problem.startswith(f"{NS}:labels: label key 'Team' is invalid")


def test_not_a_number_is_refused_with_its_value() -> None:
    [problem] = problems(
        minimal(subscriptions=[{"name": "orders-sub", "max_delivery_attempts": "five"}])
    )
    assert problem.startswith(f"{NS}:subscriptions[orders-sub].max_delivery_attempts: 'five'")


def test_several_problems_are_all_reported() -> None:
    values = minimal(
        subscriptions=[
            {"name": "orders-sub", "max_delivery_attempts": 1},
            {"name": "billing-sub", "ack_deadline": 1000},
        ]
    )
    found = problems(values)
    assert len(found) == 2
    assert found[0].startswith(f"{NS}:subscriptions[orders-sub].max_delivery_attempts")
    assert found[1].startswith(f"{NS}:subscriptions[billing-sub].ack_deadline")


# --- stack files -------------------------------------------------------------------------------


def test_stack_files_reject_duplicate_yaml_keys(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  gcp:project: cotton-erp\n  gcp:project: other-project\n")
    with pytest.raises(TopologyError, match="duplicate key 'gcp:project'"):
        read_stack_config(path)


def test_keys_without_namespace_belong_to_the_project(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n  gcp:project: cotton-erp\n  production: true\n"
        "  subscriptions:\n    - name: orders-sub\n"
    )
    config = topology_from_config(read_stack_config(path))
    assert config.production is True


def test_prod_stack_matches_the_audit(prod_config: dict[str, Any]) -> None:
    config = topology_from_config(prod_config)
    assert config.project == "cotton-erp"
    assert config.topic.name == "events"
    assert config.dead_letter.topic == "events-dlq"
    names = [s.name for s in config.subscriptions]
    assert names[0] == "events-sub" and len(names) >= 3
    assert config.production is True


def test_load_stack_by_name(tmp_path: Path, prod_config: dict[str, Any]) -> None:
    config = copy.deepcopy(prod_config)
    import yaml

    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump({"config": config}))
    assert load_stack("staging", tmp_path).project == "cotton-erp"


# --- the outbox database section ---------------------------------------------------------------


def test_database_defaults() -> None:
    config = parse_topology(minimal(database={"region": "asia-south1"}), "cotton-erp")
    assert config.database is not None
    assert (config.database.instance, config.database.database) == ("events-outbox", "events")
    assert config.database.database_version == "POSTGRES_16"
    assert config.database.availability_type == "ZONAL"
    assert config.database.private_ip_only is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "events-infra:database.region: required key is missing"),
        ({"region": "x"}, "events-infra:database.region: 'x' is not a GCP region"),
        (
            {"region": "asia-south1", "database_version": "POSTGRES_12"},
            "events-infra:database.database_version: 'POSTGRES_12' is not supported",
        ),
        (
            {"region": "asia-south1", "availability_type": "HA"},
            "events-infra:database.availability_type: 'HA' is not valid",
        ),
        (
            {"region": "asia-south1", "transaction_log_retention_days": 30},
            "30 is outside the allowed range 1–7",
        ),
        (
            {"region": "asia-south1", "private_network": "default"},
            "events-infra:database.private_network: 'default' is not a VPC network",
        ),
        (
            {"region": "asia-south1", "migration_principal": "deployer"},
            "events-infra:database.migration_principal: 'deployer' is not an email address",
        ),
        (
            {"region": "asia-south1", "instance": "Events_DB"},
            "events-infra:database.instance: 'Events_DB' is not a Cloud SQL instance id",
        ),
        ({"region": "asia-south1", "passwrd_user": "x"}, "did you mean 'password_user'?"),
    ],
)
def test_database_validation(values: dict[str, Any], message: str) -> None:
    [problem] = problems(minimal(database=values))
    assert message in problem


def test_publish_endpoint_is_locational_from_gcp_region() -> None:
    config = topology_from_config(
        {
            "gcp:project": "cotton-erp",
            "gcp:region": "asia-south1",
            f"{NS}:subscriptions": [{"name": "orders-sub"}],
        }
    )
    assert config.pubsub.api_endpoint == "asia-south1-pubsub.googleapis.com:443"
    own_region = parse_topology(minimal(pubsub={"region": "europe-west1"}), "cotton-erp", None,
                                region="asia-south1")  # fmt: skip
    assert own_region.pubsub.api_endpoint == "europe-west1-pubsub.googleapis.com:443"
    explicit = parse_topology(
        minimal(pubsub={"endpoint": "pubsub.example.internal:8443"}), "cotton-erp"
    )
    assert explicit.pubsub.api_endpoint == "pubsub.example.internal:8443"
    assert parse_topology(minimal(), "cotton-erp").pubsub.api_endpoint is None  # no region known


@pytest.mark.parametrize(
    ("pubsub", "message"),
    [
        ({"region": "Asia South"}, f"{NS}:pubsub.region: 'Asia South' is not a GCP region"),
        ({"endpoint": "https://x/"}, f"{NS}:pubsub.endpoint: 'https://x/' is not a host[:port]"),
        ({"regoin": "x"}, f"{NS}:pubsub.regoin: unknown key (did you mean 'region'?)"),
    ],
)
def test_bad_pubsub_settings_name_the_key(pubsub: dict[str, str], message: str) -> None:
    [problem] = problems(minimal(pubsub=pubsub))
    assert problem.startswith(message)
