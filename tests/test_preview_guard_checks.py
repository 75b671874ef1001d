"""The guard's checks beyond replace/delete, one preview per case (tests/support/preview_steps):
in-place effects from the change-class table, every step op, collisions with the live estate,
imports with diffs, deletes of every declared type, a failed preview, and per-PR overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.preview.overrides import from_body
from events_infra.stack_config import change_classes
from events_infra.stack_config import pulumi_names as names
from tests.support.preview_steps import OUTBOX, step, urn, write

runner = CliRunner()
SUB = names.SUBSCRIPTION_TYPE
SQL = names.SQL_INSTANCE_TYPE
ALERT = change_classes.ALERT_POLICY_TYPE


def guard(path: Path, *flags: str) -> Any:
    result = runner.invoke(app, ["preview", "guard", str(path), "--json", *flags])
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def blocked(tmp_path: Path, *steps: dict[str, Any], flags: tuple[str, ...] = ()) -> list[dict]:
    result, out = guard(write(tmp_path, *steps), *flags)
    assert result.exit_code in (0, 1), result.output
    assert (result.exit_code == 1) == bool(out["blocked"])
    return out["blocked"]


def instance(**settings: Any) -> dict[str, Any]:
    base = {
        "tier": "db-custom-2-7680",
        "edition": "ENTERPRISE",
        "availabilityType": "REGIONAL",
        "backupConfiguration": {
            "enabled": True,
            "transactionLogRetentionDays": 7,
            "backupRetentionSettings": {"retainedBackups": 14},
        },
    }
    return {
        "name": "events-outbox",
        "region": "europe-west1",
        "databaseVersion": "POSTGRES_15",
        "settings": base | settings,
    }


def sql_update(tmp_path: Path, old: dict, new: dict) -> list[dict]:
    return blocked(tmp_path, step("update", SQL, "outbox-instance", old, new, parent=OUTBOX))


# -- in-place updates by their effect ----------------------------------------------------------


def test_lower_subscription_retention_is_blocked_and_a_raise_or_labels_pass(
    tmp_path: Path,
) -> None:
    old = {"name": "events-sub", "messageRetentionDuration": "604800s", "labels": {"a": "1"}}
    [finding] = blocked(
        tmp_path,
        step("update", SUB, "events-sub", old, old | {"messageRetentionDuration": "86400s"}),
    )
    assert finding["check"] == "in-place effect"
    assert finding["properties"] == ["messageRetentionDuration"]
    assert "data loss" in finding["message"] and "expires the older" in finding["message"]
    raised = old | {"messageRetentionDuration": "1209600s", "labels": {"a": "2"}}
    assert blocked(tmp_path, step("update", SUB, "events-sub", old, raised)) == []


def test_lower_delivery_attempts_and_a_removed_dead_letter_policy_are_blocked(
    tmp_path: Path,
) -> None:
    old = {"name": "s", "deadLetterPolicy": {"deadLetterTopic": "t", "maxDeliveryAttempts": 5}}
    lower = {"name": "s", "deadLetterPolicy": {"deadLetterTopic": "t", "maxDeliveryAttempts": 3}}
    [finding] = blocked(tmp_path, step("update", SUB, "s", old, lower))
    assert finding["properties"] == ["deadLetterPolicy.maxDeliveryAttempts"]
    assert blocked(tmp_path, step("update", SUB, "s", old, {"name": "s"}))
    higher = {"name": "s", "deadLetterPolicy": {"deadLetterTopic": "t", "maxDeliveryAttempts": 9}}
    assert blocked(tmp_path, step("update", SUB, "s", old, higher)) == []


def test_tier_change_restarts_and_is_blocked(tmp_path: Path) -> None:
    [finding] = sql_update(tmp_path, instance(), instance(tier="db-custom-4-15360"))
    assert finding["properties"] == ["settings.tier"]
    assert "restart/downtime" in finding["message"]


def test_version_downgrade_is_impossible_and_an_upgrade_is_downtime(tmp_path: Path) -> None:
    old = instance()
    [down] = sql_update(tmp_path, old, old | {"databaseVersion": "POSTGRES_14"})
    assert "'POSTGRES_15' -> 'POSTGRES_14': replacement" in down["message"]
    assert "downgrade is impossible" in down["message"]
    [up] = sql_update(tmp_path, old, old | {"databaseVersion": "POSTGRES_16"})
    assert ": restart/downtime" in up["message"]


def test_fewer_backups_shorter_logs_and_flags_are_blocked_more_backups_pass(
    tmp_path: Path,
) -> None:
    fewer = instance(
        backupConfiguration={
            "enabled": True,
            "transactionLogRetentionDays": 3,
            "backupRetentionSettings": {"retainedBackups": 7},
        }
    )
    [finding] = sql_update(tmp_path, instance(), fewer)
    assert set(finding["properties"]) == {
        "settings.backupConfiguration.backupRetentionSettings.retainedBackups",
        "settings.backupConfiguration.transactionLogRetentionDays",
    }
    flags = instance(databaseFlags=[{"name": "max_connections", "value": "400"}])
    assert sql_update(tmp_path, instance(), flags)[0]["properties"] == ["settings.databaseFlags"]
    more = instance(
        backupConfiguration={
            "enabled": True,
            "transactionLogRetentionDays": 7,
            "backupRetentionSettings": {"retainedBackups": 30},
        }
    )
    assert sql_update(tmp_path, instance(), more) == []


def test_a_value_known_only_at_apply_is_judged_as_the_worst_case(tmp_path: Path) -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    old = {"name": "s", "messageRetentionDuration": "604800s"}
    [finding] = blocked(
        tmp_path, step("update", SUB, "s", old, old | {"messageRetentionDuration": unknown})
    )
    assert "data loss" in finding["message"] and "known only at apply" in finding["message"]
    known = old | {"messageRetentionDuration": "1209600s"}  # the same change, known: a raise
    assert blocked(tmp_path, step("update", SUB, "s", old, known)) == []


def test_an_unset_value_counts_as_gcps_default(tmp_path: Path) -> None:
    """Unset retention is 7 days, unset attempts 5, no expiration policy 31 days."""
    lower = {"name": "s", "messageRetentionDuration": "86400s"}
    assert blocked(tmp_path, step("update", SUB, "s", {"name": "s"}, lower))
    week = {"name": "s", "messageRetentionDuration": "604800s"}
    assert blocked(tmp_path, step("update", SUB, "s", {"name": "s"}, week)) == []
    never = {"name": "d", "expirationPolicy": {"ttl": ""}}
    month = {"name": "d", "expirationPolicy": {"ttl": "2678400s"}}
    [finding] = blocked(tmp_path, step("update", SUB, "d", never, month))
    assert finding["properties"] == ["expirationPolicy.ttl"]
    assert blocked(tmp_path, step("update", SUB, "d", month, never)) == []


def test_backups_or_pitr_off_and_a_disabled_alert_are_blocked(tmp_path: Path) -> None:
    on = instance()
    on["settings"]["backupConfiguration"]["pointInTimeRecoveryEnabled"] = True
    off = instance()
    off["settings"]["backupConfiguration"]["pointInTimeRecoveryEnabled"] = False
    [pitr] = sql_update(tmp_path, on, off)
    assert pitr["properties"] == ["settings.backupConfiguration.pointInTimeRecoveryEnabled"]
    alert = {"displayName": "DLQ backlog", "enabled": True}
    [finding] = blocked(tmp_path, step("update", ALERT, "dlq", alert, alert | {"enabled": False}))
    assert "alerting off" in finding["message"]
    assert blocked(tmp_path, step("update", ALERT, "dlq", {"enabled": False}, alert)) == []


# -- step ops, deletes, imports, collisions -----------------------------------------------------


@pytest.mark.parametrize(
    "op", ["replace", "create-replacement", "delete-replaced", "import-replacement"]
)
def test_every_replace_op_is_blocked_for_data_and_other_resources(tmp_path: Path, op: str) -> None:
    [sub] = blocked(tmp_path, step(op, SUB, "events-sub", {"name": "a"}, {"name": "a"}))
    assert sub["check"] == "replace" and "its backlog is lost" in sub["message"]
    account = step(op, names.SERVICE_ACCOUNT_TYPE, "relay-sa", {"accountId": "r"}, {})
    [other] = blocked(tmp_path, account)
    assert "would be REPLACED" in other["message"] and "grants" in other["message"]


def test_read_replacement_and_a_given_up_replacement_need_a_word(tmp_path: Path) -> None:
    found = blocked(
        tmp_path,
        step("read-replacement", SUB, "events-sub", {"name": "a"}, {"name": "a"}),
        step("remove-pending-replace", names.TOPIC_TYPE, "events-topic", old={"name": "e"}),
    )
    by_name = {f["name"]: f for f in found}
    assert {f["check"] for f in found} == {"step op"}
    assert "READ instead of managed" in by_name["events-sub"]["message"]
    assert "was already deleted" in by_name["events-topic"]["message"]


def test_discarding_read_resources_deletes_nothing_and_passes(tmp_path: Path) -> None:
    discards = [
        step(op, SUB, f"s-{op}", old={"name": "a"}) for op in ("discard", "discard-replaced")
    ]
    assert blocked(tmp_path, *discards) == []


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ALERT, "dlq-backlog-alert"),
        ("gcp:monitoring/notificationChannel:NotificationChannel", "pager"),
        ("gcp:pubsub/topicIAMMember:TopicIAMMember", "relay-publisher"),
        (names.SERVICE_ACCOUNT_TYPE, "relay-sa"),
        ("gcp:sql/user:User", "relay-db-user"),
        ("gcp:cloudrunv2/service:Service", "outbox-relay"),
    ],
)
def test_deletes_of_every_declared_type_are_blocked(tmp_path: Path, kind: str, name: str) -> None:
    [finding] = blocked(tmp_path, step("delete", kind, name, old={"name": name}))
    assert finding["check"] == "delete" and finding["name"] == name
    assert "would be DELETED" in finding["message"]


def test_a_retained_delete_says_it_is_abandoned_and_components_are_not_findings(
    tmp_path: Path,
) -> None:
    retained = step("delete", SUB, "events-sub-old", old={"name": "old"}, retained=True)
    component = step("delete", names.EVENT_BUS_TYPE, "events", old={}, parent=None)
    component["oldState"]["custom"] = False
    [finding] = blocked(tmp_path, retained, component)
    assert "ABANDONED (retained" in finding["message"]


def test_an_import_with_differences_is_blocked_and_an_exact_one_passes(tmp_path: Path) -> None:
    live = {"name": "events-sub", "ackDeadlineSeconds": 10}
    declared = {"name": "events-sub", "ackDeadlineSeconds": 60}
    [finding] = blocked(tmp_path, step("import", SUB, "events-sub", live, declared))
    assert finding["check"] == "import with diff"
    assert finding["properties"] == ["ackDeadlineSeconds"]
    assert blocked(tmp_path, step("import", SUB, "events-sub", live, live)) == []


def test_a_create_of_a_resource_adopt_plan_found_live_is_a_collision(tmp_path: Path) -> None:
    plan = tmp_path / "adopt.json"
    plan.write_text(
        json.dumps(
            {
                "resources": [
                    {"type": names.TOPIC_TYPE, "name": "events-topic", "state": "exists"},
                    {"type": SUB, "name": "events-sub-new", "state": "absent"},
                    {"type": SQL, "name": "erp", "state": "exists", "managed": False},
                ]
            }
        )
    )
    creates = [
        step("create", names.TOPIC_TYPE, "events-topic", new={"name": "events"}),
        step("create", SUB, "events-sub-new", new={"name": "new"}),
        step("create", SQL, "erp", new={"name": "erp"}, parent=OUTBOX),
    ]
    [finding] = blocked(tmp_path, *creates, flags=("--adopt-plan", str(plan)))
    assert finding["check"] == "collision" and finding["name"] == "events-topic"
    assert "pulumi import --file" in finding["message"]
    assert blocked(tmp_path, *creates) == []  # without the live estate nothing is known
    plan.write_text("{}")
    result, _ = guard(write(tmp_path, *creates), "--adopt-plan", str(plan))
    assert result.exit_code == 2 and "not `eventsctl adopt plan --json` output" in result.stderr


# -- a failed preview ----------------------------------------------------------------------------

PROTECT = (
    'unable to replace resource "{urn}"\nas it is currently marked for protection. To unprotect '
    "the resource, remove the `protect` flag from the resource in your Pulumi program and run "
    "`pulumi up`"
)


def test_a_protect_error_fails_the_guard_with_the_reason_and_cannot_be_allowed(
    tmp_path: Path,
) -> None:
    sub = urn(SUB, "events-sub")
    diagnostics = [
        {"urn": sub, "message": "error: " + PROTECT.format(urn=sub), "severity": "error"},
        {"urn": "", "message": "a deprecation", "severity": "warning"},
    ]
    path = write(tmp_path, diagnostics=diagnostics)
    body = tmp_path / "body.md"
    body.write_text(f"guard-allow: {sub} we mean it\n")
    summary = tmp_path / "summary.md"
    result, out = guard(path, "--pr-body", str(body), "--summary", str(summary), "--stack", "prod")
    assert result.exit_code == 1
    [finding] = out["blocked"]
    assert finding["check"] == "diagnostic" and finding["allowed"] is False
    assert "the preview failed (events-sub): unable to replace resource" in finding["message"]
    assert "error:" not in finding["message"]  # Pulumi writes the prefix into the message
    text = summary.read_text()
    assert "No plan: the preview failed before planning" in text
    assert "marked for protection" in text and "- a deprecation" in text
    assert "\n  as it is" not in text  # a multi-line message stays one markdown item


def test_a_preview_that_failed_without_an_error_in_its_json_is_blocked_with_its_log(
    tmp_path: Path,
) -> None:
    """Policy violations are not in `--json` output, and a crash writes no JSON at all."""
    log = tmp_path / "preview.log"
    log.write_text(
        "Policies:\n    events-infra-policies@v1 (local: base/policy)\n"
        "        - [mandatory]  dead-letter-retention  (gcp:pubsub/subscription:Subscription: "
        "events-dlq-sub)\n          mandatory: the DLQ keeps letters a week on production\n"
    )
    summary = tmp_path / "summary.md"
    flags = ("--preview-exit-code", "255", "--preview-log", str(log), "--summary", str(summary))
    result, out = guard(write(tmp_path, step("same", SUB, "s", {}, {})), *flags)
    assert result.exit_code == 1
    [finding] = out["blocked"]
    assert (
        "pulumi preview exited 255: mandatory: the DLQ keeps letters a week" in finding["message"]
    )
    empty = tmp_path / "crashed.json"
    empty.write_text("")
    log.write_text("panic: something\nerror: an unhandled error occurred\n")
    result, out = guard(empty, *flags)
    assert result.exit_code == 1
    assert "exited 255: error: an unhandled error occurred" in out["blocked"][0]["message"]
    assert "No plan: the preview failed before planning" in summary.read_text()
    passed = guard(write(tmp_path, step("same", SUB, "s", {}, {})), "--preview-exit-code", "0")
    assert passed[0].exit_code == 0


def test_an_empty_adopt_plan_is_a_note_not_a_pass_in_silence(tmp_path: Path) -> None:
    plan = tmp_path / "adopt.json"
    plan.write_text("")
    summary = tmp_path / "summary.md"
    create = step("create", names.TOPIC_TYPE, "events-topic", new={"name": "events"})
    result, _ = guard(write(tmp_path, create), "--adopt-plan", str(plan), "--summary", str(summary))
    assert result.exit_code == 0
    assert "creates were not checked against the live estate" in summary.read_text()


def test_an_empty_preview_file_is_exit_2_with_a_comment_saying_so(tmp_path: Path) -> None:
    empty = tmp_path / "preview.json"
    empty.write_text("")
    summary = tmp_path / "summary.md"
    result = runner.invoke(
        app, ["preview", "guard", str(empty), "--summary", str(summary), "--stack", "dev"]
    )
    assert result.exit_code == 2
    assert "wrote nothing" in result.stderr and "Traceback" not in result.output
    assert summary.read_text().startswith("### Pulumi preview: `dev`\n\n**Blocked**:")


# -- overrides per pull request ------------------------------------------------------------------


def test_a_pull_request_line_allows_one_urn_with_its_reason_recorded(tmp_path: Path) -> None:
    old, new = (
        step("delete", SUB, "events-sub-old", old={"name": "o"}),
        step("delete", SUB, "events-sub-other", old={"name": "x"}),
    )
    body = tmp_path / "body.md"
    body.write_text(
        "Retire the old subscription.\n\n"
        f"- guard-allow: {old['urn']} — migrated to events-sub-new (runbook step 4)\n"
        f"guard-allow: {new['urn']}\n"
        f"guard-allow: {urn(SUB, 'nothing-here')} stale line\n"
        "guard-allow: events-sub-other because\n"
    )
    summary = tmp_path / "summary.md"
    result, out = guard(
        write(tmp_path, old, new), "--pr-body", str(body), "--summary", str(summary)
    )
    assert result.exit_code == 1  # the second URN's line gives no reason
    assert [f["name"] for f in out["blocked"]] == ["events-sub-other"]
    [allowed] = out["allowed"]
    assert allowed["name"] == "events-sub-old"
    assert allowed["reason"] == "migrated to events-sub-new (runbook step 4)"
    text = summary.read_text()
    assert "**Allowed:**" in text and "(pull request)" in text
    assert "migrated to events-sub-new (runbook step 4)" in text
    assert f"override for `{urn(SUB, 'nothing-here')}` matched nothing" in text
    assert "gives no reason" in text and "needs a full URN" in text
    # the deploy of the merge commit reads back exactly what this comment granted
    granted = from_body(text).granted
    assert list(granted) == [old["urn"]]
    assert granted[old["urn"]].reason == "migrated to events-sub-new (runbook step 4)"


def test_an_override_cannot_break_out_of_the_comment(tmp_path: Path) -> None:
    gone = step("delete", SUB, "events-sub-old", old={"name": "o"})
    body = tmp_path / "body.md"
    body.write_text(
        f"guard-allow: {gone['urn']} ok --> \nguard-allow: {urn(SUB, 'x')} <b>`x`</b>\n"
        f"guard-allow: {gone['urn']}`-->` nice try\n"
    )
    summary = tmp_path / "summary.md"
    result, out = guard(write(tmp_path, gone), "--pr-body", str(body), "--summary", str(summary))
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.count("-->") == text.count("<!--")  # every comment closes once, where it should
    assert "<b>" not in text and "nice try" not in text
    assert out["allowed"][0]["reason"] == "ok"


# -- the table against the provider --------------------------------------------------------------


def _provider_has(kind: str, path: str) -> bool:
    import pulumi_gcp

    module_name, cls = {
        names.TOPIC_TYPE: ("pubsub", "TopicArgs"),
        SUB: ("pubsub", "SubscriptionArgs"),
        SQL: ("sql", "DatabaseInstanceArgs"),
        names.SQL_DATABASE_TYPE: ("sql", "DatabaseArgs"),
        ALERT: ("monitoring", "AlertPolicyArgs"),
    }[kind]
    module = getattr(pulumi_gcp, module_name)
    args: Any = getattr(module, cls)
    parts = path.split(".")
    for i, part in enumerate(parts):
        prop = getattr(args, re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower(), None)
        if not isinstance(prop, property):
            return False
        if i < len(parts) - 1:
            nested = re.search(r"ForwardRef\('(\w+Args)'\)", repr(prop.fget.__annotations__))
            if nested is None:
                return False
            args = getattr(module._inputs, nested.group(1))
    return True


def test_every_property_in_the_table_is_an_input_of_the_installed_provider() -> None:
    paths = [(k, p) for k, table in change_classes.PROPERTIES.items() for p in table]
    assert len(paths) == 19
    assert [(k, p) for k, p in paths if not _provider_has(k, p)] == []
    for table in change_classes.PROPERTIES.values():  # each names a setting the table classes
        for prop in table.values():
            assert (prop.kind, prop.setting) in change_classes.RULES
    assert not _provider_has(SUB, "deadLetterPolicy.maxAttempts")  # the check can fail
