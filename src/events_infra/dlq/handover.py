"""Handing a subscription's backlog to its successor without copying it: seek NEW to a
snapshot of OLD (`subscription migrate --by seek`; `auto` takes it where copies would reach a
subscription nobody accepted, and Pub/Sub allows it).

Pub/Sub can give one subscription another's acknowledgement state. A snapshot of OLD records
which messages OLD's consumers acknowledged, and retains the others plus everything published
after it; seeking NEW to it marks exactly those unacknowledged in NEW. The rules relied on,
from Google's reference (also in docs/deploying.md):
- "you can copy the acknowledgment state of one subscription to another by using seek in
  combination with a snapshot", and a snapshot can be applied to any subscription of its topic,
  "including newly created" ones (replay overview);
- Seek: "The snapshot's topic must be the same as that of the provided subscription";
- CreateSnapshot: FAILED_PRECONDITION when the snapshot would expire less than an hour after
  creation (a snapshot lives 7 days minus the age of the subscription's oldest unacknowledged
  message);
- a seek is eventually consistent: for about a minute, messages it acknowledged may still be
  delivered;
- a subscription's `message_retention_duration` counts from each message's publish time (a
  seek keeps publish times, copies get new ones).

Nothing is published by the seek, so no other subscription (another team's unfiltered one
included) receives anything, and OLD is not changed by it. NEW continues where OLD's
consumers stopped: what they acknowledged counts as done in NEW too; what NEW's consumers had
acknowledged and OLD's had not is delivered again (consumers dedupe by `event_id`). What NEW's
filter refuses stays in OLD only, as with copies, and so would copies `dlq replay` targeted
at OLD: NEW's replay filter refuses those, so the operation copies just them on before the
seek (`handover_operation`). Killed at any point, NEW is either untouched or handed over; a rerun
hands over again (more redeliveries, nothing lost).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from events_infra.dlq.errors import DlqError
from events_infra.dlq.target import DlqTarget

METHODS = ("auto", "seek", "copy")


DEFAULT_RETENTION = timedelta(days=7)
"""A subscription's `message_retention_duration` when it is not set."""


def seek_refusal(old_live: Any, new_live: Any, limit: int | None, rate: float | None) -> str:
    """Why NEW cannot be handed OLD's backlog by a seek without losing some of it ("" when it
    can)."""
    if old_live.topic != new_live.topic:
        return (
            f"OLD is attached to {old_live.topic} and NEW to {new_live.topic}: a seek needs one "
            "topic"
        )
    if old_live.filter and old_live.filter != new_live.filter:
        # OLD's filter acknowledged what it refused; that acknowledgement would carry into NEW
        return (
            "OLD has a filter other than NEW's: what OLD's filter refused counts as acknowledged "
            "in its snapshot, and a seek would drop it from NEW too"
        )
    old_keeps, new_keeps = retention(old_live), retention(new_live)
    if new_keeps < old_keeps:
        return (
            f"NEW keeps messages {_days(new_keeps)} and OLD {_days(old_keeps)}: a seek keeps "
            "publish times, so NEW would expire OLD's older backlog at once"
        )
    if limit is not None or rate is not None:
        return "a seek hands over the whole backlog at once (no --limit or --rate)"
    return ""


def retention(live: Any) -> timedelta:
    """How long the subscription keeps an unacknowledged message after its publish time."""
    kept = live.message_retention_duration
    return kept if kept else DEFAULT_RETENTION


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:g} days"


def choose_method(
    method: str, old_live: Any, new_live: Any, limit: Any, rate: Any, strangers: bool
) -> str:
    """ "seek" or "copy". `auto` copies (the route these tests follow end to end) unless copies
    would reach an unfiltered subscription nobody accepted (`strangers`) and a seek loses
    nothing; an explicit `seek` that would lose something is an error naming why."""
    if method == "copy":
        return "copy"
    refusal = seek_refusal(old_live, new_live, limit, rate)
    if method == "seek":
        if refusal:
            raise DlqError(f"--by seek: {refusal}; move the backlog with copies (--by copy)")
        return "seek"
    return "seek" if strangers and not refusal else "copy"


@dataclass
class Handover:
    snapshot: str
    """The snapshot of OLD that NEW was seeked to (kept: seek NEW to it again if needed)."""
    undo_snapshot: str | None
    """NEW's own state before the seek: seeking NEW back to it undoes the handover."""
    undo_problem: str = ""


Guard = Callable[[str], AbstractContextManager[Any]]
"""`guard(resource)`: a context turning a call's API errors into one line naming `resource`."""


def _no_guard(_what: str) -> AbstractContextManager[Any]:
    return nullcontext()


def snapshot_old(subscriber: Any, target: DlqTarget, old: str, guard: Guard = _no_guard) -> str:
    """The snapshot NEW is seeked to, taken before anything scans OLD: a scan's releases count
    as delivery attempts, and one that dead-letters a message acknowledges it in OLD; from the
    snapshot on, OLD's acknowledgement state is fixed, and what is published later (the copies
    the seek route makes) is in it unacknowledged. Gives up within `api_calls.CALL_BUDGET_S`."""
    from google.api_core import exceptions as gexc

    from events_infra.dlq.snapshot import take_snapshot
    from events_infra.pubsub.api_calls import bounded, error_detail

    with guard(f"subscription {old!r}"):
        try:
            old_target = replace(target, dead_letter_subscription=old)
            return take_snapshot(subscriber, old_target, "handover", call=bounded())
        except gexc.FailedPrecondition as err:
            raise DlqError(
                f"Pub/Sub refused a snapshot of {old} ({error_detail(err)}): it would expire "
                "within the hour, its oldest unacknowledged message being close to 7 days old; "
                "move the backlog with copies (--by copy)"
            ) from None


def seek_new(
    subscriber: Any,
    target: DlqTarget,
    new: str,
    snapshot: str,
    undo: bool,
    guard: Guard = _no_guard,
    say: Callable[[str], None] = lambda _text: None,
) -> Handover:
    """Snapshot NEW (the undo point, if `undo`; its undo command is said at once), then seek
    NEW to `snapshot`. Each call gives up within `api_calls.CALL_BUDGET_S`."""
    from google.api_core import exceptions as gexc

    from events_infra.dlq.snapshot import seek_command, take_snapshot
    from events_infra.pubsub.api_calls import bounded, error_detail
    from events_infra.pubsub.paths import subscription_path

    undo_snapshot, problem = None, ""
    if undo:
        with guard(f"subscription {new!r}"):
            try:
                undo_snapshot = take_snapshot(
                    subscriber, replace(target, dead_letter_subscription=new), "before-handover",
                    call=bounded(),
                )  # fmt: skip
                say(f"to undo the handover: {seek_command(target.project, new, undo_snapshot)}")
            except gexc.FailedPrecondition as err:
                problem = error_detail(err)
    try:
        with guard(f"subscription {new!r}"):
            subscriber.seek(
                request={
                    "subscription": subscription_path(target.project, new),
                    "snapshot": snapshot,
                },
                **bounded(),
            )
    except DlqError as err:
        undo_hint = (
            f", or undo it: {seek_command(target.project, new, undo_snapshot)}"
            if undo_snapshot
            else ""
        )
        raise DlqError(
            f"{err}. The seek may have taken effect: run the same command again (safe){undo_hint}"
        ) from None
    return Handover(snapshot, undo_snapshot, problem)


def drop_snapshot(subscriber: Any, snapshot: str) -> None:
    """Delete a handover snapshot that was not used (the move stopped before the seek)."""
    from events_infra.pubsub.api_calls import bounded

    subscriber.delete_snapshot(snapshot=snapshot, **bounded())


def earlier_handovers(subscriber: Any, target: DlqTarget, old: str) -> list[str]:
    """Snapshot ids of handovers from OLD begun before (a rerun seeks NEW again), oldest
    first; recognised by name (`<OLD>-handover-<timestamp>`), which the emulator keeps too."""
    from events_infra.pubsub.api_calls import bounded
    from events_infra.pubsub.paths import project_path

    prefix = f"{old}-handover-"
    listed = subscriber.list_snapshots(project=project_path(target.project), **bounded())
    return sorted(n for n in (s.name.rsplit("/", 1)[-1] for s in listed) if n.startswith(prefix))
