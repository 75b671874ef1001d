"""Dead letters anyone with publish rights could forge, and the files the DLQ tools write:
a hostile letter is that letter's line, never a crash of the whole DLQ's scan; what is printed
cannot drive the terminal; journals, exports and the audit log are the owner's only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.dlq.journal import Journal
from events_infra.dlq.messages import REPLAY_COUNT, DeadLetter
from events_infra.dlq.private_files import UnsafePath, open_append
from tests.support.dlq_support import DlqStack, make_stack

runner = CliRunner()
ESCAPE = "\x1b]0;owned\x07\x1b[2J"  # set the terminal title, clear the screen


@pytest.fixture
def stack(pubsub: str, tmp_path: Path) -> DlqStack:
    return make_stack(tmp_path)


def test_a_superscript_count_is_no_count_not_a_crash() -> None:
    from datetime import UTC, datetime

    letter = DeadLetter(
        "m", "a", b"{}", {REPLAY_COUNT: "²", "CloudPubSubDeadLetterSourceDeliveryCount": "²"},
        "", datetime.now(UTC),
    )  # fmt: skip
    assert letter.replay_count == 0 and letter.delivery_count is None
    assert letter.to_record()[REPLAY_COUNT] == 0


def test_inspect_and_replay_take_a_forged_letter_in_their_stride(
    stack: DlqStack, tmp_path: Path
) -> None:
    stack.seed(2, key_prefix="ok")
    stack.seed(1, key_prefix="bad", attributes={REPLAY_COUNT: "²"}, ordering_key="k" + ESCAPE)
    shown = runner.invoke(app, ["dlq", "inspect", *stack.cli_args()])
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.stdout and "\\x1b]0;owned\\x07" in shown.stdout
    replayed = runner.invoke(
        app, ["dlq", "replay", *stack.cli_args(), "--yes", "--no-snapshot", "--json"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["counts"]["replayed"] == 3
    assert "Traceback" not in replayed.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_and_audit_log_are_the_owners_only(stack: DlqStack, tmp_path: Path) -> None:
    stack.seed(2)
    audit = tmp_path / "audit" / "audit.jsonl"
    result = runner.invoke(
        app, ["dlq", "replay", *stack.cli_args(), "--yes", "--no-snapshot", "--json",
              "--audit-log", str(audit)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    journal = Path(json.loads(result.stdout)["journal"])
    assert (mode(journal), mode(journal.parent)) == (0o600, 0o700)  # whole payloads inside
    assert (mode(audit), mode(audit.parent)) == (0o600, 0o700)


def test_a_symlink_in_place_of_a_log_is_refused_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    trap = tmp_path / "audit.jsonl"
    trap.symlink_to(victim)
    with pytest.raises(UnsafePath, match="is a symlink"):
        open_append(trap)
    with pytest.raises(UnsafePath):
        Journal(trap)
    assert victim.read_text() == "keep\n"


def test_an_existing_log_is_narrowed_to_the_owner(tmp_path: Path) -> None:
    old = tmp_path / "audit.jsonl"
    old.write_text("")
    os.chmod(old, 0o644)  # written by an earlier version
    with open_append(old) as log:
        log.write("{}\n")
    assert mode(old) == 0o600
