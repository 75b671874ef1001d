"""Which topic and subscriptions a `dlq` command works on, resolved from the stack model.

`--stack prod` is all an on-call engineer needs; `--project`, `--topic` and
`--dlq-subscription` (or EVENTSCTL_PROJECT ...) override for unusual cases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from events_infra.dlq.errors import DlqError
from events_infra.pubsub.paths import subscription_path, topic_path
from events_infra.stack_config.topology import StackConfig

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"


@dataclass(frozen=True)
class DlqTarget:
    stack: str
    project: str
    topic: str
    dead_letter_subscription: str
    source_subscriptions: tuple[str, ...]
    threshold: float

    @property
    def topic_path(self) -> str:
        return topic_path(self.project, self.topic)

    @property
    def subscription_path(self) -> str:
        return subscription_path(self.project, self.dead_letter_subscription)

    @property
    def emulator(self) -> str | None:
        """The emulator address when PUBSUB_EMULATOR_HOST is set (clients then use it)."""
        return os.environ.get(EMULATOR_HOST_ENV) or None

    def check_source(self, name: str) -> str:
        if name not in self.source_subscriptions:
            known = ", ".join(self.source_subscriptions)
            raise DlqError(
                f"unknown subscription {name!r} in stack {self.stack!r} (it has: {known})"
            )
        return name


def resolve(
    stack: str,
    topology: StackConfig,
    project: str | None = None,
    topic: str | None = None,
    dead_letter_subscription: str | None = None,
) -> DlqTarget:
    return DlqTarget(
        stack=stack,
        project=project or topology.project,
        topic=topic or topology.topic.name,
        dead_letter_subscription=dead_letter_subscription or topology.dead_letter.subscription,
        source_subscriptions=tuple(s.name for s in topology.subscriptions),
        threshold=topology.alerting.dlq_backlog.threshold,
    )
