"""The engine process's end of the FIX gateway process (processes by role).

The gateway process owns every quickfix session; the engine process never parses or
builds a FIX message. Commands come in batches (`oms.ipc.Submit`) and go to
`Runtime.submit` with the FIX message they came from; after each group commit the
journal records go out as they are (`oms.ipc.Committed`), so nothing reaches a trader or
a venue before it is durable. A gateway attaches on the engine's thread (`Runtime.query`),
so its `Hello` names exactly the journal record its feed follows.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from oms.config import Config
from oms.engine import Engine
from oms.ipc import Channel, Committed, Hello, Status, Submit
from oms.metrics import Metrics
from oms.model import MarketData, SessionLost, VenueStatus
from oms.runtime import IN_MARK, Runtime

log = logging.getLogger("oms.engine_link")


class EngineLink:
    def __init__(self, cfg: Config, runtime: Runtime, path: Path, metrics: Metrics) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.path = path
        self.metrics = metrics
        self.md_listeners: list[Callable[[MarketData], None]] = []  # venue quotes, besides the engine
        self.status: Status | None = None
        self.ready = threading.Event()
        self._channels: tuple[Channel, ...] = ()  # replaced, never mutated: the engine thread iterates it
        self._server: socket.socket | None = None
        self._stopping = False

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._server.listen(4)
        self.runtime.followers.append(self._on_committed)
        threading.Thread(target=self._accept, name="engine-link", daemon=True).start()

    def stopping(self) -> None:
        """The gateway is about to be stopped: its going is no fault."""
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for ch in self._channels:
            ch.close()
        self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
            threading.Thread(target=self._serve, args=(Channel(conn),), name="engine-link-reader", daemon=True).start()

    def _attach(self, ch: Channel, engine: Engine) -> None:
        """On the engine's thread, between commits: the Hello and the feed start together."""
        journal = self.runtime.journal
        marks = {source: int(seq) for source, seq in journal.metas(IN_MARK).items()}
        ch.send(Hello(last_seq=journal.last_seq, marks=marks))
        self._channels = (*self._channels, ch)

    def _serve(self, ch: Channel) -> None:
        try:
            self.runtime.query(lambda engine: self._attach(ch, engine), timeout=30)
        except (OSError, TimeoutError) as exc:
            log.warning("FIX gateway could not attach: %s", exc)
            ch.close()
            return
        log.info("FIX gateway attached")
        submit = self.runtime.submit
        while (frame := ch.receive()) is not None:
            if type(frame) is Submit:
                for cmd, origin in zip(frame.commands, frame.origins):
                    submit(cmd, None, origin)
                    if type(cmd) is MarketData:
                        for listener in self.md_listeners:
                            listener(cmd)
            elif type(frame) is Status:
                self.status = frame
                self.metrics.absorb(frame.counters)
                if frame.ready:
                    self.ready.set()
        self._channels = tuple(c for c in self._channels if c is not ch)
        ch.close()
        if not self._stopping:
            self._detached()

    def _detached(self) -> None:
        """The gateway is gone: its venue sessions are down (children in doubt until it is back
        and reconciles them) and its traders disconnected (cancel-on-disconnect applies)."""
        log.error("FIX gateway detached: venue and trader sessions are down until it is back")
        self.ready.clear()
        status, self.status = self.status, None
        for venue in self.cfg.venues:
            self.runtime.submit(VenueStatus(venue=venue.name, up=False))
        by_comp = {s.comp_id: s for s in self.cfg.fix.sessions}
        for t in status.traders if status is not None else ():
            if t.up and by_comp[t.name].cancel_on_disconnect:
                self.runtime.submit(SessionLost(session=t.name))

    # ------------------------------------------------------------------ out
    def _on_committed(self, first: int, records: list[bytes]) -> None:
        """Runtime follower, on the engine's thread: the commit's records to every gateway."""
        frame = Committed(first_seq=first, records=records)
        for ch in self._channels:
            try:
                ch.send(frame)
            except OSError:
                pass  # its reader sees the end and detaches it

    def sessions(self) -> dict[str, list[dict[str, object]]]:
        """The console's view of the FIX sessions, as the gateway last reported them."""
        status = self.status
        traders = {t.name: t.up for t in status.traders} if status else {}
        venues = {v.name: v.up for v in status.venues} if status else {}
        return {"traders": [{"session": s.comp_id, "begin_string": s.begin_string, "accounts": s.accounts,
                             "logged_on": traders.get(s.comp_id, False)} for s in self.cfg.fix.sessions],
                "venues": [{"venue": v.name, "begin_string": v.begin_string, "up": venues.get(v.name, False)}
                           for v in self.cfg.venues]}
