"""Files the DLQ tools write hold whole payloads (journals, exports) or who did what (the audit
log): they are created readable by their owner only (0600, in 0700 directories the tools
create), and never through a symlink an attacker could have put in their place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from events_infra.errors import EventsInfraError

FILE_MODE = 0o600
DIR_MODE = 0o700


def state_dir() -> Path:
    """Where the tools keep their journals and audit log: `$XDG_STATE_HOME/eventsctl`."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "eventsctl"


class UnsafePath(EventsInfraError, OSError):
    """The path is a symlink: one line, nothing written."""


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700; an existing one of ours is narrowed to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(OSError):  # not ours: leave it, the files inside are still 0600
        if path.stat().st_uid == os.getuid():
            path.chmod(DIR_MODE)
    return path


def open_append(path: Path) -> IO[str]:
    """Open `path` for appending, created 0600 (an existing file is narrowed to 0600); a
    symlink in its place is refused (O_NOFOLLOW), not followed."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as err:
        if path.is_symlink():
            raise UnsafePath(f"{path} is a symlink: refusing to write through it") from err
        raise
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8")


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[IO[str]]:
    """Write a new `path`: into a fresh 0600 temporary file beside it (created exclusively,
    so no symlink or stale file is written through), renamed over `path` once complete; an
    interrupted write leaves `path` as it was."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
