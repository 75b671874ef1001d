"""The transactional outbox: schema migrations, the write helper services call, and status.

    from outbox import Event, enqueue

Importing this package pulls in no database driver; callers pass their own connection.
"""

from outbox.enqueue import Event, InvalidEventError, enqueue, enqueue_many

__all__ = ["Event", "InvalidEventError", "enqueue", "enqueue_many"]
