"""The FIX gateway process: every quickfix session of the OMS, and nothing else.

The trader acceptor (behind its front door) and the venue initiators parse and build
every FIX message here, in an interpreter of their own; commands go to the engine process
in batches and durable events come back (oms.ipc, oms.engine_link). The gateway decides
nothing about an order. If the engine process goes away the gateway stops, so nothing is
acknowledged that is not durable; restarted, its sessions resume from their FileStores.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import socket
import threading
from pathlib import Path

from gateways.fix_trader import TraderGateway
from gateways.fix_venue import VenueGateway
from oms.config import Config
from oms.ipc import Channel, Committed, Hello, SessionState, Status, Submit
from oms.metrics import Metrics
from oms.model import EVENT_DECODER, Command

log = logging.getLogger("gateways.fix_process")


class Batcher:
    """`submit` from quickfix's threads; one thread sends what has queued as one frame."""

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="fix-batcher", daemon=True).start()

    def submit(self, cmd: Command, reply: object = None, origin: tuple[str, int] | None = None) -> None:
        self._q.put((cmd, origin))

    def _run(self) -> None:
        get, get_nowait = self._q.get, self._q.get_nowait
        while True:
            commands, origins = [], []
            item = get()
            while True:
                commands.append(item[0])
                origins.append(item[1])
                if len(commands) >= 4096:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            try:
                self.ch.send(Submit(commands=commands, origins=origins))
            except OSError:
                return  # the engine is gone: the reader sees it and the process stops


def _own_the_stores(run_dir: Path) -> int:
    """One gateway at a time writes the session stores: wait for an earlier one (killed with
    its engine, or stopping) to be gone. The lock goes with the process, however it ends."""
    fd = os.open(run_dir / "fix-gateway.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("FIX gateway: waiting for the previous gateway process to end")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def run(cfg: Config, base: Path, engine_path: Path, stop: threading.Event) -> int:
    run_dir = cfg.run_path(base)
    _own_the_stores(run_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(engine_path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    ch = Channel(sock)
    hello = ch.receive()
    if type(hello) is not Hello:
        log.error("the engine process did not greet the gateway: %r", hello)
        return 1
    metrics = Metrics()
    batcher = Batcher(ch)
    venues = VenueGateway(cfg, batcher.submit)
    trader = TraderGateway(cfg, batcher.submit, metrics)
    committed = [hello.last_seq]
    trader.bind_journal(run_dir, cfg.journal_path(base), hello.marks, lambda: committed[0])
    engine_gone = threading.Event()

    def feed() -> None:
        """Durable events from the engine, to the venues first (on the way to the fill)."""
        while (frame := ch.receive()) is not None:
            if type(frame) is Committed:
                events = [EVENT_DECODER.decode(r) for r in frame.records]
                committed[0] = frame.first_seq + len(events) - 1
                venues.on_events(events)
                trader.on_events(events)
        if not stop.is_set():  # not our own stop closing the socket
            engine_gone.set()
            stop.set()

    threading.Thread(target=feed, name="fix-feed", daemon=True).start()
    started = False

    def status() -> None:
        ch.send(Status(
            ready=started,
            traders=[SessionState(t, trader.begin[t], trader.logged_on(t)) for t in trader.sids],
            venues=[SessionState(name, link.venue.begin_string, link.up) for name, link in venues.links.items()],
            counters=metrics.gateway_counters(), recovered_reports=trader.recovered_reports))

    try:
        venues.start(run_dir, hello.marks)
        late = venues.wait_for_quotes([v.name for v in cfg.venues if v.sim.enabled], 10.0)
        if late:
            log.warning("no quotes yet from %s", ", ".join(late))
        trader.start(run_dir)
        started = True
        while not stop.is_set():
            status()
            stop.wait(1.0)
    except OSError as exc:
        log.error("FIX gateway: the engine process is gone (%s)", exc)
    finally:
        trader.stop()
        venues.stop()
        ch.close()
    if engine_gone.is_set():
        log.error("FIX gateway: the engine process went away; stopped (nothing more can be acknowledged)")
        return 1
    return 0
