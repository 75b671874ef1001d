"""Durations as people write them in stack files, and as GCP wants them.

Stack files are edited by hand, so `10`, `"10s"`, `"5m"` and `"7d"` all mean what they say.
GCP's APIs take durations as a decimal number of seconds ending in `s` (`"600s"`); sending
anything else fails only at `pulumi up`, so every duration goes through `gcp_duration`.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from an int/float (seconds) or a string like `"10s"`, `"5m"`, `"2h"`, `"7d"`.

    Raises ValueError with the accepted forms, because the caller turns it into a config error.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use seconds or e.g. '10s', '5m', '7d')")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative; durations are 0 or more")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return float(number) * _UNITS[unit or "s"]
    raise ValueError(f"{value!r} is not a duration (use seconds or e.g. '10s', '5m', '7d')")


def gcp_duration(seconds: float) -> str:
    """`600.0` -> `"600s"`; `0.5` -> `"0.5s"`: GCP's duration string."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.9f}".rstrip("0") + "s"


def human_duration(seconds: float) -> str:
    """`604800` -> `"7d"`: the shortest exact form, for messages and tables."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return gcp_duration(seconds)
