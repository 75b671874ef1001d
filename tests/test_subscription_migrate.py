"""`eventsctl subscription migrate OLD --to NEW`: the zero-loss way through an immutable change,
on the emulator behind the strict proxy, against an estate made by hand as the ERP's was.

OLD is the hand-made, unfiltered `events-sub` with a backlog (relay-style events and old-path
messages); NEW is `events-v2`, declared in the stack with the replay filter; `orders-sub` is
another subscription of the stack, `billing-team-sub` another team's unfiltered one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1

from events_infra.consumer import LegacyMessages, ReceivedEvent
from events_infra.consumer.event import LEGACY_NAMESPACE
from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.migrate import copy_attributes
from events_infra.pubsub.attributes import REPLAY_TARGET, REPLAYED_FROM
from tests.support.consumer_support import (
    ROOT,
    ConsumerThread,
    effect_counts,
    prepare_service_db,
    publish_events,
)
from tests.support.dlq_support import DlqStack, make_stack
from tests.support.relay_support import wait_until

OLD, NEW = "events-sub", "events-v2"


def ordered_publisher() -> Any:
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    return pubsub_v1.PublisherClient(publisher_options=options)


def handmade_estate(backlog: int, legacy: int) -> tuple[str, list[str], dict[str, str]]:
    """Topic, unfiltered events-sub (10 s ack deadline) and another team's subscription, made
    by hand; `backlog` relay-style events and `legacy` old-path messages published to it.
    Returns (project, event ids, old-path message id -> body)."""
    project = f"erp-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = ordered_publisher(), pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    publisher.create_topic(name=topic)
    for name in (OLD, "billing-team-sub"):
        subscriber.create_subscription(
            request={
                "name": f"projects/{project}/subscriptions/{name}",
                "topic": topic,
                "ack_deadline_seconds": 10,
            }
        )
    ids = publish_events(publisher, topic, backlog, keys=50)
    old_path = {}
    for n in range(legacy):
        body = json.dumps({"event_type": "trade.created", "n": 10_000 + n})
        old_path[publisher.publish(topic, body.encode()).result(timeout=30)] = body
    return project, ids, old_path


def declare(tmp_path: Path, project: str) -> DlqStack:
    """The stack as the platform team writes it for the estate, deployed (local up)."""
    return make_stack(
        tmp_path,
        **{
            "gcp:project": project,
            "events-infra:subscriptions": [{"name": "orders-sub"}, {"name": NEW}],
        },
    )


class LivePublisher:
    """The ERP's publisher, still writing while the backlog moves."""

    def __init__(self, publisher: Any, topic: str) -> None:
        self.publisher, self.topic = publisher, topic
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ids += publish_events(self.publisher, self.topic, 5, keys=50, start=20_000)
            self._stop.wait(0.05)

    def __enter__(self) -> LivePublisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)


COPY = ("--by", "copy")
"""The tests below move a backlog published before NEW existed, which the emulator does not
hand over by a seek (tests/test_subscription_handover.py), so they take the copy route."""
STRANGER_OK = (*COPY, "--also-reach", "billing-team-sub")
"""The hand-made estate's other team's subscription has no filter: the moves below accept that
it receives the copies too (test_an_unfiltered_stranger_stops_the_move_unless_named)."""


def migrate_process(
    stack: DlqStack, pubsub: str, state: Path, *flags: str, snapshot: bool = False
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "events_infra.cli.app", "subscription", "migrate", OLD,
        "--to", NEW, *stack.cli_args(), "--yes", "--json",
        "--audit-log", str(state / "audit.jsonl"), *flags,
    ]  # fmt: skip
    if not snapshot:
        command.append("--no-snapshot")
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub, "XDG_STATE_HOME": str(state)}
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def journal_lines(state: Path) -> int:
    return sum(
        len(path.read_text().splitlines())
        for path in (state / "eventsctl" / "journal").glob(f"{OLD}-migrate-*.jsonl")
    )


def test_a_backlog_moves_under_a_running_publisher_through_a_kill_exactly_once(
    pubsub: str, tmp_path: Path, database_url: str
) -> None:
    project, backlog_ids, old_path = handmade_estate(backlog=300, legacy=20)
    stack = declare(tmp_path, project)
    state = tmp_path / "state"
    with LivePublisher(ordered_publisher(), stack.topic) as live:
        first = migrate_process(stack, pubsub, state, "--rate", "150", *STRANGER_OK)
        assert wait_until(lambda: journal_lines(state) >= 60, seconds=60, step=0.02)
        first.send_signal(signal.SIGKILL)  # mid-way: copies confirmed, acks perhaps not sent
        first.wait(10)
        assert journal_lines(state) < 320, "the first run finished before it was killed"
        time.sleep(11)  # what the killed run held comes back after OLD's 10 s ack deadline
        moved = []
        for _ in range(2):  # a rerun is always safe: what NEW has already is deduped
            rerun = migrate_process(stack, pubsub, state, *STRANGER_OK)
            out, err = rerun.communicate(timeout=120)
            assert rerun.returncode == 0, err
            result = json.loads(out)
            assert result["counts"]["failed"] == 0
            moved.append(result["counts"]["moved"])
        assert moved[0] > 0, moved
    assert "billing-team-sub" in err and "no replay filter" in err  # the stranger is named

    # every event reaches a library consumer on NEW, and is processed there exactly once
    prepare_service_db(database_url)

    def handler(event: ReceivedEvent, conn: Any) -> None:
        conn.execute("INSERT INTO effects (event_id) VALUES (%s)", (event.event_id,))

    expected = {uuid.UUID(i) for i in backlog_ids + live.ids}
    expected |= {uuid.uuid5(LEGACY_NAMESPACE, f"message:{m}") for m in old_path}
    with ConsumerThread(stack.subscription(NEW), handler, database_url, legacy=LegacyMessages()):
        assert wait_until(lambda: expected <= set(effect_counts(database_url)), seconds=90)
        time.sleep(1)  # late duplicates, if any, are processed (and deduped) too
    counts = effect_counts(database_url)
    assert set(counts) == expected and set(counts.values()) == {1}
    assert stack.pull(stack.dlq_subscription, timeout=1.0) == []  # nothing dead-lettered

    # no copy reached the stack's other subscription; OLD still exists, its backlog moved
    orders = stack.drain(stack.subscription("orders-sub"))
    assert orders and not [m for m in orders if REPLAY_TARGET in m.message.attributes]
    left = stack.drain(stack.subscription(OLD))
    originals = [m for m in left if m.message.attributes.get(REPLAY_TARGET) != NEW]
    assert not {m.message.attributes.get("event_id") for m in originals} & set(backlog_ids)
    assert not {m.message.message_id for m in originals} & set(old_path)
    # the copies that came back to the unfiltered OLD stay there: acknowledged, a later seek
    # of NEW to a snapshot of OLD would drop them from NEW (test_subscription_handover.py)
    copies = {m.message.attributes.get("event_id") for m in left if m not in originals}
    assert set(backlog_ids) <= copies


def test_an_unfiltered_stranger_stops_the_move_unless_named(pubsub: str, tmp_path: Path) -> None:
    """Another team's unfiltered subscription would receive every copy: the move refuses,
    naming it and both ways on, before it changes anything."""
    project, _, _ = handmade_estate(backlog=30, legacy=0)
    stack = declare(tmp_path, project)
    state = tmp_path / "state"
    run = migrate_process(stack, pubsub, state, *COPY)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "billing-team-sub has no replay filter: every copy would reach it too" in line
    assert "--also-reach billing-team-sub" in line and "snapshot of OLD" in line
    assert not (state / "audit.jsonl").exists() and journal_lines(state) == 0
    assert stack.pull(stack.subscription(NEW), timeout=1.0) == []
    assert len(stack.drain(stack.subscription(OLD), expected=30)) == 30  # all still there


def test_dry_run_counts_and_changes_nothing(pubsub: str, tmp_path: Path) -> None:
    project, _, _ = handmade_estate(backlog=40, legacy=0)
    stack = declare(tmp_path, project)
    run = migrate_process(stack, pubsub, tmp_path / "state", "--dry-run", *COPY)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert json.loads(out)["counts"]["would_move"] == 40
    assert json.loads(out)["also_reaches"] == ["billing-team-sub"]  # said, not refused
    assert "the real run refuses unless each is named with --also-reach" in err
    assert stack.pull(stack.subscription(NEW), timeout=1.0) == []
    assert len(stack.drain(stack.subscription(OLD), expected=40)) == 40
    assert not (tmp_path / "state" / "audit.jsonl").exists()


def test_copies_new_would_refuse_stay_in_old(pubsub: str, tmp_path: Path) -> None:
    """A filter change: NEW takes only trades; what its filter would drop stays in OLD."""
    project, _, _ = handmade_estate(backlog=0, legacy=0)
    publisher = pubsub_v1.PublisherClient()
    topic = f"projects/{project}/topics/events"
    for kind in ("trade", "trade", "invoice"):
        publisher.publish(topic, b"{}", kind=kind, event_id=str(uuid.uuid4())).result(timeout=30)
    stack = make_stack(
        tmp_path,
        **{
            "gcp:project": project,
            "events-infra:subscriptions": [
                {"name": NEW, "filter": 'attributes.kind = "trade"'},
            ],
        },
    )
    run = migrate_process(stack, pubsub, tmp_path / "state", *STRANGER_OK)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    counts = json.loads(out)["counts"]
    assert (counts["moved"], counts["refused_by_new_filter"]) == (2, 1)
    assert "filter would drop" in err
    moved = stack.drain(stack.subscription(NEW), expected=2)
    assert sorted(m.message.attributes["kind"] for m in moved) == ["trade", "trade"]
    left = stack.drain(stack.subscription(OLD), expected=3)
    [kept] = [m for m in left if REPLAY_TARGET not in m.message.attributes]
    assert kept.message.attributes["kind"] == "invoice"  # and the copies for NEW, left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([OLD, "--to", "nowhere"], "no subscription 'nowhere' in stack"),
        ([OLD, "--to", OLD], "OLD and NEW are the same subscription"),
        (["gone-sub", "--to", NEW], "'gone-sub' does not exist"),
        ([OLD, "--to", NEW, "--rate", "0"], "--rate 0"),
    ],
    ids=["undeclared-new", "same", "missing-old", "bad-rate"],
)
def test_bad_requests_are_one_line_errors(
    pubsub: str, tmp_path: Path, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from events_infra.cli.app import app

    project, _, _ = handmade_estate(backlog=1, legacy=0)
    stack = declare(tmp_path, project)
    result = CliRunner().invoke(app, ["subscription", "migrate", *args, *stack.cli_args(), "-y"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_new_must_be_deployed_before_the_backlog_moves(pubsub: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from events_infra.cli.app import app

    project, _, _ = handmade_estate(backlog=1, legacy=0)
    stack = declare(tmp_path, project)
    stack.subscriber.delete_subscription(subscription=stack.subscription(NEW))
    result = CliRunner().invoke(
        app, ["subscription", "migrate", OLD, "--to", NEW, *stack.cli_args(), "-y"]
    )
    assert result.exit_code == 2 and "deploy the stack first" in result.output
    assert len(stack.drain(stack.subscription(OLD), expected=1)) == 1  # untouched


def letter(**attributes: str) -> DeadLetter:
    from datetime import UTC, datetime

    return DeadLetter("m-7", "a", b"{}", attributes, "", datetime.now(UTC))


def test_a_copy_is_targeted_at_new_and_keeps_the_first_original_id() -> None:
    copy = copy_attributes(letter(kind="trade", replay_target=OLD), NEW)
    assert copy == {"kind": "trade", REPLAY_TARGET: NEW, REPLAYED_FROM: "m-7"}
    # a copy of a copy still names the message it all came from (old-path dedupe)
    assert copy_attributes(letter(replayed_from="m-1"), NEW)[REPLAYED_FROM] == "m-1"
