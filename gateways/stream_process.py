"""The NATS publisher in a process of its own, so streaming never competes with trading
for the interpreter: the engine thread hands each commit's journal records over a local
datagram socket (one non-blocking send; a commit that does not fit is dropped and the
publisher reads it back from the journal), venue quotes go the same way, and the
publisher's gauges and log lines come back to the OMS process.
"""
from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from oms.model import EVENT_DECODER, MarketData

log = logging.getLogger("gateways.nats_stream")

_COMMIT, _QUOTE, _STOP = b"C", b"Q", b"S"
_MAX_DATAGRAM = 4 << 20
_GAUGES = ("stream_published", "stream_backlog", "stream_backlog_full", "stream_journal_events")
_EXIT_GRACE_S = 5.0
_QUOTE_ENCODER = msgspec.msgpack.Encoder()
_QUOTE_DECODER = msgspec.msgpack.Decoder(MarketData)
_COMMIT_DECODER = msgspec.msgpack.Decoder(tuple[int, list[bytes]])


class _SharedGauge:
    """A gauge the publisher sets in its process and the OMS's /metrics reads in its own."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def set(self, v: float) -> None:
        self.value.value = int(v)

    def inc(self, v: float = 1) -> None:
        self.value.value += int(v)


class _Relay(logging.Handler):
    """Log records of the publisher's process, handled by the same loggers here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class StreamerProcess:
    """Runs `NatsStreamer(**kwargs)` in a child process, restarted if it dies (it carries on
    from the journal); the runtime's follower and the venues' quote listener from this one."""

    def __init__(self, metrics: Any, **kwargs: Any) -> None:
        self._ctx = ctx = multiprocessing.get_context("spawn")
        self._kwargs = kwargs
        self._metrics = metrics
        self.connected = ctx.Event()
        self._values = {name: ctx.Value("q", 0, lock=False) for name in (*_GAUGES, "stream_failed_at")}
        self._logs: Any = ctx.Queue()
        self._listener = logging.handlers.QueueListener(self._logs, _Relay())
        for name in _GAUGES:
            getattr(metrics, name).set_function(_reader(self._values[name]))
        self._lock = threading.Lock()
        self._stopping = False
        self._sock: socket.socket | None = None
        self._proc: Any = None
        self._watchdog = threading.Thread(target=self._watch, name="oms-nats-streamer-watch", daemon=True)

    @property
    def published(self) -> int:
        """The last journal sequence NATS has acknowledged."""
        return self._values["stream_published"].value

    @property
    def pid(self) -> int:
        return self._proc.pid

    def start(self) -> None:
        self._listener.start()
        with self._lock:
            self._spawn()
        self._watchdog.start()

    def _spawn(self) -> None:
        self._values["stream_failed_at"].value = 0
        sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_DATAGRAM)
        sock.setblocking(False)
        proc = self._ctx.Process(target=_child, name="oms-nats-streamer", daemon=True, args=(
            child_sock, self.connected, self._values, self._logs, log.getEffectiveLevel(), self._kwargs))
        proc.start()
        child_sock.close()  # the child has its own copy
        old, self._sock, self._proc = self._sock, sock, proc
        if old is not None:
            old.close()

    def _watch(self) -> None:
        while True:
            self._proc.join(1.0)
            with self._lock:
                if self._stopping and not self._proc.is_alive():
                    return
                if self._proc.is_alive():
                    # a publisher that failed ends its process at once; one that says it failed
                    # and is still there after a grace period is stuck on its way out
                    failed_at = self._values["stream_failed_at"].value
                    if not failed_at or time.time() - failed_at < _EXIT_GRACE_S or self._stopping:
                        continue
                    log.error("stream publisher failed %.0f s ago and has not exited: killing it",
                              time.time() - failed_at)
                    self._proc.kill()
                    self._proc.join()
            log.error("stream publisher exited (code %s); restarting it, it carries on from the journal",
                      self._proc.exitcode)
            self.connected.clear()
            self._metrics.stream_restarts.inc()
            time.sleep(1)  # a publisher that cannot start is not restarted in a tight loop
            with self._lock:
                if self._stopping:
                    return
                self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        """The child publishes what is committed (up to 5 s), then exits."""
        with self._lock:
            self._stopping = True
            sock, proc = self._sock, self._proc
        if sock is None:
            return
        try:
            sock.settimeout(2)
            sock.send(_STOP)
        except OSError:  # full and not read, or gone: the watchdog's wait decides
            pass
        self._watchdog.join(timeout)  # it alone waits for the process: two waiters would race to reap it
        if self._watchdog.is_alive():
            log.warning("stream publisher did not stop in %.0f s; killing it", timeout)
            proc.kill()
            self._watchdog.join(5)
        sock.close()
        self._listener.stop()

    def on_committed(self, first_seq: int, records: list[bytes]) -> None:
        """Runtime follower (engine thread): never blocks; what cannot be sent is read back
        from the journal by the publisher."""
        self._send(_COMMIT + msgspec.msgpack.encode((first_seq, records)))

    def on_market_data(self, md: MarketData) -> None:
        self._send(_QUOTE + _QUOTE_ENCODER.encode(md))

    def _send(self, data: bytes) -> None:
        if len(data) > _MAX_DATAGRAM:
            return  # the publisher reads this one from the journal
        try:
            self._sock.send(data)  # type: ignore[union-attr]
        except (OSError, AttributeError):  # full, not started or the child is gone: the journal has it
            pass


def _reader(value: Any) -> Callable[[], float]:
    return lambda: float(value.value)


def _child(sock: socket.socket, connected: Any, values: dict[str, Any], logs: Any, level: int,
           kwargs: dict[str, Any]) -> None:
    """The publisher's process: datagrams in, NATS out, until told to stop or the OMS is gone.
    A Ctrl-C or a SIGTERM to the whole process group is the OMS's to handle: it tells this
    process when to stop, and if the OMS dies the socket's end does."""
    from gateways.nats_stream import NatsStreamer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    root.setLevel(level)
    metrics = type("SharedMetrics", (), {name: _SharedGauge(v) for name, v in values.items()})()
    streamer = NatsStreamer(**kwargs, metrics=metrics)
    streamer.connected = connected
    streamer.start()
    sock.settimeout(1.0)
    failed = False
    try:
        while True:
            if not streamer.running:  # it failed (and said why): a new process starts over
                failed = True
                break
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                break
            kind = data[:1]
            if kind not in (_COMMIT, _QUOTE):  # stop, or the OMS closed its end
                break
            try:
                if kind == _COMMIT:
                    first, records = _COMMIT_DECODER.decode(data[1:])
                    streamer.on_committed(first, [EVENT_DECODER.decode(r) for r in records])
                else:
                    streamer.on_market_data(_QUOTE_DECODER.decode(data[1:]))
            except msgspec.DecodeError:  # never expected; a commit lost here is read from the journal
                log.error("stream publisher: a datagram it cannot decode (%d bytes) was skipped", len(data))
        if failed:
            values["stream_failed_at"].value = int(time.time())
    finally:
        streamer.stop()
        sock.close()
    _exit(logs, 1 if failed else 0)


def _exit(logs: Any, code: int) -> None:
    """End the process now, whatever thread or finalizer might hold it up, once its last
    log lines are on their way (for at most two seconds)."""
    flush = threading.Thread(target=lambda: (logs.close(), logs.join_thread()), daemon=True)
    flush.start()
    flush.join(2.0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
