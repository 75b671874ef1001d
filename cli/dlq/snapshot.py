"""A Pub/Sub snapshot of the dead-letter subscription before anything is removed from it, and
the command that undoes the operation by seeking back to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cli.dlq.target import DlqTarget


def take_snapshot(subscriber: Any, target: DlqTarget, operation: str) -> str:
    """Create `<dlq-sub>-<operation>-<UTC timestamp>`; return its full name."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    snapshot_id = f"{target.dead_letter_subscription}-{operation}-{stamp}"[-255:]
    if not snapshot_id[0].isalpha():
        snapshot_id = "s" + snapshot_id[1:]
    name = f"projects/{target.project}/snapshots/{snapshot_id}"
    subscriber.create_snapshot(name=name, subscription=target.subscription_path)
    return name


def undo_command(target: DlqTarget, snapshot: str) -> str:
    snapshot_id = snapshot.rsplit("/", 1)[-1]
    return (
        f"eventsctl dlq restore --stack {target.stack} --snapshot {snapshot_id}"
        f"   (or: gcloud pubsub subscriptions seek {target.dead_letter_subscription} "
        f"--snapshot={snapshot_id} --project={target.project})"
    )


def restore(subscriber: Any, target: DlqTarget, snapshot_id: str) -> str:
    """Seek the dead-letter subscription back to `snapshot_id`: every message that was unacked
    when the snapshot was taken is undelivered again."""
    name = (
        snapshot_id
        if snapshot_id.startswith("projects/")
        else f"projects/{target.project}/snapshots/{snapshot_id}"
    )
    subscriber.seek(request={"subscription": target.subscription_path, "snapshot": name})
    return name
