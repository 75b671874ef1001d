"""A health endpoint for a relay running where the platform probes over HTTP (Cloud Run).

GET /healthz answers 200 while the relay's loop keeps going round, 503 once it has not for
`stale_after_s` (a stuck claim or publish that outlived every deadline): the platform's liveness
probe then restarts the instance. Anything else is 404. Runs in a daemon thread.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_health(relay: Any, port: int, stale_after_s: float = 180.0) -> ThreadingHTTPServer:
    """Start the endpoint on 0.0.0.0:`port` (0 picks a free port: see `server_address`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            age = time.monotonic() - relay.heartbeat
            healthy = age < stale_after_s and not relay.stopping.is_set()
            body = json.dumps({"healthy": healthy, "loop_age_s": round(age, 1)}).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # probes every few seconds: keep the log clean
            pass

    # all interfaces: Cloud Run probes the container from outside it
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="relay-health", daemon=True).start()
    return server
