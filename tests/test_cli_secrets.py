"""No secret has to go on a command line: `--database-url` with a password is accepted with a
warning (ps and shell history show it), never when it comes from DATABASE_URL or a passfile."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from events_infra.cli.app import app
from events_infra.cli.database import has_password

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://app:s3cret@db:5432/events", True),
        ("postgres://app:@db/events", False),
        ("postgresql://app@db:5432/events", False),
        ("host=db user=app password=s3cret dbname=events", True),
        ("host=db user=app dbname=events", False),
        ("postgresql://db/events?sslmode=require", False),
    ],
)
def test_a_password_in_a_url_is_recognised(url: str, secret: bool) -> None:
    assert has_password(url) is secret


def test_a_password_on_the_command_line_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = f"postgresql://app:s3cret@127.0.0.1:{closed_port()}/events"
    flagged = runner.invoke(app, ["outbox", "status", "--database-url", url])
    assert flagged.exit_code == 2  # nothing listens there: one line, as any bad database
    assert "warning: --database-url holds a password" in flagged.stderr
    assert "s3cret" not in flagged.stderr  # the warning does not repeat it

    monkeypatch.setenv("DATABASE_URL", url)
    from_env = runner.invoke(app, ["outbox", "status"])
    assert from_env.exit_code == 2 and "warning" not in from_env.stderr
    no_secret = url.replace("app:s3cret@", "app@")
    plain = runner.invoke(app, ["outbox", "status", "--database-url", no_secret])
    assert "warning" not in plain.stderr
