"""Pub/Sub's HTTP/JSON API on the strict proxy: each request becomes the gRPC call its route
names and goes through the same handler a gRPC client reaches, so every production rule
(publish limits, one ordering key per request, filters at create and on pull, partial pulls,
late acks, injected faults and delays) holds for REST clients too — `curl`, `gcloud pubsub`
with `CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB`, a service on a REST client.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc
from aiohttp import web

from events_infra.local.proxy.rest_routes import RestError, match

log = logging.getLogger("events_infra.local.proxy")

Unary = Callable[[str, bytes, Any], Awaitable[bytes]]
"""The proxy's unary handler (`StrictProxy.unary`): method, request bytes, context → reply."""

REQUEST_TIMEOUT_S = 60.0
"""How long one REST call may take when the client does not say: REST has no gRPC deadline;
Google's `X-Server-Timeout` header (a system parameter, seconds) sets it per request."""
MAX_BODY_BYTES = 64 * 1024 * 1024
"""aiohttp's default cap is 1 MiB; a Publish of 10 MB is ~13.4 MB of base64 JSON."""


class RestContext:
    """What the proxy's handlers ask of a gRPC call context, for one HTTP request."""

    def __init__(self, request: web.Request) -> None:
        self._deadline = time.monotonic() + _server_timeout(request.headers.get("X-Server-Timeout"))
        self._metadata = tuple(
            (name.lower(), value)
            for name, value in request.headers.items()
            if name.lower().startswith("x-goog-")
        )

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise RestError(code, details)


def _server_timeout(header: str | None) -> float:
    if header is None:
        return REQUEST_TIMEOUT_S
    try:
        seconds = float(header)
    except ValueError:
        raise RestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"X-Server-Timeout must be seconds, not {header!r}"
        ) from None
    if not 0 < seconds <= 3600:
        raise RestError(grpc.StatusCode.INVALID_ARGUMENT, "X-Server-Timeout must be in (0, 3600]")
    return seconds


def application(unary: Unary) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        try:
            route, values = match(request.method, request.raw_path)
            query = {name: request.query.getall(name) for name in request.query}
            message = route.request(values, query, await request.read())
            context: Any = RestContext(request)
            reply = await unary(route.grpc_method, message.SerializeToString(), context)
            return web.Response(body=route.render(reply), content_type="application/json")
        except RestError as err:
            return web.json_response(err.body(), status=err.http_status)
        except web.HTTPException:
            raise  # aiohttp's own (e.g. 413 for a body over the cap)
        except Exception as err:  # one request's failure, never the server's
            log.exception("REST %s %s failed", request.method, request.path)
            failure = RestError(grpc.StatusCode.INTERNAL, f"the strict proxy failed: {err}")
            return web.json_response(failure.body(), status=failure.http_status)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class HttpJsonServer:
    """The aiohttp server on a loopback port of its own; the front splices HTTP/1.1 to it."""

    def __init__(self, unary: Unary) -> None:
        self._runner = web.AppRunner(application(unary), access_log=None)
        self.port = 0

    async def start(self) -> int:
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
