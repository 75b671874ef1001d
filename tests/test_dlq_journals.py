"""`eventsctl dlq journals`: undo journals hold whole payloads, so they do not outlive the dead
letters they could restore (the stack's DLQ retention, by default), and pruning never follows a
symlink or touches what is not a journal of this user."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.stack_config.stack_files import load_stack

from .conftest import STACKS

runner = CliRunner()
DAY = 86400


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EVENTSCTL_AUDIT_LOG", raising=False)
    journals = tmp_path / "state" / "eventsctl" / "journal"
    journals.mkdir(parents=True)
    return journals


def journal(directory: Path, name: str, days_old: float) -> Path:
    path = directory / name
    path.write_text('{"data": "eA=="}\n')
    stamp = time.time() - days_old * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_prune_deletes_only_journals_past_the_dlq_retention(state: Path, tmp_path: Path) -> None:
    retention_days = load_stack("dev", STACKS).dead_letter.message_retention / DAY
    old = journal(state, "events-sub-replay-1.jsonl", retention_days + 1)
    fresh = journal(state, "events-sub-replay-2.jsonl", retention_days - 1)
    other = journal(state, "notes.txt", retention_days + 5)  # not a journal
    outside = tmp_path / "precious.jsonl"
    outside.write_text("keep me\n")
    os.utime(outside, (0, 0))
    (state / "link.jsonl").symlink_to(outside)

    args = ["dlq", "journals", "--stack", "dev", "--stacks-dir", str(STACKS)]
    listed = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert {Path(j["path"]).name: j["expired"] for j in listed["journals"]} == {
        old.name: True,
        fresh.name: False,
    }
    dry = runner.invoke(app, [*args, "--prune", "--dry-run"])
    assert dry.exit_code == 0 and "would delete 1 journals" in dry.stderr and old.exists()

    pruned = runner.invoke(app, [*args, "--prune"])
    assert pruned.exit_code == 0, pruned.output
    assert not old.exists() and fresh.exists() and other.exists()
    assert outside.read_text() == "keep me\n" and (state / "link.jsonl").is_symlink()
    audit = tmp_path / "state" / "eventsctl" / "audit.jsonl"
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["operation"] == "journals-prune" and record["removed"] == [str(old)]
    assert audit.stat().st_mode & 0o777 == 0o600


def test_an_explicit_retention_and_a_bad_one(state: Path) -> None:
    journal(state, "a-migrate-1.jsonl", 2)
    args = ["dlq", "journals", "--stack", "dev", "--stacks-dir", str(STACKS), "--prune"]
    assert runner.invoke(app, [*args, "--older-than", "3d"]).exit_code == 0
    assert (state / "a-migrate-1.jsonl").exists()
    assert runner.invoke(app, [*args, "--older-than", "1d"]).exit_code == 0
    assert not (state / "a-migrate-1.jsonl").exists()
    bad = runner.invoke(app, [*args, "--older-than", "soon"])
    assert bad.exit_code == 2
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("error: --older-than 'soon'")
