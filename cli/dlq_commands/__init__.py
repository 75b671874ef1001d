"""`eventsctl dlq`: one module per command over the `dlq` library (`dlq.operations`).

Every command finds its topic and subscriptions from the stack file (`--stack prod`), works
against the emulator when PUBSUB_EMULATOR_HOST is set, prints data on stdout and messages on
stderr, and exits 2 with one line on any error (nothing acknowledged).
"""

# isort: off
# Importing a module registers its commands, in this order in `eventsctl dlq --help`.
from events_infra.cli.dlq_commands import (  # noqa: F401
    status_cmd,
    read_cmd,
    replay_cmd,
    purge_cmd,
    doctor_cmd,
    journals_cmd,
)
from events_infra.cli.dlq_commands.common import app

# isort: on

__all__ = ["app"]
