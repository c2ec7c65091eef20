"""The OMS against the venue simulator's own book over real FIX: a trader -> the OMS -> the
simulated venue XSIM, whose session follows its hours on a clock the test moves, and a
street participant at XSIM who trades against the OMS's children. The venue's
TradingSessionStatus holds and releases the OMS's orders, its close ends DAY orders and
keeps the GTC order in its book over two nights, its halt holds an order until it
resumes, and its restatements reach the trader."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from gateways.fix_session import field
from gateways.venue_sim import start_venues
from oms.config import Config
from oms.engine import Engine
from oms.fixed import to_price
from oms.journal import Journal
from oms.model import EndOfDay, OrdStatus, RestatementReason, StartOfDay
from oms.runtime import rebuild
from oms.system import System
from tests.commit_watch import CommitWatch
from tests.fix_client import FixClient, free_port
from tests.test_trading_day_fix import OPS, operator, said
from tests.test_venue_sim import Clock

CONFIG = """
run_dir = "run"
default_venue = "XSIM"
[api]
enabled = false
[fix]
port = {trader_port}
[[fix.sessions]]
comp_id = "TRADER"
accounts = ["DEMO1"]
[[venues]]
name = "XSIM"
port = {venue_port}
clients = ["OMS", "STREET"]
hours = "09:30-16:00"
[venues.sim]
depth = 0
tick_ms = 50
[[accounts]]
id = "DEMO1"
[[instruments]]
symbol = "AAPL"
[[instruments]]
symbol = "MSFT"
[calendar]
time_zone = "America/New_York"
open = "00:00"  # the OMS's wall clock barely ever starts a day here: the operator starts each one
close = "00:01"
holidays = ["2054-12-25"]
[risk]
admins = ["risk-officer"]
"""


class Floor:
    """The OMS, the simulated venue on a clock the test moves, a trader at the OMS and a
    street participant at the venue."""

    def __init__(self, tmp: Path, date: str, hhmm: str) -> None:
        self.tmp = tmp
        trader_port, venue_port = free_port(), free_port()
        self.cfg = msgspec.toml.decode(CONFIG.format(trader_port=trader_port, venue_port=venue_port), type=Config)
        self.clock = Clock(date, hhmm)
        (self.sim,) = start_venues(self.cfg, self.cfg.run_path(tmp), clock=self.clock)
        self.system = System(self.cfg, tmp, venues=False, serve_metrics=False, streams=False)
        self.system.start()
        self.commits = CommitWatch(self.system)
        self.street = FixClient(tmp, venue_port, "STREET", "XSIM").__enter__()

    def trader(self) -> FixClient:
        return FixClient(self.tmp, self.cfg.fix.port, "TRADER", "OMS")

    def at(self, date: str, hhmm: str) -> None:
        """The venue's clock moves on; its session opens or closes if its hours say so."""
        self.clock.set(date, hhmm)
        self.sim.tick()

    def until(self, done: Callable[[Engine], bool], what: str) -> None:
        self.commits.until(done, what)

    def child(self, status: OrdStatus = OrdStatus.NEW) -> str:
        """The ClOrdID of the OMS's one child in `status` at the venue, once there is one."""
        def find(e: Engine) -> list[str]:
            return [c.cl_ord_id for c in e.state.children.values() if c.status is status]

        self.until(lambda e: len(find(e)) == 1, f"a child {status.name}")
        return self.system.runtime.query(find)[0]

    def close(self) -> None:
        self.street.__exit__()
        self.system.stop()
        self.sim.stop()


@pytest.fixture
def floor(tmp_path: Path):
    f = Floor(tmp_path, "2054-12-23", "09:00")  # a Wednesday, before the venue opens
    yield f
    f.close()


def closed_at(venue: str) -> Callable[[Engine], bool]:
    """The venue's session is closed in the OMS's eyes: both symbols halted there."""
    return lambda e: all(venue in e.state.halts.get(s, ()) for s in ("AAPL", "MSFT"))


def test_a_gtc_order_rests_in_the_simulators_book_over_two_nights(floor: Floor) -> None:
    """Wednesday: an order held while the venue is closed goes out at its open; a DAY order
    ends at its close, the GTC order stays in its book. Thursday: the GTC order trades
    again; the venue halts MSFT, an order waits at the OMS until it resumes. Past the
    holiday and the weekend, Monday: the GTC order fills."""
    log: list = []
    floor.until(closed_at("XSIM"), "the venue closed at logon")
    operator(floor, StartOfDay(user=OPS, date="2054-12-23"))
    with floor.trader() as t:
        t.new_order("GTC", "AAPL", "1", "1000", "100", tif="1")
        held = said(t, log, ("GTC", "A", "A", "1000", "0", "1000", "100", None),
                    ("GTC", "0", "0", "1000", "0", "1000", "100", None))[1]
        assert "halted" in (field(held, 58) or "")  # acknowledged by the OMS, held until the venue opens
        floor.at("2054-12-23", "09:30")
        floor.child()  # sent at the open, resting in the venue's book
        t.new_order("DAY", "AAPL", "1", "300", "99")
        said(t, log, ("DAY", "A", "A", "300", "0", "300", "99", None), ("DAY", "0", "0", "300", "0", "300", "99", None))
        floor.street.new_order("S1", "AAPL", "2", "400", "100")
        said(t, log, ("GTC", "F", "1", "1000", "400", "600", "100", None))
        floor.at("2054-12-23", "16:00")  # the venue's close: DoneForDay for the DAY order only
        said(t, log, ("DAY", "3", "3", "300", "0", "0", "99", None))
        floor.until(closed_at("XSIM"), "the venue's close")
        operator(floor, EndOfDay(user=OPS))

        operator(floor, StartOfDay(user=OPS))  # Thursday
        said(t, log, ("GTC", "D", "1", "1000", "400", "600", "100", "1"))
        floor.at("2054-12-24", "09:30")
        floor.until(lambda e: not e.state.halts, "the venue's open")
        floor.street.new_order("S2", "AAPL", "2", "100", "100")  # the same child, carried in the venue's book
        said(t, log, ("GTC", "F", "1", "1000", "500", "500", "100", None))
        floor.sim.halt("MSFT", True)
        floor.until(lambda e: e.state.halts == {"MSFT": {"XSIM"}}, "the halt")
        t.new_order("HELD", "MSFT", "1", "100", "400")
        said(t, log, ("HELD", "A", "A", "100", "0", "100", "400", None),
             ("HELD", "0", "0", "100", "0", "100", "400", None))
        floor.sim.halt("MSFT", False)
        floor.child()  # the MSFT child; the GTC child is partly filled
        floor.street.new_order("S3", "MSFT", "2", "100", "400")
        said(t, log, ("HELD", "F", "2", "100", "100", "0", "400", None))
        floor.at("2054-12-24", "16:00")
        floor.until(closed_at("XSIM"), "the venue's close")
        operator(floor, EndOfDay(user=OPS))

        floor.at("2054-12-25", "10:00")  # the holiday: the venue stays closed
        floor.street.new_order("S4", "AAPL", "2", "500", "100")
        assert "exchange closed" in (field(floor.street.expect("8", t11="S4", t150="8"), 58) or "")
        operator(floor, StartOfDay(user=OPS))  # Monday
        said(t, log, ("GTC", "D", "1", "1000", "500", "500", "100", "1"))
        floor.at("2054-12-28", "09:30")
        floor.until(lambda e: not e.state.halts, "the venue's open")
        floor.street.new_order("S5", "AAPL", "2", "500", "100")
        said(t, log, ("GTC", "F", "2", "1000", "1000", "0", "100", None))
    live = floor.system.runtime.query(lambda e: (e.state.state_hash(), e.state.day, [
        (o.symbol, o.status, o.cum_qty) for o in e.state.orders.values()]))
    assert live[1:] == ("2054-12-28", [("AAPL", OrdStatus.FILLED, 1000), ("AAPL", OrdStatus.DONE_FOR_DAY, 0),
                                       ("MSFT", OrdStatus.FILLED, 100)])
    with Journal(floor.cfg.journal_path(floor.tmp)) as journal:  # the venue's sessions are journaled: a replay agrees
        assert rebuild(floor.cfg, journal).state.state_hash() == live[0]


def test_the_trader_hears_the_simulators_restatements(tmp_path: Path) -> None:
    """The venue declines part of a resting child (E.1.d) and reprices it: the trader gets
    Restated each time with the venue's reason, then fills at the venue's new price."""
    floor = Floor(tmp_path, "2054-12-23", "10:00")  # the venue is open
    try:
        log: list = []
        with floor.trader() as t:
            t.new_order("G", "AAPL", "1", "1000", "100", tif="1")
            said(t, log, ("G", "A", "A", "1000", "0", "1000", "100", None),
                 ("G", "0", "0", "1000", "0", "1000", "100", None))
            child = floor.child()
            floor.sim.restate(child, qty=600)
            cut = said(t, log, ("G", "D", "0", "600", "0", "600", "100", "5"))[0]
            assert field(cut, 58) == "restated by the venue"
            floor.sim.restate(child, price=to_price("99.5"), reason=RestatementReason.REPRICING)
            said(t, log, ("G", "D", "0", "600", "0", "600", "99.5", "3"))
            floor.street.new_order("S", "AAPL", "2", "600", "99.5")
            said(t, log, ("G", "F", "2", "600", "600", "0", "99.5", None))
    finally:
        floor.close()
