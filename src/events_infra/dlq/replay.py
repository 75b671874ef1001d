"""Replaying dead letters to the events topic, and purging them.

Nothing is lost: a dead letter is acknowledged only after Pub/Sub confirmed its copy on the
events topic. Killed at any point, every message is in the DLQ, on the topic, or (between
the confirmation and the ack) in both.

Copies go out through `outbox.key_publisher.KeyPublisher`: one Publish request per ordering key
(what production accepts; unkeyed letters share requests), every call with a deadline, nothing
retrying in the background once a batch returns, and attributes passed as a map (an attribute
named `timeout` or `data` is data, not an argument).

Pulls, publishes and acks overlap: the scan keeps batches pulled ahead (`Scanner.batches`
with `prefetch`) and each confirmed group's journal write and ack run behind on a thread of
their own (`dlq.behind`) while the next batch is published. However the run ends, what was
confirmed is acknowledged before anything still held is released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from events_infra.dlq.behind import Behind
from events_infra.dlq.interrupts import deferred_stop
from events_infra.dlq.messages import (
    DeadLetter,
    count_attribute,
    data_from_record,
    replay_attributes,
)
from events_infra.dlq.ratelimit import RateLimiter
from events_infra.dlq.scan import PREFETCH_BATCHES, Scanner, paced_batch_size
from events_infra.dlq.selection import Selection
from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.attributes import REPLAY_COUNT

PUBLISH_TIMEOUT_S = 20.0
"""A batch's publish (with its retries) gives up after this; its letters stay in the DLQ."""


@dataclass
class ReplayOptions:
    selection: Selection = field(default_factory=Selection)
    limit: int | None = None
    rate: float | None = None
    broadcast: bool = False
    to: str | None = None
    """Send every selected letter to this subscription instead of the one that failed it."""
    known_sources: frozenset[str] | None = None
    """The stack's subscriptions: a letter whose source is not one of them is not replayed
    (its copy would match no subscription's filter and be dropped) unless `to`/`broadcast`."""
    max_replays: int = 3
    dry_run: bool = False
    journal: Any = None
    """An undo `Journal`: letters are written there before they are acknowledged."""
    expected: int | None = None
    """The DLQ's size when the run began, if known: the scan keeps looking until it has seen
    that many (or its budget runs out) and the summary says how many it may have missed."""
    batch_size: int = 500
    pull_timeout: float = 2.0


@dataclass
class ReplaySummary:
    replayed: list[str] = field(default_factory=list)
    """Dead-letter ids whose copy Pub/Sub confirmed and that were then acknowledged."""
    would_replay: list[str] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    """Left in the DLQ: replayed `max_replays` times already."""
    duplicates: list[str] = field(default_factory=list)
    """Second dead letters of an original already replayed in this run: acknowledged."""
    failed: list[str] = field(default_factory=list)
    """Publish failed: left in the DLQ."""
    unroutable: list[str] = field(default_factory=list)
    """No source subscription, or one the stack does not have: left in the DLQ."""
    late: list[str] = field(default_factory=list)
    """Copy confirmed, but the ack reached Pub/Sub after the deadline: still in the DLQ, and a
    later replay sends it again (consumers dedupe on event_id)."""
    not_selected: int = 0
    by_target: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    """Stopped by Ctrl-C/SIGTERM: the counts are what was done until then."""
    possibly_remaining: int | None = None
    """Dead letters the DLQ held at the start that the scan never saw (None: size unknown)."""

    def counts(self) -> dict[str, int]:
        return {
            "replayed": len(self.replayed),
            "would_replay": len(self.would_replay),
            "skipped_poison": len(self.poison),
            "duplicates_dropped": len(self.duplicates),
            "failed": len(self.failed),
            "unroutable": len(self.unroutable),
            "acked_too_late": len(self.late),
            "not_selected": self.not_selected,
        }

    @property
    def left(self) -> int:
        """Selected dead letters still in the DLQ after the run."""
        return len(self.poison) + len(self.failed) + len(self.unroutable) + len(self.would_replay)


def replay(
    publisher: Any,
    subscriber: Any,
    target: DlqTarget,
    options: ReplayOptions,
    ack_deadline_s: int = 60,
    progress: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Republish selected dead letters (targeted at the subscription that failed each one,
    unless `broadcast` or `to`), acknowledging each only after its copy is confirmed.
    `publisher` is the Pub/Sub publisher API client (`outbox.key_publisher.make_publisher`)."""
    from events_infra.pubsub.key_publisher import KeyPublisher

    summary = ReplaySummary()
    sender = KeyPublisher(publisher, target.topic_path, timeout=PUBLISH_TIMEOUT_S)
    try:
        return _replay(sender, subscriber, target, options, ack_deadline_s, progress, summary)
    except KeyboardInterrupt:  # Ctrl-C: held letters are released; report what was done
        summary.interrupted = True
        return summary
    finally:
        sender.close()


def _routable(letter: DeadLetter, options: ReplayOptions) -> bool:
    if options.broadcast or options.to:
        return True
    source = letter.source_subscription
    return bool(source) and (options.known_sources is None or source in options.known_sources)


def _replay(
    sender: Any,
    subscriber: Any,
    target: DlqTarget,
    options: ReplayOptions,
    ack_deadline_s: int,
    progress: Callable[[int], None] | None,
    summary: ReplaySummary,
) -> ReplaySummary:
    limiter = RateLimiter(options.rate)
    batch_size = paced_batch_size(options.batch_size, options.rate, ack_deadline_s)
    scanner = Scanner(
        subscriber,
        target.subscription_path,
        batch_size,
        options.pull_timeout,
        ack_deadline_s=ack_deadline_s,
        expected=options.expected if options.limit is None else None,
    )
    done_fingerprints: set[bytes] = set()
    taken = 0
    behind = Behind()  # journal + ack of confirmed groups, while the next batch is published
    # even on Ctrl-C, what Pub/Sub confirmed is acknowledged before the rest is released
    batches = scanner.batches(prefetch=PREFETCH_BATCHES, before_release=behind.finish)
    try:
        for batch in batches:
            publish, release, seconds, already_done = _sort_batch(
                batch, options, summary, done_fingerprints, taken
            )
            taken += len(publish)
            scanner.release(release)
            all_seconds = [d for ds in seconds.values() for d in ds]

            if options.dry_run:
                summary.would_replay += [letter.message_id for letter in publish]
                for letter in publish:
                    _count_target(summary, letter, options)
                summary.duplicates += [d.message_id for d in all_seconds + already_done]
                scanner.release(publish + all_seconds + already_done)
            else:
                if already_done:
                    behind.submit(
                        partial(_acknowledge, scanner, options, summary, [], already_done)
                    )
                dropped: set[str] = set()  # twins handed to the ack thread with their primary

                def settle(
                    confirmed: list[DeadLetter],
                    seconds: dict[str, list[DeadLetter]] = seconds,
                    dropped: set[str] = dropped,
                ) -> None:
                    """Hand a group to the ack thread as soon as Pub/Sub confirmed its copies
                    (never before); its second dead letters go with it."""
                    twins = [d for c in confirmed for d in seconds.get(c.message_id, [])]
                    dropped.update(d.message_id for d in twins)
                    done_fingerprints.update(letter.fingerprint for letter in confirmed)
                    behind.submit(
                        partial(_acknowledge, scanner, options, summary, confirmed, twins)
                    )

                publish_copies(
                    sender,
                    publish,
                    options.rate,
                    limiter,
                    summary.failed,
                    settle,
                    partial(_copy_attributes, options),
                )
                scanner.release([d for d in all_seconds if d.message_id not in dropped])
            if progress:
                progress(len(publish))
            if options.limit is not None and taken >= options.limit:
                break
    finally:
        batches.close()
    behind.check()
    summary.possibly_remaining = scanner.possibly_remaining
    return summary


def _sort_batch(
    batch: list[DeadLetter],
    options: ReplayOptions,
    summary: ReplaySummary,
    done_fingerprints: set[bytes],
    taken: int,
) -> tuple[list[DeadLetter], list[DeadLetter], dict[str, list[DeadLetter]], list[DeadLetter]]:
    """(to publish, to release, second dead letters per primary id, duplicates of originals
    replayed earlier); poison, unroutable and unselected letters are counted in `summary`."""
    publish: list[DeadLetter] = []
    release: list[DeadLetter] = []
    seconds: dict[str, list[DeadLetter]] = {}
    already_done: list[DeadLetter] = []
    primaries: dict[bytes, DeadLetter] = {}  # fingerprint -> the letter replayed for it
    for letter in batch:
        if not options.selection.matches(letter):
            summary.not_selected += 1
            release.append(letter)
            continue
        fingerprint = letter.fingerprint
        if fingerprint in done_fingerprints:
            already_done.append(letter)
            continue
        if fingerprint in primaries:
            seconds.setdefault(primaries[fingerprint].message_id, []).append(letter)
            continue
        if options.limit is not None and taken + len(publish) >= options.limit:
            release.append(letter)
            continue
        if letter.replay_count >= options.max_replays:
            summary.poison.append(letter.message_id)
            release.append(letter)
            continue
        if not _routable(letter, options):
            summary.unroutable.append(letter.message_id)
            release.append(letter)
            continue
        primaries[fingerprint] = letter
        publish.append(letter)
    return publish, release, seconds, already_done


def _acknowledge(
    scanner: Scanner,
    options: ReplayOptions,
    summary: ReplaySummary,
    confirmed: list[DeadLetter],
    duplicates: list[DeadLetter],
) -> None:
    """Journal, then acknowledge, letters whose copy Pub/Sub confirmed (and duplicates of
    them); count as replayed only those whose ack went out before their deadline."""
    _journal(options.journal, confirmed + duplicates)  # the undo point, before any ack
    in_time = scanner.ack(confirmed + duplicates)
    summary.duplicates += [d.message_id for d in duplicates]
    for letter in confirmed:
        if letter.message_id not in in_time:
            summary.late.append(letter.message_id)
            continue
        summary.replayed.append(letter.message_id)
        _count_target(summary, letter, options)


def _journal(journal: Any, letters: list[DeadLetter]) -> None:
    if journal is not None and letters:
        journal.record(letters)


def _count_target(summary: ReplaySummary, letter: DeadLetter, options: ReplayOptions) -> None:
    if options.broadcast:
        key = "(all subscriptions)"
    else:
        key = options.to or letter.source_subscription or "(unknown)"
    summary.by_target[key] = summary.by_target.get(key, 0) + 1


def _copy_attributes(options: ReplayOptions, letter: DeadLetter) -> dict[str, str]:
    return replay_attributes(
        letter.attributes,
        letter.message_id,
        None if options.broadcast else options.to or letter.source_subscription,
        letter.replay_count + 1,
    )


def publish_copies(
    sender: Any,
    letters: list[DeadLetter],
    rate: float | None,
    limiter: RateLimiter,
    failed: list[str],
    settle: Callable[[list[DeadLetter]], None],
    attributes_for: Callable[[DeadLetter], dict[str, str]],
) -> None:
    """Publish a copy of each letter (its attributes from `attributes_for`) and hand each
    group's confirmed letters to `settle`; ids whose publish failed go to `failed`. With a
    `rate` the copies go out in small paced groups (a tenth of a second's worth each), so the
    rate holds for what reaches the topic, not only for what was prepared. Shared by replay and
    `subscription migrate`."""
    from events_infra.pubsub.publish_requests import Outgoing

    step = max(1, int(rate // 10)) if rate else max(1, len(letters))
    for start in range(0, len(letters), step):
        group = letters[start : start + step]
        messages = []
        for letter in group:
            limiter.acquire()
            messages.append(
                Outgoing(
                    letter.message_id, letter.ordering_key, letter.data, attributes_for(letter)
                )
            )
        with deferred_stop():  # a request on the wire is confirmed and settled, then we stop
            confirmed_ids, failed_ids = sender.publish_messages(messages)
            failed += failed_ids
            confirmed = set(confirmed_ids)
            settle([letter for letter in group if letter.message_id in confirmed])


@dataclass
class FileReplaySummary:
    published: list[str] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def replay_records(
    publisher: Any,
    target: DlqTarget,
    records: Iterable[dict[str, Any]],
    broadcast: bool = False,
    rate: float | None = None,
    max_replays: int = 3,
) -> FileReplaySummary:
    """Publish exported (possibly edited) records; the originals stay in the DLQ until
    `purge --exported` removes them."""
    from events_infra.pubsub.key_publisher import KeyPublisher
    from events_infra.pubsub.publish_requests import Outgoing

    summary = FileReplaySummary()
    limiter = RateLimiter(rate)
    messages = []
    for record in records:
        count = count_attribute(record.get(REPLAY_COUNT)) or 0
        if count >= max_replays:
            summary.poison.append(record["message_id"])
            continue
        source = record.get("source_subscription")
        attributes = replay_attributes(
            dict(record.get("attributes") or {}),
            record["message_id"],
            None if broadcast else source,
            count + 1,
        )
        limiter.acquire()
        key = record.get("ordering_key") or ""
        messages.append(Outgoing(record["message_id"], key, data_from_record(record), attributes))
    sender = KeyPublisher(publisher, target.topic_path, timeout=PUBLISH_TIMEOUT_S)
    try:
        summary.published, summary.failed = sender.publish_messages(messages)
    finally:
        sender.close()
    return summary


@dataclass
class PurgeSummary:
    purged: list[str] = field(default_factory=list)
    not_exported: int = 0
    not_selected: int = 0
    possibly_remaining: int | None = None
    interrupted: bool = False
    """Stopped by Ctrl-C/SIGTERM: `purged` is what was removed until then."""


def purge(
    subscriber: Any,
    target: DlqTarget,
    selection: Selection,
    exported_ids: set[str] | None,
    limit: int | None = None,
    dry_run: bool = False,
    pull_timeout: float = 2.0,
    journal: Any = None,
    expected: int | None = None,
) -> PurgeSummary:
    """Acknowledge (remove for good) selected dead letters; with `exported_ids`, only those
    whose ids are in the export file, so nothing unexported is ever removed."""
    summary = PurgeSummary()
    scanner = Scanner(
        subscriber,
        target.subscription_path,
        500,
        pull_timeout,
        expected=expected if limit is None else None,
    )
    try:
        _purge(scanner, selection, exported_ids, limit, dry_run, journal, summary)
    except KeyboardInterrupt:  # Ctrl-C: held letters are released; report what was removed
        summary.interrupted = True
        return summary
    summary.possibly_remaining = scanner.possibly_remaining
    return summary


def _purge(
    scanner: Scanner,
    selection: Selection,
    exported_ids: set[str] | None,
    limit: int | None,
    dry_run: bool,
    journal: Any,
    summary: PurgeSummary,
) -> None:
    for batch in scanner.batches(prefetch=PREFETCH_BATCHES):
        remove, keep = [], []
        for letter in batch:
            if not selection.matches(letter):
                summary.not_selected += 1
                keep.append(letter)
            elif exported_ids is not None and letter.message_id not in exported_ids:
                summary.not_exported += 1
                keep.append(letter)
            elif limit is not None and len(summary.purged) + len(remove) >= limit:
                keep.append(letter)
            else:
                remove.append(letter)
        scanner.release(keep)
        if dry_run:
            scanner.release(remove)
            summary.purged += [letter.message_id for letter in remove]
        else:
            _journal(journal, remove)  # the undo point, before any ack
            in_time = scanner.ack(remove)
            summary.purged += [m.message_id for m in remove if m.message_id in in_time]
