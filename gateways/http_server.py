"""The OMS's HTTP server: a Litestar application on uvicorn, in a thread of its own.

Litestar routes, reads and answers; uvicorn speaks HTTP/1.1 (h11) on an asyncio loop,
so a connection that trickles bytes costs a timer, not a thread. What uvicorn leaves
open is closed here, in its h11 protocol:

* every request has a deadline for its headers and body (`deadline_s` from its first
  byte, or from the connect for a silent connection): past it the client gets 408 and
  the connection is closed (slow-loris);
* at most `max_connections` are open; one more is closed at once;
* refusals made before the application sees the request (malformed HTTP, a request
  line over the limit: 414, headers over it: 431) are JSON like every other refusal.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import socket
import threading
import time
from typing import Any

import anyio
import h11
import msgspec
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("gateways.http_server")

MAX_HEAD = 16 * 1024  # request line plus headers
MAX_TARGET = 8 * 1024  # path and query
_CLOSED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


def threaded(fn: Any) -> Any:
    """A route handler whose body waits on the engine, run on a worker thread. (Litestar's
    own sync_to_thread misroutes when two such handlers share a path, in 2.25.)"""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return handler


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a per-request deadline, a connection cap and JSON refusals."""

    deadline_s = 10.0
    max_connections = 256
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("HTTP: %d connections open; one more refused", self.max_connections)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _CLOSED:
            self._disarm()  # the request is in: the application has it (or the connection is over)
        elif self._deadline is None and (self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]):
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.deadline_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self._refuse(408, "TIMEOUT", f"the request was not complete within {self.deadline_s:g} s")
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """HTTP the parser refused: 414 for a request line over the limit, 431 for headers, else 400."""
        pending = self.conn.trailing_data[0]
        if len(pending) > MAX_HEAD:
            if b"\r\n" not in pending[:MAX_HEAD]:  # still in the request line
                return self._refuse(414, "URI_TOO_LONG", f"request line and headers up to {MAX_HEAD} bytes")
            return self._refuse(431, "HEADERS_TOO_LARGE", f"request line and headers up to {MAX_HEAD} bytes")
        self._refuse(400, "BAD_REQUEST", "malformed HTTP request (framing, Content-Length or header syntax)")

    def _refuse(self, status: int, error: str, text: str) -> None:
        body = msgspec.json.encode({"error": error, "text": text})
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.transport.write(head.encode() + body)
        self.transport.close()


_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


def _refusal(scope: Any) -> tuple[int, str, str] | None:
    """What h11 lets through and the OMS does not take: limits on requests that arrived
    whole (h11 bounds only those still incomplete), and a POST with no framing at all."""
    target = len(scope["raw_path"]) + len(scope["query_string"])
    if target > MAX_TARGET:
        return 414, "URI_TOO_LONG", f"request targets up to {MAX_TARGET} bytes"
    if target + sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEAD:
        return 431, "HEADERS_TOO_LARGE", f"request line and headers up to {MAX_HEAD} bytes"
    names = {k for k, _ in scope["headers"]}
    if scope["method"] == "POST" and not names & {b"content-length", b"transfer-encoding"}:
        return 411, "LENGTH_REQUIRED", "a body needs Content-Length (or chunked Transfer-Encoding)"
    return None


def _bounded(app: Any) -> Any:
    """The app behind `_refusal`."""

    async def bounded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refused = _refusal(scope)
            if refused is not None:
                body = msgspec.json.encode({"error": refused[1], "text": refused[2]})
                await send({"type": "http.response.start", "status": refused[0],
                            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return bounded


class HttpServer:
    """Runs an ASGI application on uvicorn in a daemon thread; start() returns once it listens."""

    def __init__(self, app: Any, host: str, port: int, *, deadline_s: float = 10.0, max_connections: int = 256,
                 name: str = "oms-http") -> None:
        self.sock = socket.create_server((host, port), reuse_port=False)  # a bind error is raised here, by name
        protocol = type("Protocol", (_Protocol,), {"deadline_s": deadline_s, "max_connections": max_connections})
        config = uvicorn.Config(_bounded(app), interface="asgi3", http=protocol, ws="none", lifespan="on",
                                log_config=None, access_log=False, proxy_headers=False, timeout_keep_alive=30,
                                timeout_graceful_shutdown=2, h11_max_incomplete_event_size=MAX_HEAD,
                                server_header=False)
        self.server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # our own line says where it listens
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name=name,
                                       daemon=True)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        for _ in range(int(timeout / 0.01)):
            if self.server.started or not self.thread.is_alive():
                break
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("the HTTP server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
