"""The transactional outbox: schema migrations, the write helpers services call, and status.

    from events_infra.outbox import Event, enqueue  # psycopg, SQLAlchemy Session/Connection
    from events_infra.outbox import enqueue_async   # AsyncSession/Connection, asyncpg, psycopg

Importing this package pulls in no database driver; callers pass their own connection.
"""

from events_infra.outbox.enqueue import Event, InvalidEventError, enqueue, enqueue_many
from events_infra.outbox.enqueue_async import enqueue_async, enqueue_many_async

__all__ = [
    "Event",
    "InvalidEventError",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
]
