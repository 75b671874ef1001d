"""`eventsctl topology diff --from REF`: every stack-file change classed before Pulumi runs.

Both sides are the validated model (defaults applied), so a change to a default counts like a
change in the file; resources are matched by name, which is their identity in GCP. Each changed
setting is classed by `change_classes`; a resource that goes away is deleted (its data lost)
unless the stack retains it, and one that appears is created.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from events_infra.errors import EventsInfraError
from events_infra.stack_config import change_classes as classes
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.topology import StackConfig


class DiffError(EventsInfraError):
    """The revision or the stack file cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    setting: str
    old: Any
    new: Any
    change: str
    why: str = ""

    @property
    def blocking(self) -> bool:
        return self.change in classes.BLOCKING


_DATABASE_SETTINGS = (
    "region", "database_version", "edition", "tier", "availability_type", "retained_backups",
    "transaction_log_retention_days", "private_network", "database", "existing", "logical_decoding",
)  # fmt: skip


def resources(config: StackConfig) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the settings the model gives it."""
    found: dict[tuple[str, str], dict[str, Any]] = {
        ("topic", config.topic.name): {
            "message_retention": config.topic.message_retention or 0,
            "kms_key_name": config.topic.kms_key_name or "",
        },
        ("dead_letter_topic", config.dead_letter.topic): {},
        ("dead_letter_subscription", config.dead_letter.subscription): {
            "message_retention": config.dead_letter.message_retention,
            "ack_deadline": config.dead_letter.ack_deadline,
        },
    }
    for sub in config.subscriptions:
        found[("subscription", sub.name)] = {
            "filter": sub.delivery_filter,
            "enable_message_ordering": sub.enable_message_ordering,
            "enable_exactly_once_delivery": sub.enable_exactly_once_delivery,
            "max_delivery_attempts": sub.max_delivery_attempts,
            "min_backoff": sub.min_backoff,
            "max_backoff": sub.max_backoff,
            "ack_deadline": sub.ack_deadline,
            "message_retention": sub.message_retention,
            "push_endpoint": sub.push_endpoint or "",
            "retained": sub.retained(config.retains_data),
        }
    databases: list[DatabaseConfig] = [config.database] if config.database else []
    databases += [o.database for o in config.outboxes]
    for database in databases:
        settings = {key: getattr(database, key) for key in _DATABASE_SETTINGS}
        found[("database", database.instance)] = {**settings, "retained": config.retains_data}
    return found


def diff(old: StackConfig | None, new: StackConfig) -> list[Change]:
    """The changes from `old` (None: the stack is new) to `new`, classed."""
    before = resources(old) if old is not None else {}
    after = resources(new)
    changes: list[Change] = []
    for (kind, name), settings in after.items():
        previous = before.get((kind, name))
        if previous is None:
            changes.append(Change(kind, name, "", None, name, classes.CREATE))
            continue
        for setting, value in settings.items():
            if setting == "retained" or previous.get(setting) == value:
                continue
            change, why = classes.classify(kind, setting, previous.get(setting), value)
            changes.append(Change(kind, name, setting, previous.get(setting), value, change, why))
    for (kind, name), settings in before.items():
        if (kind, name) in after:
            continue
        if kind in ("subscription", "database") and settings.get("retained"):
            why = "abandoned: it stays in GCP with its data; Pulumi forgets it"
            changes.append(Change(kind, name, "", name, None, classes.IN_PLACE, why))
        else:
            why = classes.RENAMES.get(kind, "deleted")
            changes.append(Change(kind, name, "", name, None, classes.DATA_LOSS, f"deleted: {why}"))
    return changes


def stack_at(ref: str, path: Path) -> dict[str, Any] | None:
    """The namespaced config of the stack file `path` at git revision `ref` (None: the file
    did not exist there), read with `git show` from the file's repository."""
    from events_infra.stack_config.stack_files import namespaced_config

    directory = path.resolve().parent
    try:
        top = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        raise DiffError(f"{directory} is not in a git repository: --from needs one") from None
    relative = path.resolve().relative_to(Path(top).resolve()).as_posix()
    verify = subprocess.run(
        ["git", "-C", top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if verify.returncode != 0:
        raise DiffError(f"--from {ref!r}: no such revision in {top}; fetch it or pass a commit")
    shown = subprocess.run(
        ["git", "-C", top, "show", f"{ref}:{relative}"], capture_output=True, text=True, timeout=30
    )
    if shown.returncode != 0:
        return None  # the stack is new in this change
    try:
        document = yaml.safe_load(shown.stdout) or {}
    except yaml.YAMLError as err:
        raise DiffError(f"{relative} at {ref}: not valid YAML: {err}".replace("\n", " ")) from None
    return namespaced_config(document.get("config") or {})[0]


def diff_stack(stack: str, stacks_dir: str | None, ref: str) -> dict[str, Any]:
    """What `eventsctl topology diff` reports for `stack` between `ref` and the working tree."""
    from events_infra.stack_config.stack_files import (
        load_stack,
        stack_file,
        topology_from_config,
    )
    from events_infra.stack_config.stack_files import (
        stacks_dir as find_dir,
    )

    directory = find_dir(stacks_dir)
    new = load_stack(stack, directory)
    old_config = stack_at(ref, stack_file(stack, directory))
    old = topology_from_config(old_config) if old_config is not None else None
    changes = diff(old, new)
    return {
        "stack": stack,
        "from": ref,
        "changes": [vars(c) | {"blocking": c.blocking} for c in changes],
        "blocking": any(c.blocking for c in changes),
    }
