"""Moving a live subscription's backlog into its successor: the way through a change Pub/Sub
cannot make in place (filter, ordering, name or topic are immutable).

NEW is already declared and exists, so it receives every message published from then on. What
it lacks is OLD's backlog from before: the messages published before the move began that OLD's
consumers had not acknowledged. Each of those is copied to NEW's topic *targeted at NEW*
(`replay_target`, so no filtered subscription of the stack gets a second copy) and acknowledged
in OLD only after Pub/Sub confirmed the copy and the journal holds it — the same machinery as
`dlq replay` (`Scanner`, `publish_copies`, `Behind`). Killed at any point, a message is in OLD,
in NEW, or in both; a rerun copies what is still in OLD and consumers dedupe the overlap by
`event_id` (old-path messages by `replayed_from`, the original's message id).

What the move leaves alone:
- messages published after it began (`cutoff`): NEW has them already; they stay in OLD, held
  while the scan runs so it reaches the older ones, and do not keep the scan going, so the move
  ends although publishers keep writing;
- messages NEW's own filter would refuse: a copy would be dropped on the way, so they stay;
- copies targeted at a third subscription (`replay_target` naming neither OLD nor NEW): their
  target has them; they are acknowledged in OLD so OLD's backlog does not loop back into the
  move;
- copies targeted at NEW (this move's own, back in an unfiltered OLD, or `dlq replay`'s): never
  acknowledged in OLD, because a later seek of NEW to a snapshot of OLD (`dlq.handover`) would
  carry that acknowledgement into NEW and drop them there before NEW's consumers saw them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from events_infra.dlq.behind import Behind
from events_infra.dlq.messages import DeadLetter
from events_infra.dlq.ratelimit import RateLimiter
from events_infra.dlq.replay import PUBLISH_TIMEOUT_S, publish_copies
from events_infra.dlq.scan import PREFETCH_BATCHES, Scanner, paced_batch_size
from events_infra.pubsub.attributes import REPLAY_TARGET, REPLAYED_FROM
from events_infra.pubsub.filters import Filter


@dataclass
class MigrateOptions:
    old: str
    """OLD's subscription id (its backlog is read)."""
    old_path: str
    new: str
    """NEW's subscription id: every copy is targeted at it."""
    new_topic_path: str
    cutoff: datetime
    """When the move began: messages published since then are in NEW already."""
    new_filter: Filter | None = None
    """NEW's filter as Pub/Sub applies it, to leave in OLD what NEW would refuse."""
    limit: int | None = None
    rate: float | None = None
    dry_run: bool = False
    journal: Any = None
    """Messages are written here (payload included) before they are acknowledged in OLD."""
    expected: int | None = None
    """OLD's backlog when the move began (Monitoring's figure), if known."""
    batch_size: int = 500
    pull_timeout: float = 2.0
    only: Callable[[DeadLetter], bool] | None = None
    """Copy only these (the seek route: the copies `dlq replay` targeted at OLD, which NEW's
    replay filter refuses); every other message is left in OLD as it is, none acknowledged."""


@dataclass
class MigrateSummary:
    moved: list[str] = field(default_factory=list)
    """OLD's message ids whose copy Pub/Sub confirmed on NEW's topic, then acknowledged."""
    would_move: list[str] = field(default_factory=list)
    foreign_copies: list[str] = field(default_factory=list)
    """Copies targeted at a third subscription: acknowledged in OLD (their target has them)."""
    copies_for_new: int = 0
    """Copies targeted at NEW seen in OLD: left there (NEW has them; see the module docstring)."""
    refused_by_new: list[str] = field(default_factory=list)
    """NEW's filter would drop a copy: left in OLD."""
    arrived_since: int = 0
    """Published after the move began (NEW has them): left in OLD."""
    failed: list[str] = field(default_factory=list)
    """Copy not confirmed: left in OLD."""
    late: list[str] = field(default_factory=list)
    """Copied, but the ack reached Pub/Sub after its deadline: still in OLD (a rerun copies it
    again; consumers dedupe)."""
    interrupted: bool = False
    possibly_remaining: int | None = None

    def counts(self) -> dict[str, int]:
        return {
            "moved": len(self.moved),
            "would_move": len(self.would_move),
            "foreign_copies_acked": len(self.foreign_copies),
            "copies_for_new_left": self.copies_for_new,
            "refused_by_new_filter": len(self.refused_by_new),
            "arrived_since_start": self.arrived_since,
            "failed": len(self.failed),
            "acked_too_late": len(self.late),
        }


def migrate(
    publisher: Any,
    subscriber: Any,
    options: MigrateOptions,
    ack_deadline_s: int = 60,
    progress: Callable[[int], None] | None = None,
) -> MigrateSummary:
    """Copy OLD's backlog (published before `options.cutoff`) to NEW, acknowledging each
    message in OLD only after its copy is confirmed; see the module docstring."""
    from events_infra.pubsub.key_publisher import KeyPublisher

    summary = MigrateSummary()
    sender = KeyPublisher(publisher, options.new_topic_path, timeout=PUBLISH_TIMEOUT_S)
    try:
        _migrate(sender, subscriber, options, ack_deadline_s, progress, summary)
    except KeyboardInterrupt:  # Ctrl-C/SIGTERM: what was confirmed is acked, the rest released
        summary.interrupted = True
    finally:
        sender.close()
    return summary


def copy_attributes(letter: DeadLetter, new: str) -> dict[str, str]:
    """The copy's attributes: the original's, targeted at NEW, with the original's message id
    (or the id it was itself copied from) in `replayed_from` so old-path consumers dedupe it."""
    attributes = dict(letter.attributes)
    attributes[REPLAY_TARGET] = new
    attributes.setdefault(REPLAYED_FROM, letter.message_id)
    return attributes


def _migrate(
    sender: Any,
    subscriber: Any,
    options: MigrateOptions,
    ack_deadline_s: int,
    progress: Callable[[int], None] | None,
    summary: MigrateSummary,
) -> None:
    batch_size = paced_batch_size(options.batch_size, options.rate, ack_deadline_s)
    scanner = Scanner(
        subscriber,
        options.old_path,
        batch_size,
        options.pull_timeout,
        ack_deadline_s=ack_deadline_s,
        expected=options.expected if options.limit is None else None,
        covers=lambda letter: letter.dead_lettered_at < options.cutoff,
    )
    limiter = RateLimiter(options.rate)
    behind = Behind(name="migrate-behind")
    taken = 0
    batches = scanner.batches(prefetch=PREFETCH_BATCHES, before_release=behind.finish)
    try:
        for batch in batches:
            copy, foreign = _sort(batch, options, summary, taken)
            taken += len(copy)
            if options.dry_run:
                summary.would_move += [m.message_id for m in copy]
                summary.foreign_copies += [m.message_id for m in foreign]
                scanner.release(copy + foreign)
            else:
                if foreign:
                    behind.submit(partial(_acknowledge, scanner, options, summary, [], foreign))

                def settle(confirmed: list[DeadLetter]) -> None:
                    behind.submit(partial(_acknowledge, scanner, options, summary, confirmed, []))

                publish_copies(
                    sender,
                    copy,
                    options.rate,
                    limiter,
                    summary.failed,
                    settle,
                    partial(copy_attributes, new=options.new),
                )
            if progress:
                progress(len(copy))
            if options.limit is not None and taken >= options.limit:
                break
    finally:
        batches.close()
    behind.check()
    summary.possibly_remaining = scanner.possibly_remaining


def _sort(
    batch: list[DeadLetter], options: MigrateOptions, summary: MigrateSummary, taken: int
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(to copy, foreign copies to acknowledge); everything else stays held in OLD until the
    scan ends (then released), counted in `summary`."""
    copy: list[DeadLetter] = []
    foreign: list[DeadLetter] = []
    for letter in batch:
        target = letter.attributes.get(REPLAY_TARGET)
        if options.only is not None and not options.only(letter):
            continue  # held until the scan ends, then released untouched
        if target == options.new:
            summary.copies_for_new += 1
        elif target and target != options.old:
            foreign.append(letter)
        elif letter.dead_lettered_at >= options.cutoff:
            summary.arrived_since += 1
        elif options.new_filter is not None and not options.new_filter.matches(
            copy_attributes(letter, options.new)
        ):
            summary.refused_by_new.append(letter.message_id)
        elif options.limit is None or taken + len(copy) < options.limit:
            copy.append(letter)
    return copy, foreign


def _acknowledge(
    scanner: Scanner,
    options: MigrateOptions,
    summary: MigrateSummary,
    confirmed: list[DeadLetter],
    foreign: list[DeadLetter],
) -> None:
    """Journal, then acknowledge in OLD; count as moved only what was acked in time."""
    if options.journal is not None and confirmed:
        options.journal.record(confirmed)  # before any ack
    in_time = scanner.ack(confirmed + foreign)
    summary.foreign_copies += [m.message_id for m in foreign]
    for letter in confirmed:
        if letter.message_id in in_time:
            summary.moved.append(letter.message_id)
        else:
            summary.late.append(letter.message_id)
