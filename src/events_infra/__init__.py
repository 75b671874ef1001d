"""events-infra: a dependable event backbone on Google Cloud Pub/Sub.

One import root. What a service uses needs only the base install:

    from events_infra.outbox import Event, enqueue        # write events in your transaction
    from events_infra.consumer import Consumer            # consume them exactly once in effect

Operators' `eventsctl` (`events_infra.cli`, the `[ops]` extra), the Pulumi components
(`events_infra.components`, `[deploy]`) and local mode (`events_infra.local`, `[local]`) sit
above the libraries; `tests/test_layers.py` holds the contract that says which may import which.
"""

__version__ = "0.1.0"
