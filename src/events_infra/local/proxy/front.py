"""One address for both of Pub/Sub's protocols, as Google (and the bare emulator) serve them.

Clients are given one `PUBSUB_EMULATOR_HOST`. A gRPC client opens with the HTTP/2 connection
preface (`PRI * HTTP/2.0`), a REST client with an HTTP/1.1 request line; the front reads the
first bytes of each connection and splices it, byte for byte, to the gRPC server or to the
HTTP/JSON server, both on loopback ports of their own. Splicing is a pair of asyncio protocols
with flow control both ways, so a gRPC call costs one extra loopback hop and no parsing.
"""

from __future__ import annotations

import asyncio
from typing import Any

PREFACE = b"PRI * HTTP/2.0"
"""How every HTTP/2 (so gRPC) connection starts (RFC 9113 §3.4); no HTTP/1.1 method is PRI."""
SNIFF_BYTES = 3


class _Side(asyncio.Protocol):
    """One end of a spliced connection: what it reads, its peer writes."""

    def __init__(self, peer: _Side | None = None) -> None:
        self.transport: Any = None
        self.peer = peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            self.peer.transport.close()  # flushes what is buffered, then closes
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()


class _ClientSide(_Side):
    """The accepted connection: sniffs, then connects its peer and splices."""

    def __init__(self, front: Front) -> None:
        super().__init__()
        self.front = front
        self.head = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.front.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)
            return
        self.head += data
        if len(self.head) < SNIFF_BYTES:
            return
        port = self.front.grpc_port if self.head.startswith(PREFACE[:SNIFF_BYTES]) else None
        self.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect(port or self.front.http_port))
        self.front.tasks.add(task)
        task.add_done_callback(self.front.tasks.discard)

    async def _connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, peer = await loop.create_connection(lambda: _Side(self), "127.0.0.1", port)
        except OSError:
            self.transport.close()
            return
        if self.lost:
            peer.transport.close()
            return
        self.peer = peer
        peer.transport.write(self.head)
        self.head = b""
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.front.connections.discard(self)
        super().connection_lost(exc)


class Front:
    """Listens on the proxy's public address; see the module docstring."""

    def __init__(self, grpc_port: int, http_port: int) -> None:
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.connections: set[_ClientSide] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ClientSide(self), host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self.connections):
            connection.transport.close()
        await self._server.wait_closed()
