"""`subscription migrate --by seek` (what `auto` takes where copies would reach a subscription
nobody accepted): NEW is seeked to a snapshot of OLD, nothing is published, so no other
subscription sees a copy.

On the emulator behind the strict proxy, against an estate made by hand as the ERP's was. What
the emulator shows is the seek's rule for every message NEW holds: afterwards NEW has exactly
what OLD had not acknowledged, plus what was published since. What it cannot show: on GCP a
snapshot also hands NEW the messages published *before* NEW was created ("including newly
created" subscriptions, Google's replay overview); the emulator keeps those out of NEW, so the
messages here are published once NEW exists (a backlog from before takes `--by copy`:
tests/test_subscription_migrate.py).
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1

from events_infra.consumer import ReceivedEvent
from events_infra.dlq.errors import DlqError
from events_infra.dlq.handover import choose_method, seek_refusal
from events_infra.pubsub.attributes import REPLAY_TARGET, REPLAYED_FROM
from tests.support.consumer_support import (
    ConsumerThread,
    effect_counts,
    prepare_service_db,
    publish_events,
)
from tests.support.dlq_support import DlqStack, make_stack
from tests.support.relay_support import wait_until
from tests.test_subscription_migrate import (
    NEW,
    OLD,
    LivePublisher,
    migrate_process,
    ordered_publisher,
)

STRANGER = "billing-team-sub"


def estate(tmp_path: Path, old_filter: str = "", adopted: bool = False) -> DlqStack:
    """The ERP's topic, its hand-made `events-sub` and another team's unfiltered subscription;
    then the stack declaring NEW (and `orders-sub`; with `adopted`, `events-sub` too, as
    `replay_filter: false`), deployed."""
    project = f"erp-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = f"projects/{project}/topics/events"
    publisher.create_topic(name=topic)
    for name, filter_ in ((OLD, old_filter), (STRANGER, "")):
        subscriber.create_subscription(
            request={
                "name": f"projects/{project}/subscriptions/{name}",
                "topic": topic,
                "ack_deadline_seconds": 10,
                "filter": filter_,
            }
        )
    return make_stack(
        tmp_path,
        **{
            "gcp:project": project,
            "events-infra:subscriptions": [
                {"name": "orders-sub"},
                {"name": NEW},
                *([{"name": OLD, "replay_filter": False}] if adopted else []),
            ],
        },
    )


def consume(stack: DlqStack, subscription: str, count: int) -> set[str]:
    """A consumer's progress: `count` messages acknowledged (their event ids), the rest of
    what it was handed given back."""
    done: set[str] = set()
    while len(done) < count:
        batch = stack.pull(subscription, max_messages=count - len(done))
        keep, back = batch[: count - len(done)], batch[count - len(done) :]
        if keep:
            ack_ids = [m.ack_id for m in keep]
            stack.subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
        if back:
            stack.subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=[m.ack_id for m in back], ack_deadline_seconds=0
            )
        done |= {m.message.attributes["event_id"] for m in keep}
    return done


def event_ids(messages: list[Any]) -> list[str]:
    return [m.message.attributes.get("event_id") for m in messages]


def run(stack: DlqStack, pubsub: str, state: Path, *flags: str) -> tuple[int, str, str]:
    process = migrate_process(stack, pubsub, state, *flags, snapshot=True)
    out, err = process.communicate(timeout=90)
    return process.returncode, out, err


def snapshots(stack: DlqStack) -> list[str]:
    listed = stack.subscriber.list_snapshots(project=f"projects/{stack.project}")
    return sorted(s.name.rsplit("/", 1)[-1] for s in listed)


def test_new_takes_over_where_olds_consumers_stopped_and_nobody_gets_a_copy(
    pubsub: str, tmp_path: Path, database_url: str
) -> None:
    stack = estate(tmp_path)
    ids = publish_events(ordered_publisher(), stack.topic, 120, keys=30)
    done_by_old = consume(stack, stack.subscription(OLD), 50)  # OLD's consumers, then stopped
    consume(stack, stack.subscription(NEW), 40)  # NEW's consumers had begun
    state = tmp_path / "state"
    with LivePublisher(ordered_publisher(), stack.topic) as live:
        code, out, err = run(stack, pubsub, state)  # --by auto: the seek
        assert code == 0, err
    assert "was begun before" not in err
    result = json.loads(out)
    assert result["method"] == "seek" and result["also_reaches"] == [STRANGER]  # why: a seek
    assert result["counts"] == {}  # OLD is not the stack's: no replay can have targeted it
    assert result["snapshot"].endswith(tuple("0123456789"))
    [record] = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    assert record["method"] == "seek" and record["snapshot"] == result["snapshot"]
    assert record["undo_snapshot"] == result["undo_snapshot"]
    assert f"{OLD}-handover-" in result["snapshot"]
    assert f"{NEW}-before-handover-" in result["undo_snapshot"]

    # NEW: what OLD's consumers had not acknowledged, and everything published since, once
    prepare_service_db(database_url)

    def handler(event: ReceivedEvent, conn: Any) -> None:
        conn.execute("INSERT INTO effects (event_id) VALUES (%s)", (event.event_id,))

    expected = {uuid.UUID(i) for i in set(ids) - done_by_old} | {uuid.UUID(i) for i in live.ids}
    with ConsumerThread(stack.subscription(NEW), handler, database_url):
        assert wait_until(lambda: expected <= set(effect_counts(database_url)), seconds=60)
        time.sleep(1)  # late deliveries, if any, are counted too
    counts = effect_counts(database_url)
    # what OLD's consumers acknowledged is done in NEW (the emulator applies the seek at once;
    # GCP may deliver some of it once more within a minute, deduped by event_id)
    assert set(counts) == expected and set(counts.values()) == {1}
    assert stack.pull(stack.dlq_subscription, timeout=1.0) == []

    # nothing was published: the other team's and the stack's other subscription hold the
    # originals, once each; OLD still holds all it held
    published = sorted(ids + live.ids)
    for other in (STRANGER, "orders-sub"):
        assert sorted(event_ids(stack.drain(stack.subscription(other), len(published)))) == (
            published
        )
    left = event_ids(stack.drain(stack.subscription(OLD), len(published) - len(done_by_old)))
    assert sorted(left) == sorted(set(published) - done_by_old)


def test_copies_dlq_replay_targeted_at_old_are_copied_to_new_after_the_seek(
    pubsub: str, tmp_path: Path
) -> None:
    """OLD adopted into the stack (`replay_filter: false`), so `dlq replay` could target it:
    NEW's replay filter refuses those copies, so after the seek just they are copied on,
    targeted at NEW, and acknowledged in OLD; the rest of OLD is not touched."""
    stack = estate(tmp_path, adopted=True)
    publisher = pubsub_v1.PublisherClient()
    ids = set(publish_events(publisher, stack.topic, 40))
    replays = set()
    for n in range(6):  # as `dlq replay` re-publishes a dead letter of OLD
        event_id = str(uuid.uuid4())
        attributes = {"event_id": event_id, REPLAY_TARGET: OLD, REPLAYED_FROM: f"m-{n}"}
        publisher.publish(stack.topic, b"{}", **attributes).result(timeout=30)
        replays.add(event_id)
    done_by_old = consume(stack, stack.subscription(OLD), 10)
    done_by_old_replays = done_by_old & replays
    state = tmp_path / "state"

    code, out, err = run(stack, pubsub, state, "--dry-run")
    assert code == 0, err
    assert json.loads(out)["counts"]["would_move"] == len(replays - done_by_old_replays)
    # their copy on reaches the other team's subscription too: it must be accepted first
    code, out, err = run(stack, pubsub, state)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert f"--by seek --also-reach {STRANGER}; nothing was changed" in line
    assert snapshots(stack) == [] and not (state / "audit.jsonl").exists()
    code, out, err = run(stack, pubsub, state, "--by", "seek", "--also-reach", STRANGER)
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == "seek"
    assert result["counts"]["moved"] == len(replays - done_by_old_replays)
    assert f"{STRANGER} received them once more" in err

    got = stack.drain(stack.subscription(NEW), len(ids | replays) - len(done_by_old))
    assert set(event_ids(got)) == (ids | replays) - done_by_old
    retargeted = [m for m in got if m.message.attributes["event_id"] in replays]
    assert {m.message.attributes[REPLAY_TARGET] for m in retargeted} == {NEW}
    left = stack.drain(stack.subscription(OLD))  # until quiet: everything it holds
    for_old = [m for m in left if m.message.attributes.get(REPLAY_TARGET) == OLD]
    assert for_old == []  # moved on
    assert {i for i in event_ids(left) if i in ids} == ids - done_by_old  # untouched


def test_a_seek_after_a_copy_run_keeps_the_copies_in_new(pubsub: str, tmp_path: Path) -> None:
    """A copy run acknowledges originals in OLD; their copies, back in the unfiltered OLD, stay
    unacknowledged there, so a later seek hands NEW the copies instead of dropping them."""
    stack = estate(tmp_path)
    ids = set(publish_events(pubsub_v1.PublisherClient(), stack.topic, 30))
    state = tmp_path / "state"
    code, out, err = run(stack, pubsub, state, "--by", "copy", "--also-reach", STRANGER)
    assert code == 0, err
    assert json.loads(out)["counts"]["moved"] == 30
    code, out, err = run(stack, pubsub, state, "--by", "seek")
    assert code == 0, err
    got = stack.drain(stack.subscription(NEW))  # NEW's consumers had not run yet
    assert set(event_ids(got)) == ids
    assert {m.message.attributes.get(REPLAY_TARGET) for m in got} == {NEW}  # the copies


def test_the_handover_is_undone_by_seeking_new_back(pubsub: str, tmp_path: Path) -> None:
    stack = estate(tmp_path)
    ids = set(publish_events(pubsub_v1.PublisherClient(), stack.topic, 60))
    done_by_old = consume(stack, stack.subscription(OLD), 20)
    done_by_new = consume(stack, stack.subscription(NEW), 25)
    code, out, err = run(stack, pubsub, tmp_path / "state", "--by", "seek")
    assert code == 0, err
    result = json.loads(out)
    undo = f"gcloud pubsub subscriptions seek {NEW} --snapshot="
    assert undo + result["undo_snapshot"].rsplit("/", 1)[-1] in err
    handed = set(event_ids(stack.drain(stack.subscription(NEW), len(ids) - len(done_by_old))))
    assert handed == ids - done_by_old

    undo_request = {"subscription": stack.subscription(NEW), "snapshot": result["undo_snapshot"]}
    stack.subscriber.seek(request=undo_request)
    back = set(event_ids(stack.drain(stack.subscription(NEW), len(ids) - len(done_by_new))))
    assert back == ids - done_by_new


def test_a_failed_seek_leaves_new_as_it_was_and_a_rerun_hands_over(
    pubsub: str, tmp_path: Path, strict_proxy: Any
) -> None:
    """Stopped between the snapshots and the seek (here: the seek refused), NEW is untouched;
    the same command again completes the handover."""
    stack = estate(tmp_path)
    ids = set(publish_events(pubsub_v1.PublisherClient(), stack.topic, 30))
    done_by_old = consume(stack, stack.subscription(OLD), 10)
    strict_proxy.fail("Seek", "PERMISSION_DENIED", count=1)
    code, out, err = run(stack, pubsub, tmp_path / "state")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()[-1:]
    assert "permission denied" in line and "Traceback" not in err
    assert "roles/pubsub.subscriber on OLD and NEW" in line  # not the DLQ operator's grants
    assert "may have taken effect: run the same command again (safe), or undo it" in line
    [record] = [
        json.loads(x) for x in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    ]
    assert (record["seek_attempted"], record["handed_over"]) == (True, False)
    assert len(snapshots(stack)) == 2  # NEW's undo point and OLD's, kept: a rerun sees them
    code, out, err = run(stack, pubsub, tmp_path / "state")
    assert code == 0, err
    assert f"a handover of {OLD} was begun before (snapshot {OLD}-handover-" in err  # 1st try
    assert set(event_ids(stack.drain(stack.subscription(NEW), len(ids)))) == ids - done_by_old


def test_a_stop_signal_mid_handover_waits_for_the_seek(
    pubsub: str, tmp_path: Path, strict_proxy: Any
) -> None:
    """SIGTERM while the seek is on the wire (held 2 s by the proxy): the handover is finished,
    said and recorded, not broken off with NEW in an unknown state."""
    stack = estate(tmp_path)
    ids = set(publish_events(pubsub_v1.PublisherClient(), stack.topic, 30))
    done_by_old = consume(stack, stack.subscription(OLD), 10)
    strict_proxy.delay("Seek", 2.0)  # well under the 5 s each attempt of the handover allows
    state = tmp_path / "state"
    process = migrate_process(stack, pubsub, state, snapshot=True)
    assert wait_until(lambda: len(snapshots(stack)) == 2, seconds=30, step=0.02)
    process.send_signal(signal.SIGTERM)  # the next call, the seek, is held in the proxy
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped: the handover had begun, so it was finished first" in err
    assert json.loads(out)["method"] == "seek" and (state / "audit.jsonl").exists()
    assert set(event_ids(stack.drain(stack.subscription(NEW), len(ids)))) == ids - done_by_old


def test_an_old_snapshot_pubsub_refuses_is_one_line_naming_the_copy_route(
    pubsub: str, tmp_path: Path, strict_proxy: Any
) -> None:
    stack = estate(tmp_path)
    publish_events(pubsub_v1.PublisherClient(), stack.topic, 5)
    strict_proxy.fail("CreateSnapshot", "FAILED_PRECONDITION", count=1)
    code, out, err = run(stack, pubsub, tmp_path / "state", "--no-snapshot")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert f"Pub/Sub refused a snapshot of {OLD}" in line and "--by copy" in line
    assert len(stack.drain(stack.subscription(NEW), 5)) == 5  # untouched


def test_auto_takes_copies_where_a_seek_would_lose_what_olds_filter_refused(
    pubsub: str, tmp_path: Path
) -> None:
    """OLD's filter acknowledged what it refused; a seek would carry that into a NEW that wants
    it. `--by seek` is refused before anything changes; `auto` moves by copies instead."""
    stack = estate(tmp_path, old_filter='attributes.event_type = "invoice.created"')
    publish_events(pubsub_v1.PublisherClient(), stack.topic, 5)  # trade.created: OLD refuses
    code, out, err = run(stack, pubsub, tmp_path / "state", "--by", "seek")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "--by seek: OLD has a filter other than NEW's" in line and "--by copy" in line
    assert snapshots(stack) == []
    code, out, err = run(stack, pubsub, tmp_path / "state", "--also-reach", STRANGER)
    assert code == 0, err
    assert json.loads(out)["method"] == "copy"
    assert len(stack.drain(stack.subscription(NEW), 5)) == 5  # its own, never acked by OLD


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--by", "seek", "--rate", "5"), "--by seek: a seek hands over the whole backlog"),
        (("--by", "teleport"), "--by teleport: use auto, seek, copy"),
    ],
    ids=["seek-with-rate", "unknown-method"],
)
def test_bad_methods_are_one_line_errors(
    pubsub: str, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    stack = estate(tmp_path)
    code, out, err = run(stack, pubsub, tmp_path / "state", *flags)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert snapshots(stack) == []


def test_a_dry_run_says_it_would_seek_and_changes_nothing(pubsub: str, tmp_path: Path) -> None:
    stack = estate(tmp_path)
    publish_events(pubsub_v1.PublisherClient(), stack.topic, 8)
    consume(stack, stack.subscription(OLD), 8)
    code, out, err = run(stack, pubsub, tmp_path / "state", "--dry-run")
    assert code == 0, err
    result = json.loads(out)
    assert (result["method"], result["dry_run"], result["snapshot"]) == ("seek", True, None)
    assert snapshots(stack) == [] and not (tmp_path / "state" / "audit.jsonl").exists()
    assert len(stack.drain(stack.subscription(NEW), 8)) == 8  # not handed OLD's acks


def live(topic: str = "projects/p/topics/events", filter_: str = "", days: int = 0) -> Any:
    name = "projects/p/subscriptions/x"
    kept = {"message_retention_duration": timedelta(days=days)} if days else {}
    return pubsub_v1.types.Subscription(name=name, topic=topic, filter=filter_, **kept)


def test_the_rules_the_seek_relies_on_are_the_installed_clients() -> None:
    """Written down from google-cloud-pubsub's reference: a client whose documented rules
    change fails here before the handover relies on them."""
    from google.pubsub_v1.services.subscriber.client import SubscriberClient
    from google.pubsub_v1.types import SeekRequest, Snapshot, Subscription

    def text(doc: str | None) -> str:
        return " ".join((doc or "").split())

    assert "The snapshot's topic must be the same as that of the provided subscription" in text(
        SeekRequest.__doc__
    )
    create = text(SubscriberClient.create_snapshot.__doc__)
    assert "set the acknowledgment state of messages in an existing subscription to the state " \
        "captured by a snapshot" in create  # fmt: skip
    assert "would expire in less than 1 hour -- then ``FAILED_PRECONDITION``" in create
    assert "The name of the topic from which this snapshot is retaining messages" in text(
        Snapshot.__doc__
    )
    retention = text(Subscription.__doc__)
    assert "retain unacknowledged messages in the subscription's backlog, from the moment a " \
        "message is published" in retention  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (live(), live(filter_='attributes.kind = "trade"'), ""),  # unfiltered OLD: any NEW
        (live(filter_="attributes:x"), live(filter_="attributes:x"), ""),  # e.g. ordering
        (live(days=3), live(days=5), ""),
        (live(topic="projects/p/topics/old"), live(), "a seek needs one topic"),
        (live(filter_="attributes:x"), live(), "OLD has a filter other than NEW's"),
        (live(filter_="attributes:x"), live(filter_="attributes:y"), "a filter other than"),
        (live(), live(days=1), "NEW keeps messages 1 days and OLD 7 days"),
    ],
    ids=[
        "unfiltered-old", "same-filter", "longer-retention", "topic-change", "wider-new",
        "other-filter", "shorter-retention",
    ],
)  # fmt: skip
def test_a_seek_is_taken_only_where_it_loses_nothing(old: Any, new: Any, why: str) -> None:
    refusal = seek_refusal(old, new, None, None)
    assert why in refusal if why else refusal == ""
    # auto: copies unless they would reach a subscription nobody accepted
    assert choose_method("auto", old, new, None, None, strangers=False) == "copy"
    assert choose_method("auto", old, new, None, None, strangers=True) == (
        "copy" if why else "seek"
    )
    assert choose_method("copy", old, new, None, None, strangers=True) == "copy"
    if why:
        with pytest.raises(DlqError, match="--by copy"):
            choose_method("seek", old, new, None, None, strangers=True)
    else:
        assert choose_method("seek", old, new, None, None, strangers=False) == "seek"
    assert choose_method("auto", old, new, 10, None, strangers=True) == "copy"  # --limit


def test_a_narrowed_move_copies_only_what_it_is_told_and_acknowledges_nothing_else() -> None:
    """`MigrateOptions.only` (the seek's pass): the rest is held, not counted, not acked; a
    copy for NEW is never acknowledged in OLD, a copy for a third subscription is."""
    from datetime import UTC, datetime

    from events_infra.dlq.messages import DeadLetter
    from events_infra.dlq.migrate import MigrateOptions, MigrateSummary, _sort

    def letter(n: int, **attributes: str) -> DeadLetter:
        return DeadLetter(
            f"m-{n}", f"a-{n}", b"{}", attributes, "", datetime(2026, 1, 1, tzinfo=UTC)
        )

    batch = [letter(1, replay_target=OLD), letter(2), letter(3, replay_target=NEW),
             letter(4, replay_target="orders-sub")]  # fmt: skip
    options = MigrateOptions(OLD, "p/old", NEW, "p/topic", cutoff=datetime.now(UTC))
    summary = MigrateSummary()
    copy, acked = _sort(batch, options, summary, 0)
    assert ([m.message_id for m in copy], [m.message_id for m in acked]) == (
        ["m-1", "m-2"], ["m-4"],
    )  # fmt: skip
    assert summary.copies_for_new == 1
    options.only = lambda m: m.attributes.get("replay_target") == OLD
    summary = MigrateSummary()
    copy, acked = _sort(batch, options, summary, 0)
    assert ([m.message_id for m in copy], acked, summary.counts()["copies_for_new_left"]) == (
        ["m-1"], [], 0,
    )  # fmt: skip
