"""`eventsctl preview guard` on preview JSON fixtures (tests/fixtures/preview)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.preview.digest import load_preview, urn_component, urn_type
from events_infra.preview.guard import REPLACE, find_findings
from events_infra.preview.overrides import from_body

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "preview"
runner = CliRunner()
NOTIFICATIONS = (
    "urn:pulumi:prod::events-infra::pulumi:pulumi:Stack$events-infra:event_bus:EventBus$"
    "gcp:pubsub/subscription:Subscription::events-sub-notifications"
)


def guard(name: str, *flags: str, tmp: Path | None = None) -> object:
    return runner.invoke(app, ["preview", "guard", str(FIXTURES / f"{name}.json"), *flags])


def test_creates_pass_with_a_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = guard("creates", "--summary", str(summary), "--stack", "prod")
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    marker, title = text.splitlines()[:2]
    assert (marker, title) == (
        "<!-- eventsctl preview guard: prod -->",
        "### Pulumi preview: `prod`",
    )
    assert "| `events-infra:event_bus:EventBus` | 4 | 0 | 0 | 0 |" in text
    assert "Blocked" not in text


def test_in_place_update_passes() -> None:
    result = guard("update", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"blocked": [], "allowed": []}


def test_replaced_subscription_is_blocked_naming_the_property(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = guard("replace_subscription", "--summary", str(summary))
    assert result.exit_code == 1
    assert (
        "BLOCKED: subscription events-sub-notifications would be REPLACED (forced by: filter): "
        "its backlog is lost"
    ) in result.stderr
    text = summary.read_text()
    assert "| `events-infra:event_bus:EventBus` | 0 | 1 | 2 | 0 |" in text
    assert ":x: subscription events-sub-notifications would be REPLACED" in text
    # the IAM member replaced with it: deleted and created again, so it needs a word too
    assert "agent-subscriber would be REPLACED" in result.stderr
    assert "deleted and created again" in result.stderr


def test_allow_lets_an_intended_replace_through(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = guard("replace_subscription", "--allow", NOTIFICATIONS, "--summary", str(summary))
    assert result.exit_code == 1  # the IAM member replaced with it is not allowed
    assert "BLOCKED: gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember" in result.stderr
    assert "allowed: subscription events-sub-notifications" in result.stderr
    assert "**Allowed:**" in summary.read_text() and "(--allow)" in summary.read_text()


def test_deletes_are_blocked() -> None:
    result = guard("delete_topic", "--json")
    assert result.exit_code == 1
    blocked = json.loads(result.stdout)["blocked"]
    assert sorted((b["name"], b["op"]) for b in blocked) == [
        ("events-dead-letter-topic", "delete"),
        ("events-sub-notifications", "delete"),
    ]
    assert any("topic events-dead-letter-topic would be DELETED" in b["message"] for b in blocked)


def test_sql_instance_replacement_pair_is_one_finding() -> None:
    findings = find_findings(load_preview(FIXTURES / "sql_replace.json"), from_body(""))
    assert len(findings) == 1
    [finding] = findings
    assert (finding.type, finding.check, finding.properties) == (
        "gcp:sql/databaseInstance:DatabaseInstance",
        REPLACE,
        ("region",),
    )
    assert "the outbox and its backups go with it" in finding.describe()


def test_not_a_preview_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    result = runner.invoke(app, ["preview", "guard", str(bad)])
    assert result.exit_code == 2
    assert "no 'steps' list; pass `pulumi preview --json` output" in result.stderr
    missing = runner.invoke(app, ["preview", "guard", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_urn_parsing() -> None:
    assert urn_type(NOTIFICATIONS) == "gcp:pubsub/subscription:Subscription"
    assert urn_component(NOTIFICATIONS) == "events-infra:event_bus:EventBus"
    stack_child = "urn:pulumi:prod::p::pulumi:pulumi:Stack$gcp:pubsub/topic:Topic::t"
    assert urn_component(stack_child) == "(stack)"
