"""`python -m events_infra.local.proxy --backend HOST:PORT [--port N]`: run the strict proxy
until SIGTERM.

Prints `listening on HOST:PORT` on stdout once it serves (the starter waits for that line).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from events_infra.local.proxy.server import StrictProxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m events_infra.local.proxy", description=__doc__)
    parser.add_argument("--backend", required=True, help="the emulator's host:port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--partial-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    proxy = StrictProxy(args.backend, args.host, args.port, args.partial_fraction, args.seed)
    try:
        address = proxy.start()
    except Exception as err:
        print(f"error: the strict proxy cannot start: {err}", file=sys.stderr)
        return 2
    print(f"listening on {address}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    proxy.stop(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
