"""A service's consumer as a process: records each event in `effects`, optionally slowly.

python -m tests.support.consumer_app SUBSCRIPTION DATABASE_URL DELAY_SECONDS
"""

from __future__ import annotations

import sys
import time
from typing import Any

from events_infra.consumer import Consumer, ConsumerOptions, ReceivedEvent
from tests.support.consumer_support import record_effect


def main() -> None:
    subscription, url, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def handle(event: ReceivedEvent, conn: Any) -> None:
        record_effect(event, conn)
        time.sleep(delay)

    counts = Consumer(subscription, handle, url, ConsumerOptions(batch_size=20)).run()
    print(f"consumer stopped: {dict(counts)}", file=sys.stderr)


if __name__ == "__main__":
    main()
