"""One stack's dead-letter setting: the resolved target and lazily made Pub/Sub clients."""

from __future__ import annotations

from typing import Any


class DlqContext:
    """The stack, its DLQ target and the clients an operation works with. Clients are made on
    first use inside `errors()`, so missing credentials are a DlqError, not a traceback."""

    def __init__(
        self,
        stack: str,
        stacks_dir: str | None,
        project: str | None,
        topic: str | None,
        dlq_subscription: str | None,
    ) -> None:
        from events_infra.dlq.target import resolve
        from events_infra.stack_config.stack_files import load_stack
        from events_infra.stack_config.stack_files import stacks_dir as find_dir

        self.topology = load_stack(stack, find_dir(stacks_dir))
        self.target = resolve(stack, self.topology, project, topic, dlq_subscription)
        self.pull_timeout = 0.5 if self.target.emulator else 2.0
        self._subscriber: Any = None
        self._publisher: Any = None

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            from events_infra.dlq.clients import subscriber_client

            with self.errors():
                self._subscriber = subscriber_client()
        return self._subscriber

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from events_infra.dlq.clients import publisher_client

            with self.errors():
                self._publisher = publisher_client(self.topology.pubsub.api_endpoint)
        return self._publisher

    def preflight(self) -> Any:
        from events_infra.dlq.clients import preflight

        return preflight(self.subscriber, self.target)

    def errors(self, what: str | None = None, permission_hint: str | None = None) -> Any:
        from events_infra.dlq.clients import DLQ_OPERATOR_HINT, pubsub_errors

        return pubsub_errors(self.target, what, permission_hint or DLQ_OPERATOR_HINT)

    @property
    def subscription_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.topology.subscriptions)
