"""A Pub/Sub snapshot of the dead-letter subscription before anything is removed from it, and
the command that undoes the operation by seeking back to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from events_infra.dlq.target import DlqTarget
from events_infra.pubsub.paths import project_path, snapshot_path

KEEP_SNAPSHOTS = 3
"""Tool-made snapshots kept per dead-letter subscription (older ones are deleted after a new
one is taken; Pub/Sub would expire them within 7 days anyway, and projects have a quota)."""
LABELS = {"created-by": "eventsctl"}


def _prefix(target: DlqTarget) -> str:
    return f"{target.dead_letter_subscription}-"


def take_snapshot(
    subscriber: Any, target: DlqTarget, operation: str, call: dict[str, Any] | None = None
) -> str:
    """Create `<dlq-sub>-<operation>-<UTC timestamp>` (labelled created-by=eventsctl); return
    its full name. `call`: retry/timeout arguments for the request."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    snapshot_id = f"{_prefix(target)}{operation}-{stamp}"[-255:]
    if not snapshot_id[0].isalpha():
        snapshot_id = "s" + snapshot_id[1:]
    name = snapshot_path(target.project, snapshot_id)
    subscriber.create_snapshot(
        request={"name": name, "subscription": target.subscription_path, "labels": LABELS},
        **(call or {}),
    )
    return name


def prune_snapshots(subscriber: Any, target: DlqTarget, keep: int = KEEP_SNAPSHOTS) -> list[str]:
    """Delete this tool's snapshots of the dead-letter subscription but the newest `keep`;
    return the names deleted. Recognised by name (`<dlq-sub>-<replay|purge>-<timestamp>`),
    which the emulator keeps, where it drops labels; nobody else's snapshot is touched."""
    from events_infra.pubsub.api_calls import bounded

    pattern = re.compile(re.escape(_prefix(target)) + r"(replay|purge)-(\d{8}-\d{6}-\d{6})$")
    ours = []
    for snapshot in subscriber.list_snapshots(project=project_path(target.project), **bounded()):
        found = pattern.search(snapshot.name.rsplit("/", 1)[-1])
        if found:
            ours.append((found.group(2), snapshot.name))
    doomed = [name for _, name in sorted(ours, reverse=True)[keep:]]
    for name in doomed:
        subscriber.delete_snapshot(snapshot=name, **bounded())
    return doomed


def seek_command(project: str, subscription: str, snapshot: str) -> str:
    """The gcloud line that seeks `subscription` back to `snapshot` (a full name or an id)."""
    snapshot_id = snapshot.rsplit("/", 1)[-1]
    return (
        f"gcloud pubsub subscriptions seek {subscription} --snapshot={snapshot_id} "
        f"--project={project}"
    )


def undo_command(target: DlqTarget, snapshot: str) -> str:
    snapshot_id = snapshot.rsplit("/", 1)[-1]
    return (
        f"eventsctl dlq restore --stack {target.stack} --snapshot {snapshot_id}"
        f"   (or: {seek_command(target.project, target.dead_letter_subscription, snapshot)})"
    )


def restore(subscriber: Any, target: DlqTarget, snapshot_id: str) -> str:
    """Seek the dead-letter subscription back to `snapshot_id`: every message that was unacked
    when the snapshot was taken is undelivered again."""
    name = (
        snapshot_id
        if snapshot_id.startswith("projects/")
        else snapshot_path(target.project, snapshot_id)
    )
    subscriber.seek(request={"subscription": target.subscription_path, "snapshot": name})
    return name
