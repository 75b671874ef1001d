"""An event's JSON, decoded defensively: bodies and outbox rows are untrusted input.

A row inserted with plain SQL, or a message from an old publisher, may hold JSON nested deeper
than Python's decoder can go (it raises RecursionError, not ValueError): that is that one
item's failure, never the batch's. The outbox also caps nesting at `MAX_DEPTH` (the database
refuses deeper payloads, migration 0004, and the relay refuses older rows that are): no event
needs it, and every consumer's parser must cope with what the relay publishes.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
"""Containers (objects and arrays) nested in one payload, at most. PostgreSQL's check is
`jsonb_path_exists(payload, 'strict $.**{65}')`: a value at level 65 exists exactly when more
than 64 containers are nested."""


def decode(text: str | bytes) -> tuple[Any, str | None]:
    """(value, None), or (None, why it is not JSON we can take)."""
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "nested too deep to decode"
    except ValueError as err:
        return None, str(err)


def depth(value: Any) -> int:
    """How many containers are nested in `value` (0 for a scalar), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def too_deep(text: str, value: Any) -> bool:
    """Whether decoded `value` (from `text`) nests more than MAX_DEPTH containers; the walk is
    skipped when the text has too few brackets to nest that deep (the common case)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    return depth(value) > MAX_DEPTH
