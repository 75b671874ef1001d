"""Replay's pipeline (pull ahead, publish, journal + ack behind) under failures in each stage,
on the real emulator through the strict proxy: nothing is released before its ack went out,
a failure in a background stage is one line and exit 2, and a kill with acks in flight loses
nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.dlq_support import DlqStack, child_stderr, dlq, dlq_process, make_stack


@pytest.fixture
def stack(pubsub: str, tmp_path: Path) -> DlqStack:
    return make_stack(tmp_path)


def replay(stack: DlqStack, *args: str) -> object:
    return dlq(stack, "replay", "--yes", "--json", "--no-snapshot", *args)


def test_acks_still_queued_when_the_scan_ends_are_sent_before_anything_is_released(
    stack: DlqStack, strict_proxy: object
) -> None:
    """Pub/Sub holds the first Acknowledge 3 s, longer than the scan's closing quiet period: the
    scan ends while that ack is still queued behind, and the letters must be acknowledged, not
    released (released, they would stay in the DLQ and be counted as acked too late)."""
    keys = set(stack.seed(60, key_prefix="q"))
    capture = stack.capture()
    strict_proxy.delay("Acknowledge", 3.0)  # type: ignore[attr-defined]
    out = replay(stack)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["counts"]["replayed"] == 60
    assert result["counts"]["acked_too_late"] == 0
    stats = strict_proxy.stats()["stats"]  # type: ignore[attr-defined]
    assert stats["delays_injected.Acknowledge"] == 1
    assert stack.peek() == []
    copies = stack.drain(capture, expected=60)
    assert {m.message.attributes["key"] for m in copies} == keys


def test_a_refused_ack_behind_the_publisher_is_one_line_and_leaves_every_letter(
    stack: DlqStack, strict_proxy: object
) -> None:
    """The ack thread's first Acknowledge is refused: the replay stops with one line and exit
    2; nothing was acknowledged, so every letter is still in the DLQ and the next run (consumers
    dedupe the copies already sent) replays them all."""
    stack.seed(1200, key_prefix="r")
    strict_proxy.fail("Acknowledge", "PERMISSION_DENIED", count=1)  # type: ignore[attr-defined]
    out = replay(stack)
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    assert len(stack.peek()) == 1200
    again = replay(stack)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["counts"]["replayed"] == 1200
    assert stack.peek() == []


def test_a_refused_pull_ahead_of_the_publisher_is_one_line(
    stack: DlqStack, strict_proxy: object
) -> None:
    """The puller thread's pull is refused: the error reaches the command as one line, exit 2,
    and nothing moved."""
    stack.seed(20, key_prefix="p")
    strict_proxy.fail("Pull", "PERMISSION_DENIED", count=1)  # type: ignore[attr-defined]
    out = replay(stack)
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    [error] = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert "permission denied on subscription 'events-dlq-sub'" in error
    assert len(stack.peek()) == 20


def test_kill_9_with_acks_in_flight_loses_nothing(
    pubsub: str, tmp_path: Path, strict_proxy: object
) -> None:
    """Full speed (no --rate), the first ack held 8 s so confirmed copies pile up unacked
    behind it; kill -9 then: every letter is in the DLQ or on the events topic (or both)."""
    stack = make_stack(tmp_path)
    keys = set(stack.seed(6000, key_prefix="k"))  # more than the pipeline holds unacked
    capture = stack.capture()
    strict_proxy.delay("Acknowledge", 8.0)  # type: ignore[attr-defined]
    process = dlq_process(stack, pubsub, "replay", tmp_path / "audit.jsonl")
    seen: set[str] = set()  # copies pulled, not acknowledged (that would take the held ack)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < 1000:
        seen |= {m.message.attributes["key"] for m in stack.pull(capture, timeout=0.5)}
    assert process.poll() is None, (
        f"the replay ended ({process.returncode}) before it could be killed: "
        f"{child_stderr(tmp_path / 'audit.jsonl', 'replay')}"
    )
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert len(seen) >= 1000
    time.sleep(11)  # the killed replay's held letters come back after the DLQ's deadline
    copies = stack.drain(capture, seconds=20)  # the rest (those pulled above are in `seen`)
    on_topic = seen | {m.message.attributes["key"] for m in copies}
    in_dlq = {letter.attributes["key"] for letter in stack.peek()}
    assert len(on_topic) < len(keys)  # it really was killed mid-way
    assert keys - on_topic - in_dlq == set()  # none lost


def test_a_counted_backlog_ends_the_scan_at_the_first_pull_with_nothing_new(
    stack: DlqStack,
) -> None:
    """With the backlog count known, the scan needs one pull that brings nothing new once it
    has seen that many; without it, the quiet rule's several pulls over 1.5 s."""
    from events_infra.dlq.scan import Scanner

    stack.seed(4, key_prefix="c")
    counted = Scanner(stack.subscriber, stack.dlq_subscription, pull_timeout=0.5, expected=4)
    assert sum(len(batch) for batch in counted.batches()) == 4
    assert counted.stats.pulls <= 3  # the letters (maybe split in two) + one with nothing new
    uncounted = Scanner(stack.subscriber, stack.dlq_subscription, pull_timeout=0.5)
    assert sum(len(batch) for batch in uncounted.batches()) == 4
    assert uncounted.stats.pulls >= 1 + uncounted.quiet_pulls


def test_stopping_a_prefetching_scan_early_hands_back_what_was_pulled_ahead(
    stack: DlqStack,
) -> None:
    """The caller takes one batch and stops: the puller thread is stopped and every letter it
    pulled ahead is released at once (visible again), not held until its deadline."""
    from events_infra.dlq.scan import Scanner

    stack.seed(300, key_prefix="s")
    scanner = Scanner(stack.subscriber, stack.dlq_subscription, batch_size=100, pull_timeout=0.5)
    batches = scanner.batches(prefetch=2)
    first = next(batches)
    time.sleep(1.0)  # let the puller get its batches ahead
    scanner.ack(first)
    batches.close()
    assert scanner.stats.distinct > len(first)  # it had pulled ahead
    assert len(stack.peek()) == 300 - len(first)


@pytest.mark.parametrize("watching", [True, False])
def test_a_watched_replay_with_yes_counts_the_backlog_for_its_eta(
    stack: DlqStack, tmp_path: Path, watching: bool
) -> None:
    """`--yes` in a terminal on the emulator (no Cloud Monitoring): the backlog is counted
    first, so the progress bar has a total (and so an ETA), and the replay still moves every
    letter; in a pipe nothing is counted and the bar shows count and rate only."""
    import contextlib

    from events_infra.dlq.context import DlqContext
    from events_infra.dlq.operations import Interaction, ReplayRequest, replay_dead_letters

    stack.seed(250, key_prefix="w")
    totals: list[int | None] = []
    said: list[str] = []

    def progress(total: int | None) -> contextlib.AbstractContextManager:
        totals.append(total)
        return contextlib.nullcontext(lambda _n: None)

    def yes(_question: str) -> None:
        return None

    yes.assume_yes = True  # type: ignore[attr-defined]
    ctx = DlqContext(stack.name, str(stack.stacks_dir), None, None, None)
    result = replay_dead_letters(
        ctx,
        ReplayRequest(snapshot=False, audit_log=str(tmp_path / "audit.jsonl")),
        Interaction(confirm=yes, say=said.append, progress=progress, watching=watching),
    )
    assert result["counts"]["replayed"] == 250
    assert totals == ([250] if watching else [None])
    assert any(line.startswith("counting the dead letters") for line in said) is watching
    assert stack.peek() == []
