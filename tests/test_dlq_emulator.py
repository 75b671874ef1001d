"""`eventsctl dlq` against the real Pub/Sub emulator (started by the `pubsub` fixture)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.dlq import messages
from events_infra.stack_config.topology import REPLAY_TARGET_ATTRIBUTE
from tests.support.dlq_support import DlqStack, dead_letter_for_real, dlq, make_stack

runner = CliRunner()


@pytest.fixture
def stack(pubsub: str, tmp_path: Path) -> DlqStack:
    return make_stack(tmp_path)


def test_real_dead_letters_status_inspect_replay(stack: DlqStack, tmp_path: Path) -> None:
    keys = dead_letter_for_real(stack, 8, source="orders-sub")

    status = dlq(stack, "status", "--json")
    assert status.exit_code == 1, status.output  # 8 > threshold 5
    row = json.loads(status.stdout)
    assert row["undelivered"] == 8
    assert row["by_source"] == {"orders-sub": 8}
    assert row["source"] == "pubsub"
    assert row["oldest_age_s"] is not None and row["oldest_age_s"] >= 0
    assert "emulator" in status.stderr

    inspected = dlq(stack, "inspect", "--json", "--limit", "20")
    assert inspected.exit_code == 0, inspected.output
    records = json.loads(inspected.stdout)
    assert sorted(r["attributes"]["key"] for r in records) == sorted(keys)
    assert {r["source_subscription"] for r in records} == {"orders-sub"}
    assert {r["delivery_count"] for r in records} == {5}
    assert all(r["original_publish_time"] for r in records)
    assert all(r["json"]["key"] == r["attributes"]["key"] for r in records)
    # inspect consumed nothing: the same dead letters are all still there
    assert stack.peek_ids() == {r["message_id"] for r in records}

    capture = stack.capture()
    audit = tmp_path / "audit.jsonl"
    replayed = dlq(stack, "replay", "--yes", "--json", audit=audit)
    assert replayed.exit_code == 0, replayed.output
    result = json.loads(replayed.stdout)
    assert result["counts"]["replayed"] == 8
    assert result["by_target"] == {"orders-sub": 8}
    assert "to undo: eventsctl dlq restore" in replayed.stderr

    copies = stack.drain(capture, expected=8)
    assert sorted(m.message.attributes["key"] for m in copies) == sorted(keys)
    by_dead_letter = {r["message_id"]: r for r in records}
    for copy in copies:
        attrs = dict(copy.message.attributes)
        assert attrs[REPLAY_TARGET_ATTRIBUTE] == "orders-sub"
        assert attrs[messages.REPLAY_COUNT] == "1"
        assert attrs["kind"] == "trade"  # the original attributes are kept
        assert not any(k.startswith("CloudPubSubDeadLetter") for k in attrs)
        original = by_dead_letter[attrs[messages.REPLAYED_FROM]]
        assert json.loads(copy.message.data) == original["json"]
    assert stack.peek_ids() == set()  # every dead letter acknowledged

    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["operation"] == "replay"
    assert record["stack"] == stack.name
    assert record["counts"]["replayed"] == 8
    assert sorted(record["message_ids"]) == sorted(by_dead_letter)
    assert record["snapshot"].startswith(f"projects/{stack.project}/snapshots/")
    assert record["user"]


def test_filters_select_by_source_attribute_and_age(stack: DlqStack) -> None:
    stack.seed(4, source="orders-sub", attributes={"kind": "trade"}, key_prefix="o")
    stack.seed(3, source="billing-sub", attributes={"kind": "invoice"}, key_prefix="b")

    def inspect(*flags: str) -> list[dict]:
        out = dlq(stack, "inspect", "--json", "--limit", "100", *flags)
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    assert len(inspect()) == 7
    assert {r["source_subscription"] for r in inspect("--source", "billing-sub")} == {"billing-sub"}
    assert len(inspect("--source", "billing-sub")) == 3
    assert len(inspect("--attr", "kind=trade")) == 4
    assert inspect("--attr", "kind=trade", "--source", "billing-sub") == []
    assert inspect("--older-than", "1h") == []
    assert len(inspect("--newer-than", "1h")) == 7
    assert len(inspect("--limit", "2")) == 2

    capture = stack.capture()
    replayed = dlq(stack, "replay", "--yes", "--json", "--source", "billing-sub", "--no-snapshot")
    assert replayed.exit_code == 0, replayed.output
    counts = json.loads(replayed.stdout)["counts"]
    assert counts["replayed"] == 3 and counts["not_selected"] == 4
    copies = stack.drain(capture, expected=3)
    assert {m.message.attributes[REPLAY_TARGET_ATTRIBUTE] for m in copies} == {"billing-sub"}
    left = stack.peek()
    assert len(left) == 4 and {d.source_subscription for d in left} == {"orders-sub"}


def test_dry_run_changes_nothing(stack: DlqStack, tmp_path: Path) -> None:
    stack.seed(5)
    before = stack.peek_ids()
    capture = stack.capture()
    audit = tmp_path / "audit.jsonl"
    out = dlq(stack, "replay", "--dry-run", "--json", audit=audit)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["counts"]["would_replay"] == 5 and result["counts"]["replayed"] == 0
    assert sorted(result["message_ids"]) == sorted(before)
    assert stack.peek_ids() == before
    assert stack.pull(capture, timeout=1.0) == []
    assert not audit.exists()
    snapshots = list(stack.subscriber.list_snapshots(project=f"projects/{stack.project}"))
    assert snapshots == []


def test_rate_limit_holds(stack: DlqStack) -> None:
    stack.seed(30)
    capture = stack.capture()
    out = dlq(stack, "replay", "--yes", "--rate", "20", "--no-snapshot")
    assert out.exit_code == 0, out.output
    copies = stack.drain(capture, expected=30)
    times = sorted(m.message.publish_time.timestamp() for m in copies)
    assert len(times) == 30
    # 30 messages at 20/s: the last copy cannot be published sooner than 29/20 s after the first
    assert times[-1] - times[0] >= 29 / 20 * 0.9


def test_replay_count_limit_leaves_poison_in_the_dlq(stack: DlqStack) -> None:
    stack.seed(2, replay_count=3, key_prefix="poison")
    stack.seed(3, key_prefix="fine")
    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    counts = json.loads(out.stdout)["counts"]
    assert counts["replayed"] == 3 and counts["skipped_poison"] == 2
    [warning] = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: 2 dead letters were replayed 3 times already")
    left = stack.peek()
    assert sorted(d.attributes["key"] for d in left) == ["poison-0", "poison-1"]


def test_duplicate_dead_letters_are_dropped(stack: DlqStack) -> None:
    stack.seed(1, attributes={"event_id": "e-1"}, key_prefix="first")
    stack.seed(1, attributes={"event_id": "e-1"}, key_prefix="again")  # same event, twice
    stack.seed(1, attributes={"event_id": "e-2"}, key_prefix="other")
    capture = stack.capture()
    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    counts = json.loads(out.stdout)["counts"]
    assert (counts["replayed"], counts["duplicates_dropped"]) == (2, 1)
    copies = stack.drain(capture, expected=2)
    assert sorted(m.message.attributes["event_id"] for m in copies) == ["e-1", "e-2"]
    assert stack.peek_ids() == set()


def test_export_edit_replay_from_file_then_purge_exported(stack: DlqStack, tmp_path: Path) -> None:
    stack.seed(3, key_prefix="x")
    export = tmp_path / "dead.jsonl"
    out = dlq(stack, "export", "--out", str(export))
    assert out.exit_code == 0, out.output
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(records) == 3
    assert len(stack.peek_ids()) == 3  # export consumes nothing

    records[0]["json"]["fixed"] = True  # an operator repairs one payload before replaying
    export.write_text("".join(json.dumps(r) + "\n" for r in records))
    capture = stack.capture()
    replayed = dlq(stack, "replay", "--from-file", str(export), "--yes", "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["published"] == 3
    copies = {m.message.attributes["key"]: m for m in stack.drain(capture, expected=3)}
    assert json.loads(copies[records[0]["attributes"]["key"]].message.data)["fixed"] is True
    assert {m.message.attributes[REPLAY_TARGET_ATTRIBUTE] for m in copies.values()} == {
        "orders-sub"
    }
    assert len(stack.peek_ids()) == 3  # originals stay until purged

    stack.seed(1, key_prefix="late")  # arrived after the export: must survive the purge
    purged = dlq(stack, "purge", "--exported", str(export), "--yes", "--json", "--no-snapshot")
    assert purged.exit_code == 0, purged.output
    result = json.loads(purged.stdout)
    assert (result["purged"], result["not_exported"]) == (3, 1)
    assert [d.attributes["key"] for d in stack.peek()] == ["late-0"]


def test_purge_needs_an_export_or_yes(stack: DlqStack, tmp_path: Path) -> None:
    stack.seed(4)
    refused = dlq(stack, "purge")
    assert refused.exit_code == 2
    assert "export them first" in refused.stderr
    assert len(stack.peek_ids()) == 4

    audit = tmp_path / "audit.jsonl"
    purged = dlq(stack, "purge", "--yes", "--source", "orders-sub", "--json", audit=audit)
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout)["purged"] == 4
    assert stack.peek_ids() == set()
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["operation"] == "purge" and len(record["message_ids"]) == 4


def test_snapshot_then_restore_brings_dead_letters_back(stack: DlqStack) -> None:
    stack.seed(6)
    before = stack.peek_ids()
    out = dlq(stack, "purge", "--yes", "--json")
    assert out.exit_code == 0, out.output
    snapshot = json.loads(out.stdout)["snapshot"]
    assert snapshot and stack.peek_ids() == set()
    restored = dlq(stack, "restore", "--snapshot", snapshot.rsplit("/", 1)[-1], "--yes")
    assert restored.exit_code == 0, restored.output
    assert stack.peek_ids() == before


def test_replay_needs_confirmation(stack: DlqStack) -> None:
    stack.seed(2)
    declined = runner.invoke(app, ["dlq", "replay", *stack.cli_args()], input="n\n")
    assert declined.exit_code == 2
    assert "not confirmed: nothing changed" in declined.stderr
    assert "(test-" in declined.stderr and "; it holds 2) to" in declined.stderr
    closed = runner.invoke(app, ["dlq", "replay", *stack.cli_args()])
    assert closed.exit_code == 2
    assert "pass --yes" in closed.stderr
    assert len(stack.peek_ids()) == 2
    accepted = runner.invoke(
        app, ["dlq", "replay", *stack.cli_args(), "--no-snapshot"], input="y\n"
    )
    assert accepted.exit_code == 0, accepted.output
    assert "replayed 2 dead letters" in accepted.stdout
    assert stack.peek_ids() == set()


def test_replay_keeps_the_ordering_key(stack: DlqStack) -> None:
    stack.seed(3, ordering_key="trade:7", key_prefix="ordered")
    capture = stack.capture()
    out = dlq(stack, "replay", "--yes", "--no-snapshot")
    assert out.exit_code == 0, out.output
    copies = stack.drain(capture, expected=3)
    assert {m.message.ordering_key for m in copies} == {"trade:7"}


def test_broadcast_drops_the_target(stack: DlqStack) -> None:
    stack.seed(2)
    capture = stack.capture()
    out = dlq(stack, "replay", "--yes", "--broadcast", "--no-snapshot")
    assert out.exit_code == 0, out.output
    copies = stack.drain(capture, expected=2)
    assert all(REPLAY_TARGET_ATTRIBUTE not in m.message.attributes for m in copies)


def test_replayed_copy_reaches_only_the_subscription_that_failed_it(stack: DlqStack) -> None:
    """By delivery, through the strict proxy that applies subscription filters as Pub/Sub does:
    a targeted copy reaches its source subscription and no other; a broadcast reaches all."""
    keys = dead_letter_for_real(stack, 4, source="orders-sub")
    for healthy in ("billing-sub", "audit-sub"):  # they processed the originals
        assert len(stack.drain(stack.subscription(healthy), expected=4)) == 4
    out = dlq(stack, "replay", "--yes", "--no-snapshot")
    assert out.exit_code == 0, out.output
    copies = stack.drain(stack.subscription("orders-sub"), expected=4)
    assert sorted(m.message.attributes["key"] for m in copies) == sorted(keys)
    for healthy in ("billing-sub", "audit-sub"):
        assert stack.drain(stack.subscription(healthy), seconds=3) == []

    stack.seed(2, key_prefix="bcast")
    out = dlq(stack, "replay", "--yes", "--broadcast", "--no-snapshot")
    assert out.exit_code == 0, out.output
    for name in ("orders-sub", "billing-sub", "audit-sub"):
        got = stack.drain(stack.subscription(name), expected=2)
        assert sorted(m.message.attributes["key"] for m in got) == ["bcast-0", "bcast-1"]


def test_status_below_threshold_and_watch(stack: DlqStack) -> None:
    stack.seed(2)
    out = dlq(stack, "status", "--watch", "--interval", "0.1", "--refreshes", "2")
    assert out.exit_code == 0, out.output
    assert out.stdout.count("dead letters (") == 2
    assert "orders-sub" in out.stdout


def test_unknown_source_subscription_is_a_clean_error(stack: DlqStack) -> None:
    out = dlq(stack, "replay", "--yes", "--source", "nope-sub")
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        f"error: unknown subscription 'nope-sub' in stack '{stack.name}' "
        "(it has: orders-sub, billing-sub, audit-sub)"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "0"], "--rate 0.0: use a positive number"),
        (["--limit", "0"], "--limit 0: use 1 or more"),
        (["--attr", "kind"], "--attr 'kind': use KEY=VALUE"),
        (["--older-than", "soon"], "--older-than: 'soon' is not a duration"),
    ],
)
def test_bad_flags_are_one_line_errors(stack: DlqStack, flags: list[str], message: str) -> None:
    stack.seed(1)
    out = dlq(stack, "replay", "--yes", *flags)
    assert out.exit_code == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert len(stack.peek_ids()) == 1  # nothing acknowledged


def test_missing_subscription_is_a_clean_error(pubsub: str, tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    stack.subscriber.delete_subscription(subscription=stack.dlq_subscription)
    out = dlq(stack, "status")
    assert out.exit_code == 2
    assert out.stderr.startswith(f"error: subscription '{stack.topology.dead_letter.subscription}'")
    assert "not found" in out.stderr


def test_letters_without_a_known_source_stay_unless_sent_somewhere(stack: DlqStack) -> None:
    """A copy without replay_target would reach every subscription; one targeted at a removed
    subscription matches no filter and Pub/Sub drops it. Both stay in the DLQ, reported once,
    until --to or --broadcast says where they go."""
    stack.seed(2, source="orders-sub", key_prefix="known")
    stack.seed(2, source="renamed-sub", key_prefix="gone")
    orphans = stack.seed(1, key_prefix="orphan")  # then strip its source below
    capture = stack.capture()
    stripped = [d for d in stack.peek() if d.attributes["key"] in orphans]
    # re-publish the orphan without the source attribute, and drop the original
    [orphan] = stripped
    attrs = {k: v for k, v in orphan.attributes.items() if k != messages.SOURCE_SUBSCRIPTION}
    stack.publisher.publish(stack.dlq_topic, orphan.data, **attrs).result(timeout=30)
    dlq(stack, "purge", "--yes", "--attr", "key=orphan-0", "--source", "orders-sub")

    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["counts"]["replayed"] == 2 and result["counts"]["unroutable"] == 3
    [warning] = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert "3 dead letters have no source subscription or one this stack does not have" in warning
    assert sorted(d.attributes["key"] for d in stack.peek()) == ["gone-0", "gone-1", "orphan-0"]
    assert sorted(m.message.attributes["key"] for m in stack.drain(capture, expected=2)) == [
        "known-0",
        "known-1",
    ]

    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot", "--to", "billing-sub")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["by_target"] == {"billing-sub": 3}
    got = stack.drain(stack.subscription("billing-sub"), expected=3)
    assert sorted(m.message.attributes["key"] for m in got) == ["gone-0", "gone-1", "orphan-0"]
    assert stack.peek() == []


def test_to_must_name_a_subscription_of_the_stack(stack: DlqStack) -> None:
    out = dlq(stack, "replay", "--yes", "--to", "nope-sub")
    assert out.exit_code == 2
    assert out.stderr.startswith("error: --to nope-sub: no subscription 'nope-sub' in stack")
    both = dlq(stack, "replay", "--yes", "--to", "orders-sub", "--broadcast")
    assert both.exit_code == 2 and "cannot be used together" in both.stderr


def test_attributes_named_like_publish_arguments_are_kept_as_data(stack: DlqStack) -> None:
    stack.seed(1, attributes={"timeout": "5", "retry": "x", "data": "d", "topic": "t",
                              "ordering_key": "o"})  # fmt: skip
    capture = stack.capture()
    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    [copy] = stack.drain(capture, expected=1)
    attrs = dict(copy.message.attributes)
    assert {k: attrs[k] for k in ("timeout", "retry", "data", "topic", "ordering_key")} == {
        "timeout": "5", "retry": "x", "data": "d", "topic": "t", "ordering_key": "o"
    }  # fmt: skip


def test_publish_failures_leave_letters_in_the_dlq_and_exit_2(
    stack: DlqStack, strict_proxy: object
) -> None:
    """Pub/Sub refuses every publish for longer than replay's deadline: no traceback, nothing
    acknowledged, the failure counted; the next run replays them all."""
    stack.seed(3, ordering_key="trade:1", key_prefix="k")
    stack.seed(2, key_prefix="u")
    strict_proxy.fail("Publish", "UNAVAILABLE", count=100_000)  # type: ignore[attr-defined]
    import events_infra.dlq.replay as replay_module

    original = replay_module.PUBLISH_TIMEOUT_S
    replay_module.PUBLISH_TIMEOUT_S = 1.0
    try:
        out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    finally:
        replay_module.PUBLISH_TIMEOUT_S = original
        strict_proxy.reset()  # type: ignore[attr-defined]
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    assert json.loads(out.stdout)["counts"]["failed"] == 5
    assert len(stack.peek()) == 5
    again = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert json.loads(again.stdout)["counts"]["replayed"] == 5


def test_missing_credentials_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the emulator with no Google credentials: one line, exit 2, for every command
    that talks to Pub/Sub (the credential file named does not exist, so nothing is sent)."""
    stack = make_stack_file_only(tmp_path)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    for command in (["status"], ["inspect"], ["export", "--out", str(tmp_path / "x.jsonl")],
                    ["replay", "--yes", "--no-snapshot"]):  # fmt: skip
        out = runner.invoke(
            app, ["dlq", command[0], "--stack", stack, "--stacks-dir", str(tmp_path), *command[1:]]
        )
        assert out.exit_code == 2, (command, out.output)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: no usable Google credentials")


def make_stack_file_only(tmp_path: Path) -> str:
    (tmp_path / "Pulumi.creds.yaml").write_text(
        "config:\n  gcp:project: cotton-erp\n  events-infra:subscriptions: [{name: orders-sub}]\n"
    )
    return "creds"


def test_letters_held_while_publishing_is_slow_keep_their_deadline(
    stack: DlqStack, strict_proxy: object
) -> None:
    """The DLQ's ack deadline is 10 s and Pub/Sub takes over 10 s to confirm the copies (the
    first publish is held 11 s and times out, the retry succeeds): replay extends the held
    letters' deadlines, so its acks count and nothing comes back."""
    stack.seed(4, key_prefix="slow")
    capture = stack.capture()
    strict_proxy.delay("Publish", 11.0)  # type: ignore[attr-defined]
    out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["counts"]["replayed"] == 4 and result["counts"]["acked_too_late"] == 0
    stats = strict_proxy.stats()["stats"]  # type: ignore[attr-defined]
    assert stats["delays_injected.Publish"] == 1 and stats.get("late_acks_dropped", 0) == 0
    assert len(stack.drain(capture, expected=4)) >= 4
    assert stack.peek() == []


def test_scans_cover_the_backlog_when_pulls_are_partial(
    stack: DlqStack, strict_proxy: object
) -> None:
    """Every pull answered with fewer messages than exist, a third of them with none: status
    counts all, replay replays all."""
    stack.seed(300, key_prefix="p")
    strict_proxy.partial_pulls(1.0, seed=5)  # type: ignore[attr-defined]
    try:
        status = dlq(stack, "status", "--json")
        assert json.loads(status.stdout)["undelivered"] == 300, status.output
        out = dlq(stack, "replay", "--yes", "--json", "--no-snapshot")
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["counts"]["replayed"] == 300
        stats = strict_proxy.stats()["stats"]  # type: ignore[attr-defined]
    finally:
        strict_proxy.partial_pulls(0.0)  # type: ignore[attr-defined]
    assert stats["partial_pulls"] > 20
    assert stack.peek() == []


def test_undo_journal_restores_what_replay_acknowledged_when_no_snapshot_can_be_had(
    stack: DlqStack, strict_proxy: object, tmp_path: Path
) -> None:
    """Pub/Sub refuses the snapshot (as for a backlog over ~7 days old): replay warns and goes
    on; its journal holds every letter it acknowledged, and restore --journal puts them back."""
    keys = stack.seed(5, key_prefix="j")
    originals = {letter.attributes["key"]: letter.data for letter in stack.peek()}
    strict_proxy.fail(  # type: ignore[attr-defined]
        "CreateSnapshot", "FAILED_PRECONDITION", details="subscription backlog too old"
    )
    out = dlq(stack, "replay", "--yes", "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["counts"]["replayed"] == 5 and result["snapshot"] is None
    assert "no snapshot (subscription backlog too old); the undo journal" in out.stderr
    journal = Path(result["journal"])
    assert journal.is_file() and str(journal).startswith(str(Path(os.environ["XDG_STATE_HOME"])))
    assert sorted(json.loads(line)["attributes"]["key"] for line in journal.open()) == keys
    assert stack.peek() == []

    restored = runner.invoke(
        app, ["dlq", "restore", *stack.cli_args(), "--journal", str(journal), "--yes"]
    )
    assert restored.exit_code == 0, restored.output
    assert "5 of 5 dead letters published back" in restored.stdout
    back = stack.peek()
    assert sorted(d.attributes["key"] for d in back) == keys
    assert {d.source_subscription for d in back} == {"orders-sub"}  # still dead letters
    # byte for byte: the seeded JSON has spaces a parse-and-dump would lose
    assert {d.attributes["key"]: d.data for d in back} == originals
    assert all(b'": ' in data for data in originals.values())


def test_purge_journal_and_dry_runs_leave_no_journal(stack: DlqStack) -> None:
    stack.seed(3, key_prefix="p")
    dry = dlq(stack, "purge", "--yes", "--dry-run", "--json")
    assert json.loads(dry.stdout)["journal"] is None
    out = dlq(stack, "purge", "--yes", "--json", "--no-snapshot")
    assert out.exit_code == 0, out.output
    journal = json.loads(out.stdout)["journal"]
    assert len(Path(journal).read_text().splitlines()) == 3
    assert stack.peek() == []
    empty = dlq(stack, "purge", "--yes", "--json", "--no-snapshot")
    assert json.loads(empty.stdout)["journal"] is None  # nothing acknowledged: no file left
    both = runner.invoke(app, ["dlq", "restore", *stack.cli_args()])
    assert both.exit_code == 2 and "give one of --snapshot ID or --journal FILE" in both.stderr


def test_tool_snapshots_are_pruned_to_the_newest_three(stack: DlqStack) -> None:
    mine = f"projects/{stack.project}/snapshots/my-own-backup"
    stack.subscriber.create_snapshot(name=mine, subscription=stack.dlq_subscription)
    for i in range(5):
        stack.seed(1, key_prefix=f"s{i}")
        out = dlq(stack, "purge", "--yes", "--json")
        assert out.exit_code == 0, out.output
    names = [s.name for s in stack.subscriber.list_snapshots(project=f"projects/{stack.project}")]
    ours = sorted(n for n in names if "-purge-" in n)
    assert len(ours) == 3 and mine in names  # someone else's snapshot is never touched
    assert json.loads(out.stdout)["snapshot"] in ours  # the newest is kept


def test_a_scan_keeps_looking_for_the_expected_backlog_and_says_what_it_missed(
    stack: DlqStack,
) -> None:
    from events_infra.dlq.scan import Scanner

    stack.seed(4, key_prefix="e")
    exact = Scanner(stack.subscriber, stack.dlq_subscription, pull_timeout=0.5, expected=4)
    assert sum(len(batch) for batch in exact.batches()) == 4
    assert exact.possibly_remaining == 0
    stale = Scanner(  # an estimate that is too high (Monitoring lags): the budget ends it
        stack.subscriber, stack.dlq_subscription, pull_timeout=0.5, expected=7, budget_s=2.0
    )
    assert sum(len(batch) for batch in stale.batches()) == 4
    assert stale.possibly_remaining == 3
    answered = runner.invoke(
        app, ["dlq", "replay", *stack.cli_args(), "--json", "--no-snapshot"], input="y\n"
    )
    assert answered.exit_code == 0, answered.output
    result = json.loads(answered.stdout[answered.stdout.index("{") :])  # after the echoed "y"
    assert result["counts"]["replayed"] == 4 and result["possibly_remaining"] == 0
