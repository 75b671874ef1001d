"""The drift workflow, read as YAML: scheduled per stack, a refreshing preview that expects no
changes plus `dlq doctor`, an issue opened or updated when either finds something, read-only
identities only, every action pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.test_workflow_trust import PINNED

ROOT = Path(__file__).resolve().parent.parent
DRIFT = ROOT / ".github" / "workflows" / "drift.yml"


def drift() -> dict[str, Any]:
    return yaml.safe_load(DRIFT.read_text())


def job() -> dict[str, Any]:
    [found] = drift()["jobs"].values()
    return found


def step(id_: str) -> dict[str, Any]:
    [found] = [s for s in job()["steps"] if s.get("id") == id_]
    return found


def test_it_runs_on_a_schedule_for_every_stack() -> None:
    spec = drift()
    triggers = spec[True]  # YAML 1.1 reads the key `on` as True
    [schedule] = triggers["schedule"]
    minute, hour, *_ = schedule["cron"].split()
    assert minute.isdigit() and hour.startswith("*/")  # several times a day, not weekly
    assert "workflow_dispatch" in triggers
    stacks = {p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")}
    assert set(job()["strategy"]["matrix"]["stack"]) == stacks


def test_a_refreshing_preview_expects_no_changes_and_doctor_checks_the_rest() -> None:
    refresh = step("refresh")["run"]
    assert 'pulumi preview --stack "$STACK" --refresh --expect-no-changes' in refresh
    assert "set +e" in refresh and 'echo "code=$?"' in refresh  # the issue step still runs
    doctor = step("doctor")["run"]
    assert 'eventsctl dlq doctor --stack "$STACK" --fail-unchecked' in doctor
    assert 'echo "code=$?"' in doctor  # 3: what the read-only account may not read is drift too
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["options"]["refresh"] == "always"  # every preview and up sees drift too


def test_drift_opens_or_updates_one_issue_and_fails_the_run() -> None:
    [issue] = [s for s in job()["steps"] if "gh issue" in s.get("run", "")]
    assert issue["if"] == "steps.refresh.outputs.code != '0' || steps.doctor.outputs.code != '0'"
    script = issue["run"]
    assert "gh issue comment" in script and "gh issue create" in script
    assert '--title "Drift on $STACK"' in script and "--label drift" in script
    assert script.rstrip().endswith("exit 1")  # the scheduled run is red too
    assert "${{" not in script  # step outputs reach the script as environment variables


def test_read_only_identities_and_pinned_actions() -> None:
    spec = drift()
    assert spec["permissions"] == {}
    assert job()["permissions"] == {"contents": "read", "id-token": "write", "issues": "write"}
    text = DRIFT.read_text()
    assert "DEPLOY" not in text and "pulumi up" not in text and "${{ secrets." not in text
    assert "vars.PULUMI_PREVIEW_TEAM" in text
    for s in job()["steps"]:
        if "uses" in s and not s["uses"].startswith("./"):
            assert PINNED.match(s["uses"]), s["uses"]
    # each stack's own read-only account, or a one-line error: never a silent fallback
    [account] = [s for s in job()["steps"] if s.get("id") == "account"]
    assert "exit 1" in account["run"] and "::error::" in account["run"]
    [auth] = [s for s in job()["steps"] if s.get("id") == "auth"]
    assert auth["with"]["service_account"] == "${{ steps.account.outputs.account }}"


def test_the_refresh_previews_the_digest_the_stack_runs() -> None:
    """The program requires relay.image_digest; without it every drift run would fail."""
    names = [s.get("name", s.get("uses", "")) for s in job()["steps"]]
    [running] = [s for s in job()["steps"] if s.get("id") == "running"]
    assert 'pulumi stack output relay_image_digest --stack "$STACK"' in running["run"]
    [pin] = [s for s in job()["steps"] if s.get("uses") == "./.github/actions/relay-image"]
    assert pin["with"]["digest"] == "${{ steps.running.outputs.digest }}"
    refresh = next(s for s in job()["steps"] if s.get("id") == "refresh")
    assert names.index(pin["uses"]) < names.index(refresh["name"])
