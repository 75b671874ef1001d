"""One DATABASE_URL for every driver a service uses: psycopg reads libpq URLs and conninfo
strings, but asyncpg takes keyword arguments and SQLAlchemy its own URL (a Unix socket directory
goes in as the `host` query parameter). The tests and benches run each writer on each driver
through these."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict


def connect_kwargs(conninfo: str) -> dict[str, Any]:
    """host/port/user/password/database for drivers that do not read libpq strings."""
    info = conninfo_to_dict(conninfo)
    kwargs: dict[str, Any] = {
        "host": info.get("host"),
        "user": info.get("user"),
        "database": info.get("dbname"),
    }
    if info.get("port"):
        kwargs["port"] = int(info["port"])
    if info.get("password"):
        kwargs["password"] = info["password"]
    return kwargs


def sqlalchemy_url(conninfo: str, driver: str) -> Any:
    """A SQLAlchemy URL for `postgresql+<driver>`; a socket directory goes in as the host."""
    from sqlalchemy.engine import URL

    kwargs = connect_kwargs(conninfo)
    host = kwargs.pop("host")
    query = {}
    if host and host.startswith("/"):
        query, host = {"host": host}, None
    return URL.create(
        f"postgresql+{driver}",
        username=kwargs.get("user"),
        password=kwargs.get("password"),
        host=host,
        port=kwargs.get("port"),
        database=kwargs.get("database"),
        query=query,
    )
