"""The transactional outbox: schema migrations, the write helpers services call, and status.

    from outbox import Event, enqueue              # psycopg or SQLAlchemy Session/Connection
    from outbox import enqueue_async               # AsyncSession/AsyncConnection, asyncpg, psycopg

Importing this package pulls in no database driver; callers pass their own connection.
"""

from outbox.enqueue import Event, InvalidEventError, enqueue, enqueue_many
from outbox.enqueue_async import enqueue_async, enqueue_many_async

__all__ = [
    "Event",
    "InvalidEventError",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
]
