"""An idempotent consumer for services: exactly-once effects on at-least-once delivery.

    from events_infra.consumer import Consumer, ReceivedEvent, migrate_processed_events

    def handle(event: ReceivedEvent, conn) -> None:     # or `async def`, conn an AsyncConnection
        conn.execute("UPDATE positions SET ...", ...)

    Consumer("projects/P/subscriptions/matching-engine", handle, DATABASE_URL).run()

The event id is recorded in `processed_events` in the handler's transaction; the message is
acknowledged only after that transaction commits. See events_infra/consumer/runner.py for the flow.
"""

from events_infra.consumer.event import LegacyMessages, ReceivedEvent, UndecodableEvent
from events_infra.consumer.processed import cleanup_processed, migrate_processed_events
from events_infra.consumer.runner import Consumer, ConsumerError, ConsumerOptions, PoisonEvent

__all__ = [
    "Consumer",
    "ConsumerError",
    "ConsumerOptions",
    "LegacyMessages",
    "PoisonEvent",
    "ReceivedEvent",
    "UndecodableEvent",
    "cleanup_processed",
    "migrate_processed_events",
]
