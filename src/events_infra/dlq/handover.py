"""Handing a subscription's backlog to its successor without one copy: seek NEW to a snapshot
of OLD (`subscription migrate --by seek`, the default where Pub/Sub allows it).

Pub/Sub can give one subscription another's acknowledgement state. A snapshot of OLD records
which messages OLD's consumers acknowledged, and retains the others plus everything published
after it; seeking NEW to it marks exactly those unacknowledged in NEW. The rules relied on,
from Google's reference (also in docs/deploying.md):
- "you can copy the acknowledgment state of one subscription to another by using seek in
  combination with a snapshot", and a snapshot can be applied to any subscription of its topic,
  "including newly created" ones (replay overview);
- Seek: "The snapshot's topic must be the same as that of the provided subscription";
- CreateSnapshot: FAILED_PRECONDITION when the snapshot would expire within an hour (a
  snapshot lives 7 days minus the age of the subscription's oldest unacknowledged message);
- a seek is eventually consistent: for up to a minute, messages it acknowledged may still be
  delivered once.

Nothing is published, so no other subscription (another team's unfiltered one included)
receives anything, and OLD itself is not changed. NEW continues where OLD's consumers stopped:
what they acknowledged counts as done in NEW too; what NEW's consumers had acknowledged and
OLD's had not is delivered again (consumers dedupe by `event_id`). Killed at any point, NEW is
either untouched or handed over; a rerun hands over again (more redeliveries, nothing lost).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from events_infra.dlq.errors import DlqError
from events_infra.dlq.target import DlqTarget

METHODS = ("auto", "seek", "copy")


def seek_refusal(old_live: Any, new_live: Any, limit: int | None, rate: float | None) -> str:
    """Why NEW cannot be handed OLD's backlog by a seek ("" when it can)."""
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
    if limit is not None or rate is not None:
        return "a seek hands over the whole backlog at once (no --limit or --rate)"
    return ""


def choose_method(method: str, old_live: Any, new_live: Any, limit: Any, rate: Any) -> str:
    """ "seek" or "copy": `auto` takes the seek wherever Pub/Sub allows it (nothing is
    published); an explicit `seek` that cannot be done is an error naming why."""
    if method == "copy":
        return "copy"
    refusal = seek_refusal(old_live, new_live, limit, rate)
    if not refusal:
        return "seek"
    if method == "seek":
        raise DlqError(f"--by seek: {refusal}; move the backlog with copies (--by copy)")
    return "copy"


@dataclass
class Handover:
    snapshot: str
    """The snapshot of OLD that NEW was seeked to (kept: seek NEW to it again if needed)."""
    undo_snapshot: str | None
    """NEW's own state before the seek: seeking NEW back to it undoes the handover."""
    undo_problem: str = ""


def hand_over(subscriber: Any, target: DlqTarget, old: str, new: str, undo: bool) -> Handover:
    """Snapshot NEW (the undo point, if `undo`), snapshot OLD, seek NEW to OLD's snapshot."""
    from google.api_core import exceptions as gexc

    from events_infra.dlq.snapshot import take_snapshot
    from events_infra.pubsub.api_calls import error_detail
    from events_infra.pubsub.paths import subscription_path

    undo_snapshot, problem = None, ""
    if undo:
        try:
            undo_snapshot = take_snapshot(
                subscriber, replace(target, dead_letter_subscription=new), "before-handover"
            )
        except gexc.FailedPrecondition as err:
            problem = error_detail(err)
    try:
        old_target = replace(target, dead_letter_subscription=old)
        snapshot = take_snapshot(subscriber, old_target, "handover")
    except gexc.FailedPrecondition as err:
        raise DlqError(
            f"Pub/Sub refused a snapshot of {old} ({error_detail(err)}): its oldest "
            "unacknowledged message is close to 7 days old; move the backlog with copies "
            "(--by copy)"
        ) from None
    subscriber.seek(
        request={"subscription": subscription_path(target.project, new), "snapshot": snapshot}
    )
    return Handover(snapshot, undo_snapshot, problem)


def undo_command(target: DlqTarget, new: str, undo_snapshot: str) -> str:
    return (
        f"gcloud pubsub subscriptions seek {new} --snapshot={undo_snapshot.rsplit('/', 1)[-1]} "
        f"--project={target.project}"
    )
