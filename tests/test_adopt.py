"""Adopting a running estate (`eventsctl adopt plan`), on the emulator behind the strict proxy.

The estate is made by hand the way the ERP's was: the `events` topic, an unfiltered pull
subscription `events-sub` without dead-letter or retry policy holding a backlog, and another
team's subscription on the same topic. The program side runs under Pulumi's mocks.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1
from typer.testing import CliRunner

from events_infra.adopt.plan import (
    DISRUPTIVE,
    IN_PLACE,
    MIGRATION,
    AdoptPlan,
    adopt_plan,
    import_file,
)
from events_infra.cli.app import app
from events_infra.components.offline import run_program
from events_infra.stack_config import pulumi_names
from events_infra.stack_config.stack_files import topology_from_config
from tests.support.stack_files import write_stack

runner = CliRunner()


def stack_config(project: str, replay_filter: bool) -> dict[str, Any]:
    return {
        "gcp:project": project,
        "events-infra:subscriptions": [
            {"name": "events-sub", "replay_filter": replay_filter},
            {"name": "matching-engine"},
        ],
    }


def handmade_estate(project: str, backlog: int) -> None:
    """What exists before events-infra: topic, plain events-sub with a backlog, a stranger."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    publisher.create_topic(name=topic)
    for name in ("events-sub", "billing-team-sub"):
        subscriber.create_subscription(name=f"projects/{project}/subscriptions/{name}", topic=topic)
    futures = [publisher.publish(topic, json.dumps({"n": i}).encode()) for i in range(backlog)]
    for future in futures:
        future.result(timeout=30)


def plan_for(config: dict[str, Any], stack: str) -> AdoptPlan:
    topology = topology_from_config(config, set())
    return adopt_plan(
        topology, stack, pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient(), "emulator"
    )


def by_name(plan: AdoptPlan) -> dict[str, Any]:
    return {r.path.rsplit("/", 1)[-1]: r for r in plan.resources}


def test_plan_names_what_exists_what_differs_and_what_will_be_created(pubsub: str) -> None:
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=300)
    plan = plan_for(stack_config(project, replay_filter=False), "prod")
    resources = by_name(plan)
    assert {k: r.exists for k, r in resources.items()} == {
        "events": True,
        "events-dlq": False,
        "events-dlq-sub": False,
        "events-sub": True,
        "matching-engine": False,
    }
    sub = {d.field: d for d in resources["events-sub"].differences}
    # what the audit adds to a hand-made subscription is applied in place...
    assert sub["dead_letter_policy"].change == IN_PLACE
    assert sub["dead_letter_policy"].live == "(none: failures retry forever)"
    assert sub["dead_letter_policy"].declared == f"projects/{project}/topics/events-dlq after 5"
    assert sub["retry_policy"].change == IN_PLACE and sub["retry_policy"].declared == "10s-10m"
    # ... and with replay_filter: false nothing needs the replacement that drops the backlog
    assert "filter" not in sub
    assert not plan.blocked
    assert plan.undeclared == [f"projects/{project}/subscriptions/billing-team-sub"]


def test_a_missing_replay_filter_is_a_migration_with_the_way_through(pubsub: str) -> None:
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=5)
    plan = plan_for(stack_config(project, replay_filter=True), "prod")
    [filter_change] = [d for d in by_name(plan)["events-sub"].differences if d.field == "filter"]
    assert filter_change.change == MIGRATION and filter_change.live == "(none)"
    assert "replay_filter: false" in filter_change.how
    assert plan.blocked


def test_import_file_urns_match_what_the_program_registers(pubsub: str) -> None:
    """`pulumi import --file` records type + parent + logical name; the next `up` matches state
    by URN, so each imported URN must be one the program declares (or `up` creates a second)."""
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=1)
    config = stack_config(project, replay_filter=False)
    document = import_file(plan_for(config, "prod"))
    [component, *children] = document["resources"]
    assert component == {
        "type": pulumi_names.EVENT_BUS_TYPE,
        "name": pulumi_names.BUS,
        "component": True,
    }
    imported = {
        pulumi_names.child_urn("prod", r["type"], r["name"]): r["id"]
        for r in children
        if r["parent"] == component["name"]
    }
    assert set(imported.values()) == {
        f"projects/{project}/topics/events",
        f"projects/{project}/subscriptions/events-sub",
    }
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    declared = {r.urn: r for r in run_program(engine_config, stack="prod").resources}
    assert set(imported) <= set(declared)
    bus = next(r for r in declared.values() if r.type == pulumi_names.EVENT_BUS_TYPE)
    for urn in imported:
        assert declared[urn].parent == bus.urn


def test_the_program_plans_no_filter_for_a_subscription_adopted_without_one() -> None:
    config = stack_config("cotton-erp", replay_filter=False)
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    run = run_program(engine_config, stack="prod")
    subs = {r.inputs["name"]: r for r in run.of_type(pulumi_names.SUBSCRIPTION_TYPE)}
    assert "filter" not in subs["events-sub"].inputs
    assert "replay_target" in subs["matching-engine"].inputs["filter"]
    # the rest of the audit's settings still reach it, in place
    assert subs["events-sub"].inputs["deadLetterPolicy"]["maxDeliveryAttempts"] == 5
    assert subs["events-sub"].inputs["retryPolicy"]["minimumBackoff"] == "10s"


def test_cli_plan_writes_the_import_file_and_exits_1_only_for_migrations(
    pubsub: str, tmp_path: Path
) -> None:
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=3)
    name, stacks = write_stack(tmp_path, stack_config(project, replay_filter=False))
    out = tmp_path / "import.json"
    args = ["adopt", "plan", "--stack", name, "--stacks-dir", str(stacks)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "billing-team-sub keeps receiving every message" in result.stderr
    assert len(json.loads(out.read_text())["resources"]) == 3  # the bus, events, events-sub
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["needs_migration"] is False

    name, stacks = write_stack(tmp_path, stack_config(project, replay_filter=True))
    out.unlink()
    blocked = runner.invoke(
        app, ["adopt", "plan", "--stack", name, "--stacks-dir", str(stacks), "--out", str(out)]
    )
    assert blocked.exit_code == 1
    assert "filter cannot change in place" in blocked.stderr
    assert "no import file written" in blocked.stderr and not out.exists()


@pytest.mark.parametrize("bad", ["--stack", "--out"])
def test_bad_stack_or_unwritable_out_is_one_line_exit_2(
    pubsub: str, tmp_path: Path, bad: str
) -> None:
    project = f"erp-{uuid.uuid4().hex[:8]}"
    name, stacks = write_stack(tmp_path, stack_config(project, replay_filter=False))
    args = ["adopt", "plan", "--stack", name, "--stacks-dir", str(stacks)]
    if bad == "--stack":
        args[3] = "nope"
    else:
        args += ["--out", str(tmp_path / "missing-dir" / "import.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output


def test_doctor_accepts_and_replay_names_a_subscription_without_the_replay_filter(
    pubsub: str, tmp_path: Path
) -> None:
    from tests.support.dlq_support import dlq, make_stack

    subscriptions = [{"name": "orders-sub", "replay_filter": False}, {"name": "billing-sub"}]
    stack = make_stack(
        tmp_path, shorten_backoff=False, **{"events-infra:subscriptions": subscriptions}
    )
    live = stack.subscriber.get_subscription(subscription=stack.subscription("orders-sub"))
    assert live.filter == ""  # provisioned as the stack says: no filter at all
    out = runner.invoke(app, ["dlq", "doctor", *stack.cli_args(), "--json"])
    assert out.exit_code == 0, out.output
    [row] = [
        r for r in json.loads(out.stdout)
        if r["check"] == "replay-filter" and r["resource"].endswith("/orders-sub")
    ]  # fmt: skip
    assert row["ok"] is True and row["detail"].startswith("accepted: no replay filter")

    stack.seed(3, source="billing-sub")
    result = dlq(stack, "replay", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["also_reaches"] == ["orders-sub"]
    assert "orders-sub has no replay filter (replay_filter: false)" in result.stderr


def test_a_lower_retention_loses_data_and_api_defaults_are_not_differences(pubsub: str) -> None:
    """A hand-made subscription keeping 7 days, adopted at 1 day, would expire six days of
    backlog at the next up; a retry policy with unset backoff is the API's 10 s-600 s."""
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=1)
    pubsub_v1.SubscriberClient().update_subscription(
        request={
            "subscription": {
                "name": f"projects/{project}/subscriptions/events-sub",
                "retry_policy": {},
            },
            "update_mask": {"paths": ["retry_policy"]},
        }
    )
    config = stack_config(project, replay_filter=False)
    config["events-infra:subscriptions"][0]["message_retention"] = "1d"
    config["events-infra:subscriptions"][0]["min_backoff"] = "10s"
    plan = plan_for(config, "prod")
    sub = {d.field: d for d in by_name(plan)["events-sub"].differences}
    assert sub["message_retention"].change == DISRUPTIVE
    assert (sub["message_retention"].live, sub["message_retention"].declared) == ("7d", "1d")
    assert plan.blocked
    assert "retry_policy" not in sub  # an empty retry policy is the API's 10s-600s, as declared


def test_the_plan_expects_the_labels_the_program_sets(pubsub: str) -> None:
    """EventBus adds labels of its own (the dead-letter role, the attempts override) beside the
    stack's: a resource carrying exactly what the program declares shows no label difference,
    one without them shows each, in place."""
    project = f"erp-{uuid.uuid4().hex[:8]}"
    handmade_estate(project, backlog=0)
    config = stack_config(project, replay_filter=False)
    config["events-infra:labels"] = {"env": "prod"}
    config["events-infra:subscriptions"][0]["max_delivery_attempts"] = 7
    config["events-infra:subscriptions"][0]["max_delivery_attempts_reason"] = "slow consumers"
    engine_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    declared = {
        r.inputs["name"]: r.inputs.get("labels", {})
        for r in run_program(engine_config, stack="prod").resources
        if r.type in (pulumi_names.TOPIC_TYPE, pulumi_names.SUBSCRIPTION_TYPE)
    }
    assert declared["events-sub"]["max-delivery-attempts-override"] == "true"
    assert declared["events-dlq"]["events-infra-role"] == "dead-letter"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    dlq_topic = f"projects/{project}/topics/events-dlq"
    publisher.create_topic(request={"name": dlq_topic, "labels": declared["events-dlq"]})
    subscriber.create_subscription(
        request={
            "name": f"projects/{project}/subscriptions/events-dlq-sub",
            "topic": dlq_topic,
            "labels": {},  # made by hand without them
        }
    )
    resources = by_name(plan_for(config, "prod"))
    labels = {k: [d for d in r.differences if d.field == "labels"] for k, r in resources.items()}
    assert labels["events-dlq"] == []  # carries what the program declares
    [dlq_sub] = labels["events-dlq-sub"]
    assert "events-infra-role=dead-letter" in dlq_sub.declared and dlq_sub.change == IN_PLACE
    [sub] = labels["events-sub"]
    assert "max-delivery-attempts-override=true" in sub.declared and "env=prod" in sub.declared
    [topic] = labels["events"]
    assert topic.declared == "env=prod"
