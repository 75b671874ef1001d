"""`eventsctl topology diff --from REF`: pairs of stack files, each change classed by the one
table of what a change does (`stack_config.change_classes`), before Pulumi runs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.stack_config import change_classes as classes
from events_infra.stack_config.stack_files import read_stack_config, topology_from_config
from events_infra.stack_config.topology_diff import Change, diff, resources

from .conftest import STACKS

runner = CliRunner()


def prod() -> dict[str, Any]:
    return read_stack_config(STACKS / "Pulumi.prod.yaml")


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[tuple[str, str, str], Change]:
    found = diff(topology_from_config(before), topology_from_config(after))
    return {(c.kind, c.name, c.setting): c for c in found}


def edited(config: dict[str, Any], section: str, index: int | None = None, **values: Any):
    after = copy.deepcopy(config)
    target = after[f"events-infra:{section}"]
    (target[index] if index is not None else target).update(values)
    return after


CASES = {
    "lower subscription retention": (
        ("subscriptions", 0, {"message_retention": "1d"}),
        ("subscription", "events-sub", "message_retention"), classes.DATA_LOSS,
    ),
    "higher subscription retention": (
        ("subscriptions", 0, {"message_retention": "7d"}),
        ("subscription", "events-sub", "message_retention"), None,
    ),
    "a user filter": (
        ("subscriptions", 0, {"filter": 'attributes.region = "eu"'}),
        ("subscription", "events-sub", "filter"), classes.REPLACEMENT,
    ),
    "message ordering": (
        ("subscriptions", 0, {"enable_message_ordering": True}),
        ("subscription", "events-sub", "enable_message_ordering"), classes.REPLACEMENT,
    ),
    "fewer delivery attempts": (
        ("subscriptions", 0, {"max_delivery_attempts": 5}),
        ("subscription", "events-sub", "max_delivery_attempts"), None,
    ),
    "ack deadline": (
        ("subscriptions", 0, {"ack_deadline": 120}),
        ("subscription", "events-sub", "ack_deadline"), classes.IN_PLACE,
    ),
    "tier": (
        ("database", None, {"tier": "db-custom-4-15360"}),
        ("database", "events-outbox", "tier"), classes.RESTART,
    ),
    "major upgrade": (
        ("database", None, {"database_version": "POSTGRES_17"}),
        ("database", "events-outbox", "database_version"), classes.RESTART,
    ),
    "major downgrade": (
        ("database", None, {"database_version": "POSTGRES_15"}),
        ("database", "events-outbox", "database_version"), classes.REPLACEMENT,
    ),
    "region": (
        ("database", None, {"region": "europe-west1", "subnetwork":
                            "projects/cotton-erp/regions/europe-west1/subnetworks/vpc"}),
        ("database", "events-outbox", "region"), classes.REPLACEMENT,
    ),
    "fewer backups": (
        ("database", None, {"retained_backups": 7}),
        ("database", "events-outbox", "retained_backups"), classes.DATA_LOSS,
    ),
    "more backups": (
        ("database", None, {"retained_backups": 30}),
        ("database", "events-outbox", "retained_backups"), classes.IN_PLACE,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_change_is_classed_by_what_it_does(case: str) -> None:
    (section, index, values), key, expected = CASES[case]
    before = prod()
    if case == "fewer delivery attempts":  # prod's events-sub keeps the default 5: raise first
        before = edited(
            before,
            "subscriptions",
            0,
            max_delivery_attempts=10,
            max_delivery_attempts_reason="a slow partner API",
        )
        expected = classes.RESTART
    if case == "higher subscription retention":
        before = edited(before, "subscriptions", 0, message_retention="1d")
        expected = classes.IN_PLACE
    found = changes(before, edited(before, section, index, **values))
    assert key in found, sorted(found)
    assert found[key].change == expected
    assert found[key].blocking == (expected in classes.BLOCKING)
    if expected == classes.REPLACEMENT and key[0] == "subscription":
        assert "subscription migrate" in found[key].why  # the way through, named


def test_removing_a_subscription_deletes_it_unless_the_stack_retains_it() -> None:
    before = prod()  # production: data resources retained on delete
    after = copy.deepcopy(before)
    after["events-infra:subscriptions"] = after["events-infra:subscriptions"][:-1]
    [gone] = [c for c in changes(before, after).values() if c.new is None]
    assert (gone.name, gone.change) == ("notifications", classes.IN_PLACE)
    assert "abandoned" in gone.why
    before["events-infra:retain_on_delete"] = after["events-infra:retain_on_delete"] = False
    [gone] = [c for c in changes(before, after).values() if c.new is None]
    assert gone.change == classes.DATA_LOSS and gone.blocking


def test_an_unchanged_stack_has_no_changes_and_a_new_one_only_creates() -> None:
    assert changes(prod(), prod()) == {}
    created = diff(None, topology_from_config(prod()))
    assert created and {c.change for c in created} == {classes.CREATE}


def test_every_rule_applies_to_a_setting_the_diff_compares() -> None:
    """A rule for a setting the diff never looks at would silently never fire."""
    compared = {(kind, setting) for (kind, _), s in resources(topology_from_config(prod())).items()
                for setting in s}  # fmt: skip
    assert set(classes.RULES) - classes.PROGRAM_FIXED <= compared
    assert not classes.PROGRAM_FIXED & compared  # a stack setting's rule is not program-fixed
    immutable = {k for k, rule in classes.RULES.items() if rule.classify(1, 2) == "replacement"}
    assert {("subscription", "filter"), ("subscription", "enable_message_ordering")} <= immutable


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the stacks, committed once."""
    root = tmp_path / "repo"
    shutil.copytree(STACKS, root / "stacks", ignore=shutil.ignore_patterns("*.py", "__pycache__"))

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "stacks")
    return root


def test_cli_diffs_the_working_tree_against_a_revision(repo: Path, tmp_path: Path) -> None:
    stack_file = repo / "stacks" / "Pulumi.dev.yaml"
    text = stack_file.read_text().replace(
        "    - name: events-sub\n", "    - name: events-sub\n      message_retention: 1h\n"
    )
    stack_file.write_text(text)
    args = ["topology", "diff", "--from", "HEAD", "--stack", "dev",
            "--stacks-dir", str(repo / "stacks")]  # fmt: skip
    report = tmp_path / "comment.md"
    result = runner.invoke(app, [*args, "--json", "--markdown", str(report)])
    assert result.exit_code == 1, result.output  # data loss: it blocks
    [change] = json.loads(result.stdout)["changes"]
    assert (change["name"], change["setting"], change["change"]) == (
        "events-sub", "message_retention", classes.DATA_LOSS,
    )  # fmt: skip
    assert (
        "| subscription `events-sub` |" in report.read_text() and "(blocks)" in report.read_text()
    )

    unknown = runner.invoke(app, ["topology", "diff", "--from", "no-such-ref", "--stack", "dev",
                                  "--stacks-dir", str(repo / "stacks")])  # fmt: skip
    assert unknown.exit_code == 2
    [line] = unknown.stderr.strip().splitlines()
    assert "no-such-ref" in line and line.startswith("error: ")

    shutil.copy(stack_file, repo / "stacks" / "Pulumi.staging.yaml")  # new in this change
    new = runner.invoke(app, [*args[:-3], "staging", *args[-2:], "--json"])
    assert new.exit_code == 0, new.output
    assert {c["change"] for c in json.loads(new.stdout)["changes"]} == {classes.CREATE}
