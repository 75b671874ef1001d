"""Nothing lost: `kill -9` a replay mid-way, then every dead letter is in the DLQ or on the
events topic. Plus unreachable-emulator and permission errors."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.dlq.clients import pubsub_errors
from events_infra.dlq.errors import DlqError
from events_infra.dlq.messages import REPLAYED_FROM
from events_infra.dlq.target import DlqTarget
from events_infra.local.emulator import free_port
from tests.support.dlq_support import child_stderr, dlq_process, ended, make_stack

runner = CliRunner()


def test_kill_9_mid_replay_loses_nothing(pubsub: str, tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    keys = set(stack.seed(1500, key_prefix="k"))
    capture = stack.capture()
    replay = dlq_process(stack, pubsub, "replay", tmp_path / "audit.jsonl", "--rate", "400")
    # wait until the replay is well under way, then kill it without warning
    copies: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(copies) < 300:
        batch = stack.pull(capture, timeout=0.5)
        if batch:
            stack.subscriber.acknowledge(subscription=capture, ack_ids=[m.ack_id for m in batch])
            copies += batch
    assert replay.poll() is None, (
        f"the replay ended ({replay.returncode}) before it could be killed: "
        f"{child_stderr(tmp_path / 'audit.jsonl', 'replay')}"
    )
    replay.send_signal(signal.SIGKILL)
    replay.wait(10)

    copies += stack.drain(capture, seconds=5)
    on_topic = {m.message.attributes["key"] for m in copies}
    assert all(REPLAYED_FROM in m.message.attributes for m in copies)
    # messages the killed replay had pulled but not acked come back after the ack deadline (10 s)
    time.sleep(11)
    in_dlq = {letter.attributes["key"] for letter in stack.peek()}
    assert 300 <= len(on_topic) < len(keys)  # it really was killed mid-way
    assert keys - on_topic - in_dlq == set()  # none lost
    assert (on_topic | in_dlq) == keys


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_mid_replay_prints_the_summary_and_records_it(
    pubsub: str, tmp_path: Path, stop: signal.Signals
) -> None:
    """Ctrl-C, and SIGTERM / SIGHUP (a stopped job, a closed terminal) alike."""
    stack = make_stack(tmp_path)
    keys = set(stack.seed(200, key_prefix="c"))
    capture = stack.capture()
    audit = tmp_path / "audit.jsonl"
    # 200 letters at 10/s take 20 s: the signal lands mid-way however slow the machine is
    replay = dlq_process(stack, pubsub, "replay", audit, "--json", "--rate", "10", output=True)
    copies: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(copies) < 5:
        copies += stack.drain(capture, seconds=0.5)
    assert replay.poll() is None, f"the replay ended first: {ended(replay)}"
    replay.send_signal(stop)
    stdout, stderr = replay.communicate(timeout=60)
    assert replay.returncode == 130, stderr
    result = json.loads(stdout)
    assert result["interrupted"] is True
    assert 0 < result["counts"]["replayed"] < 200
    assert "interrupted: the counts above are what was done" in stderr
    assert "Traceback" not in stderr
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["interrupted"] is True
    assert record["counts"]["replayed"] == result["counts"]["replayed"]
    copies += stack.drain(capture, seconds=3)
    on_topic = {m.message.attributes["key"] for m in copies}
    in_dlq = {letter.attributes["key"] for letter in stack.peek()}
    assert on_topic | in_dlq == keys  # nothing lost
    assert result["counts"]["replayed"] <= len(on_topic) == len(keys) - len(in_dlq)


def test_ctrl_c_mid_purge_prints_what_was_removed_and_loses_nothing(
    pubsub: str, tmp_path: Path, strict_proxy: object
) -> None:
    """Ctrl-C while purge waits on an acknowledgement Pub/Sub holds up: exit 130, the count and
    the audit record say what was removed, and every letter is in the DLQ or in the undo
    journal (written before each ack)."""
    stack = make_stack(tmp_path)
    keys = set(stack.seed(1500, key_prefix="g"))
    audit = tmp_path / "audit.jsonl"
    # every acknowledgement is held, so the signal lands while the purge still has work to do
    strict_proxy.delay("Acknowledge", 4.0, count=100)  # type: ignore[attr-defined]
    purge = dlq_process(stack, pubsub, "purge", audit, "--json", output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the purge's first ack is being held
        stats = strict_proxy.stats()["stats"]  # type: ignore[attr-defined]
        if stats.get("delays_injected.Acknowledge"):
            break
        time.sleep(0.1)
    assert purge.poll() is None, f"the purge ended first: {ended(purge)}"
    purge.send_signal(signal.SIGINT)
    stdout, stderr = purge.communicate(timeout=60)
    assert purge.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: the count above is what was removed" in stderr
    result = json.loads(stdout)
    assert result["interrupted"] is True and result["purged"] < 1500
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["interrupted"] is True and record["counts"]["purged"] == result["purged"]
    lines = Path(result["journal"]).read_text().splitlines()
    journaled = {json.loads(line)["attributes"]["key"] for line in lines}
    in_dlq: set[str] = set()
    deadline = time.monotonic() + 30  # letters of the held ack, if it was not applied, are
    while time.monotonic() < deadline and (in_dlq | journaled) != keys:  # back after 10 s
        time.sleep(1)
        in_dlq = {letter.attributes["key"] for letter in stack.peek()}
    assert (in_dlq | journaled) == keys  # nothing lost
    assert len(in_dlq) <= len(keys) - result["purged"]


@pytest.mark.parametrize("command", [["replay", "--yes"], ["doctor"], ["status"], ["inspect"]])
def test_unreachable_emulator_is_one_line_exit_2(
    command: list[str], pubsub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(tmp_path)
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", dead)
    started = time.monotonic()
    out = runner.invoke(app, ["dlq", command[0], *stack.cli_args(), *command[1:]])
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach Pub/Sub emulator at {dead}")
    assert "eventsctl local up" in lines[0]
    assert time.monotonic() - started < 30  # fails fast, not after minutes of retries


def test_unknown_stack_is_exit_2(tmp_path: Path) -> None:
    out = runner.invoke(app, ["dlq", "status", "--stack", "nope", "--stacks-dir", str(tmp_path)])
    assert out.exit_code == 2
    assert out.stderr.startswith("error: unknown stack 'nope'")


TARGET = DlqTarget("prod", "cotton-erp", "events", "events-dlq-sub", ("events-sub",), 100)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (gexc.PermissionDenied("no"), "permission denied on subscription 'events-dlq-sub'"),
        (gexc.NotFound("gone"), "subscription 'events-dlq-sub' not found in project cotton-erp"),
        (gexc.Unauthenticated("who"), "no usable Google credentials"),
        (gexc.ServiceUnavailable("down"), "cannot reach Pub/Sub"),
    ],
)
def test_google_errors_become_one_actionable_line(error: Exception, message: str) -> None:
    with pytest.raises(DlqError) as info, pubsub_errors(TARGET):
        raise error
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_export_file_is_complete_or_absent(pubsub: str, tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    stack.seed(3)
    out_file = tmp_path / "export.jsonl"
    result = runner.invoke(app, ["dlq", "export", *stack.cli_args(), "--out", str(out_file)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.partial"))
    assert len([json.loads(x) for x in out_file.read_text().splitlines()]) == 3
    assert out_file.stat().st_mode & 0o777 == 0o600  # whole payloads: the owner's only


def test_a_stop_signal_waits_for_the_publish_on_the_wire_and_a_second_one_does_not() -> None:
    """`deferred_stop` (around each replay publish-and-settle step): one signal lets the step
    finish and then stops; a second one stops at once."""
    import os

    from events_infra.dlq.interrupts import deferred_stop

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    finished = []
    with pytest.raises(KeyboardInterrupt), deferred_stop():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        finished.append("step")
    assert finished == ["step"]
    with pytest.raises(KeyboardInterrupt), deferred_stop():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        finished.append("cut short")
    assert finished == ["step"]
    assert {sig: signal.getsignal(sig) for sig in before} == before  # handlers are restored
