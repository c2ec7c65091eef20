"""The whole OMS on one machine: what `oms run` starts, in order, and stops in reverse.

Venue simulators first (so the venue links find them), then the journal and engine,
NATS (the embedded server, and the stream publisher in a process of its own), the runtime with its listeners (trader
reports, child orders, streams), the venue links and last the trader acceptor, so no
trader can send an order before it can be routed.
"""
from __future__ import annotations

import logging
from pathlib import Path

from oms.config import Config
from oms.metrics import Metrics
from oms.positions import Book as PositionBook
from oms.router import INTERNAL
from oms.runtime import IN_MARK, Runtime, open_engine
from oms.states import TERMINAL

log = logging.getLogger("oms.system")


class System:
    """`processes`: the venue simulators and the FIX gateway in processes of their own (what
    `oms run` does, oms.roles); otherwise all in this one (tests, `oms run --single-process`)."""

    def __init__(self, cfg: Config, base: Path, *, venues: bool = True, serve_metrics: bool = True,
                 fix: bool = True, streams: bool = True, processes: bool = False) -> None:
        self.cfg = cfg
        self.base = base
        self.run_dir = cfg.run_path(base)
        self.with_venues, self.serve_metrics, self.with_fix, self.with_streams = venues, serve_metrics, fix, streams
        self.processes = processes
        self.nats = None
        self.streamer = None
        self.metrics = Metrics()
        self.sims: list = []
        self.trader = None
        self.venue_links = None
        self.link = None  # processes: the FIX gateway's link to this engine
        self.venue_process = self.gateway_process = None  # processes: their RoleProcess
        self.api = None
        self.end_of_day = None  # [reports] at: the day's reports, written by the OMS itself
        self.extract_keeper = None  # [reports] extract: the report extract kept behind the journal

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.engine, self.journal = open_engine(self.cfg, self.base)  # a journal that cannot replay stops us here
        if self.processes:
            from oms.roles import write_config

            self._role_args = ["--config-json", str(write_config(self.cfg, self.run_dir)), "--base", str(self.base)]
        if self.with_venues:
            self._start_venues()
        if self.serve_metrics:
            self.metrics.serve(self.cfg.metrics.host, self.cfg.metrics.port)
            log.info("metrics on http://%s:%d/metrics", self.cfg.metrics.host, self.cfg.metrics.port)
        self.runtime = Runtime(self.engine, self.journal, self.cfg, self.metrics)
        # the last durable MsgSeqNum of each FIX source: sessions resume after it (gateways.fix_recovery)
        marks = {source: int(seq) for source, seq in self.journal.metas(IN_MARK).items()}
        if self.with_fix and self.processes:
            from oms.engine_link import EngineLink

            self.link = EngineLink(self.cfg, self.runtime, self.run_dir / "engine.sock", self.metrics)
            self.link.start()
        elif self.with_fix:
            from gateways.fix_trader import TraderGateway
            from gateways.fix_venue import VenueGateway

            self.venue_links = VenueGateway(self.cfg, self.runtime.submit)
            self.trader = TraderGateway(self.cfg, self.runtime.submit, self.metrics)
            self.trader.bind_journal(self.run_dir, self.cfg.journal_path(self.base), marks,
                                     lambda: self.journal.last_seq)
            # children out first: they are on the way to the fill; the trader's acknowledgement is not
            self.runtime.listeners += [self.venue_links.on_events, self.trader.on_events]
        if self.with_streams:
            self._start_streams()
        if self.cfg.reports.at:
            from oms.reporting.schedule import EndOfDay

            self.end_of_day = EndOfDay(self.cfg, self.cfg.journal_path(self.base), self.run_dir / "reports")
            if self.end_of_day.at is None:  # at each DayEnded: listening before the first tick can end a day
                self.runtime.listeners.append(self.end_of_day.on_events)
            self.end_of_day.start()
        if self.cfg.reports.extract:
            from oms.reporting.extract import Keeper

            self.extract_keeper = Keeper(self.cfg.journal_path(self.base), lambda: self.journal.last_seq)
            self.extract_keeper.start()
        self.runtime.start()
        if self.cfg.api.enabled:
            from gateways.http_app import HttpApi
            from gateways.risk_api import fix_sessions

            sessions = self.link.sessions if self.link is not None else fix_sessions(self.cfg, self.trader,
                                                                                     self.venue_links)
            self.api = HttpApi(self.cfg, self.runtime, self.metrics, sessions)
            self.api.start()
        if self.link is not None:
            self._start_gateway()
        elif self.venue_links is not None and self.trader is not None:
            self.venue_links.start(self.run_dir, marks)
            # the simulators' first quotes before the first order: reference prices from the first moment
            late = self.venue_links.wait_for_quotes([sim.venue.name for sim in self.sims], 10.0)
            if late:
                log.warning("no quotes yet from %s", ", ".join(late))
            self.runtime.barrier()  # and the engine has them
            self.trader.start(self.run_dir)
            self._report_recovery(self.trader.recovered_reports)

    def _start_venues(self) -> None:
        if not self.processes:
            from gateways.venue_sim import start_venues

            self.sims = start_venues(self.cfg, self.run_dir)
            return
        from oms.roles import RoleProcess, wait_listening

        self.venue_process = RoleProcess("venues", self._role_args)
        self.venue_process.start()
        wait_listening([(v.host, v.port) for v in self.cfg.venues if v.sim.enabled], self.venue_process, 60.0)

    def _start_gateway(self) -> None:
        """The FIX gateway process; `oms run` is up once it has started its sessions."""
        from oms.roles import RoleProcess

        assert self.link is not None
        self.gateway_process = RoleProcess("fix", [*self._role_args, "--engine", str(self.link.path)],
                                           on_restart=self.metrics.gateway_restarts.inc)
        self.gateway_process.start()
        if not self.link.ready.wait(120):
            raise RuntimeError("the FIX gateway process did not start within 120 s")
        status = self.link.status
        self._report_recovery(status.recovered_reports if status is not None else 0)

    def _report_recovery(self, unsent: int) -> None:
        """What start-up took over from the journal, in one log line and in metrics."""
        def count(engine):
            state = engine.state
            open_children = [ch for ch in state.children.values() if ch.venue != INTERNAL and ch.status not in TERMINAL]
            return len(state.orders), len(open_children), sum(1 for ch in open_children if ch.doubt)

        orders, children, doubt = self.runtime.query(count)
        for what, n in (("orders", orders), ("open_children", children), ("children_in_doubt", doubt),
                        ("unsent_reports", unsent)):
            self.metrics.recovered.labels(what).set(n)
        log.info("recovered %d orders, %d open child orders (%d in doubt), %d reports journaled but not sent "
                 "(now queued first); open child orders are being reconciled with their venues",
                 orders, children, doubt, unsent)

    def _start_streams(self) -> None:
        from gateways.stream_process import StreamerProcess
        from oms.natsd import EmbeddedNats, public_nkey

        n = self.cfg.nats
        if not n.url:
            seed = n.seed_path(self.base)
            self.nats = EmbeddedNats(n.host, n.port, self.run_dir / "nats", n.user, n.password, n.users,
                                     nkey=public_nkey(seed) if seed is not None else "")
            self.nats.start()
        self.streamer = StreamerProcess(
            self.metrics, servers=n.servers(), journal_path=self.cfg.journal_path(self.base), state_dir=self.run_dir,
            encoding=n.encoding, auth=n.auth(self.base), positions=self._positions(),
            positions_interval_ms=n.positions_interval_ms, max_backlog=n.max_backlog)
        self.streamer.start()
        self.runtime.followers.append(self.streamer.on_committed)
        if self.venue_links is not None:
            self.venue_links.md_listeners.append(self.streamer.on_market_data)
        if self.link is not None:
            self.link.md_listeners.append(self.streamer.on_market_data)

    def _positions(self) -> PositionBook:
        cfg = self.cfg
        return PositionBook([a.id for a in cfg.accounts], [i.symbol for i in cfg.instruments], cfg.fx_rates())

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.gateway_process is not None:
            self.link.stopping()
            self.gateway_process.stop()  # its sessions log out while the engine still runs
        if self.link is not None:
            self.link.stop()
        if self.trader is not None:
            self.trader.stop()
        if self.venue_links is not None:
            self.venue_links.stop()
        if self.venue_links is not None:
            self.venue_links.md_listeners.clear()
        self.runtime.stop()
        if self.end_of_day is not None:
            self.end_of_day.stop()  # after the engine: the reports of a day it ended as it stopped are written too
        if self.extract_keeper is not None:
            self.extract_keeper.stop()
        if self.streamer is not None:
            self.streamer.stop()
        if self.nats is not None:
            self.nats.stop()
        for sim in self.sims:
            sim.stop()
        if self.venue_process is not None:
            self.venue_process.stop()
        log.info("stopped; journal at seq %d; state hash %s", self.journal.last_seq, self.engine.state.state_hash())
