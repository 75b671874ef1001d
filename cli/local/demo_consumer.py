"""The demo's consumer: a real process pulling one subscription, failing chosen events.

Events whose `demo_fail` attribute is "1" are nacked (so Pub/Sub retries them and, after the
subscription's max delivery attempts, dead-letters them) until the `--fixed` file exists — the
"bug fix". Every event it processes is appended to `--processed` as one JSON line.

    python -m cli.local.demo_consumer --subscription projects/P/subscriptions/S \\
        --processed processed.jsonl --fixed fixed.flag [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="events-infra demo consumer")
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--processed", type=Path, required=True)
    parser.add_argument("--fixed", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()

    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + args.seconds
    with args.processed.open("a", encoding="utf-8") as out:
        while not stopping and time.monotonic() < deadline:
            try:
                batch = subscriber.pull(
                    subscription=args.subscription, max_messages=100, timeout=1.0
                ).received_messages
            except DeadlineExceeded:
                continue
            fixed = args.fixed.exists()
            done, failed = [], []
            for received in batch:
                attributes = received.message.attributes
                if attributes.get("demo_fail") == "1" and not fixed:
                    failed.append(received.ack_id)
                    continue
                out.write(json.dumps({
                    "event_id": attributes.get("event_id"),
                    "replayed": "replayed_from" in attributes,
                    "attempt": received.delivery_attempt,
                }) + "\n")  # fmt: skip
                done.append(received.ack_id)
            out.flush()
            if done:
                subscriber.acknowledge(subscription=args.subscription, ack_ids=done)
            if failed:
                subscriber.modify_ack_deadline(
                    subscription=args.subscription, ack_ids=failed, ack_deadline_seconds=0
                )
            if not batch:
                time.sleep(0.1)


if __name__ == "__main__":
    main()
