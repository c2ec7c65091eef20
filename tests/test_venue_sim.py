"""The venue simulator over real FIX sessions on loopback."""
from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import quickfix44 as fix44

from gateways.fix_session import market_data_request, msg_type, new_message
from gateways.venue_sim import VenueSimulator
from oms.calendar import Calendar
from oms.config import SimConfig, VenueConfig
from oms.fixed import to_price
from oms.model import Instrument, RestatementReason
from tests.fix_client import FixClient, free_port, tags

INSTRUMENTS = {"AAPL": Instrument("AAPL", to_price("0.01")), "MSFT": Instrument("MSFT", to_price("0.01"))}
REF = {"AAPL": to_price("190"), "MSFT": to_price("420")}


NEW_YORK = Calendar("America/New_York", venue_hours={"TSIM": (9 * 60 + 30, 16 * 60)}, holidays=frozenset({"2054-12-25"}))


class Clock:
    """A clock a test moves by hand: New York local time on a date."""

    def __init__(self, date: str, hhmm: str) -> None:
        self.set(date, hhmm)

    def set(self, date: str, hhmm: str) -> None:
        h, m = hhmm.split(":")
        self.ns = NEW_YORK.at(date, int(h) * 60 + int(m))

    def __call__(self) -> int:
        return self.ns


def make_venue(tmp: Path, depth: int = 0, begin_string: str = "FIX.4.4", hours: str = "",
               clock: Callable[[], int] = time.time_ns, **sim: object) -> VenueSimulator:
    cfg = VenueConfig(name="TSIM", port=free_port(), begin_string=begin_string, clients=["C1", "C2"], hours=hours,
                      sim=SimConfig(depth=depth, tick_ms=50, **sim))  # type: ignore[arg-type]
    v = VenueSimulator(cfg, INSTRUMENTS, REF, NEW_YORK, clock)
    v.start(tmp)
    return v


@pytest.fixture
def quiet_venue(tmp_path: Path):
    v = make_venue(tmp_path)
    yield v
    v.stop()


def client(tmp: Path, v: VenueSimulator, name: str) -> FixClient:
    return FixClient(tmp, v.venue.port, name, "TSIM", v.venue.begin_string)


def er(m) -> tuple:
    """ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty."""
    return tags(m, 150, 39, 38, 14, 151, 32)


def test_rest_then_fill_first_report_may_be_a_fill(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1, client(tmp_path, quiet_venue, "C2") as c2:
        c1.new_order("B1", "AAPL", "1", "100", "190.00")
        assert er(c1.expect("8", t11="B1")) == ("0", "0", "100", "0", "100", None)
        c2.new_order("S1", "AAPL", "2", "60", "189.50")
        taker = c2.expect("8", t11="S1")
        assert er(taker) == ("F", "2", "60", "60", "0", "60")  # S2 A.1.c: filled on hitting the book
        assert tags(taker, 31) == ("190",)  # at the maker's price
        assert er(c1.expect("8", t11="B1")) == ("F", "1", "100", "60", "40", "60")
        c2.new_order("S2", "AAPL", "2", "150", "190.00")
        assert er(c2.expect("8", t11="S2")) == ("F", "1", "150", "40", "110", "40")  # A.1.d, then rests
        assert er(c1.expect("8", t11="B1")) == ("F", "2", "100", "100", "0", "40")
        assert c2.drain() == []  # no New after a first fill


def test_ioc_remainder_and_fok_are_canceled(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1, client(tmp_path, quiet_venue, "C2") as c2:
        c1.new_order("S1", "MSFT", "2", "50", "420.00")
        c1.expect("8", t11="S1")
        c2.new_order("F1", "MSFT", "1", "100", "420.00", tif="4")  # FOK: cannot fill
        assert er(c2.expect("8", t11="F1")) == ("4", "4", "100", "0", "0", None)
        c2.new_order("I1", "MSFT", "1", "100", "420.00", tif="3")  # IOC: 50 then cancel
        assert er(c2.expect("8", t11="I1")) == ("F", "1", "100", "50", "50", "50")
        assert er(c2.expect("8", t11="I1")) == ("4", "4", "100", "50", "0", None)


def test_cancel_replace_and_their_rejects(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1:
        c1.new_order("B1", "AAPL", "1", "100", "189.00")
        c1.expect("8", t11="B1")
        c1.replace("B2", "B1", "AAPL", "1", "80", "189.00")
        rep = c1.expect("8", t11="B2")
        assert er(rep) == ("5", "0", "80", "0", "80", None) and tags(rep, 41) == ("B1",)
        c1.cancel("B3", "B2", "AAPL", "1")
        cxl = c1.expect("8", t11="B3")
        assert er(cxl) == ("4", "4", "80", "0", "0", None) and tags(cxl, 41) == ("B2",)
        c1.cancel("B4", "B3", "AAPL", "1")  # already canceled
        assert tags(c1.expect("9", t11="B4"), 102, 39, 434) == ("0", "4", "1")
        c1.cancel("B5", "NOPE", "AAPL", "1")
        assert tags(c1.expect("9", t11="B5"), 102, 39) == ("1", "8")
        c1.replace("B6", "NOPE", "AAPL", "1", "10", "189.00")
        assert tags(c1.expect("9", t11="B6"), 102, 434) == ("1", "2")


def test_replace_that_crosses_trades(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1, client(tmp_path, quiet_venue, "C2") as c2:
        c1.new_order("S1", "AAPL", "2", "100", "191.00")
        c1.expect("8", t11="S1")
        c2.new_order("B1", "AAPL", "1", "100", "189.00")
        c2.expect("8", t11="B1")
        c2.replace("B2", "B1", "AAPL", "1", "100", "191.00")
        assert er(c2.expect("8", t11="B2")) == ("5", "0", "100", "0", "100", None)
        assert er(c2.expect("8", t11="B2")) == ("F", "2", "100", "100", "0", "100")
        assert er(c1.expect("8", t11="S1")) == ("F", "2", "100", "100", "0", "100")


@pytest.mark.parametrize("symbol,qty,price,reason", [
    ("ZZZZ", "100", "10.00", "1"),
    ("AAPL", "100", "190.005", "99"),  # FIX 4.4 has no "invalid price increment": Other, with a Text
    ("AAPL", "0", "190.00", "13"),
    ("AAPL", "-5", "190.00", "13"),
])
def test_bad_orders_are_rejected_and_the_session_stays_up(tmp_path, quiet_venue, symbol, qty, price, reason):
    with client(tmp_path, quiet_venue, "C1") as c1:
        c1.new_order("X1", symbol, "1", qty, price)
        rej = c1.expect("8", t11="X1")
        assert tags(rej, 150, 39, 103) == ("8", "8", reason) and tags(rej, 58)[0]
        c1.new_order("X2", "AAPL", "1", "10", "150.00")
        assert tags(c1.expect("8", t11="X2"), 150) == ("0",)
        assert c1.logged_on.is_set()


def test_self_trade_prevention_cancels_the_newest(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1:
        c1.new_order("B1", "AAPL", "1", "100", "190.00")
        c1.expect("8", t11="B1")
        c1.new_order("S1", "AAPL", "2", "100", "190.00")
        stp = c1.expect("8", t11="S1")
        assert tags(stp, 150, 39, 14) == ("4", "4", "0")
        c1.status("B1", "AAPL", "1")
        assert tags(c1.expect("8", t11="B1"), 150, 39, 151) == ("I", "0", "100")


def test_market_order_fills_against_synthetic_liquidity_and_market_data(tmp_path):
    v = make_venue(tmp_path, depth=5, level_qty=200)
    try:
        with client(tmp_path, v, "C1") as c1:
            c1.new_order("M1", "AAPL", "1", "100")
            fill = c1.expect("8", t11="M1")
            assert tags(fill, 150, 39, 14) == ("F", "2", "100")
            assert abs(Decimal(tags(fill, 31)[0] or "0") - 190) < 2
            req = new_message("V")
            req.setField(262, "md1")
            req.setField(263, "0")
            req.setField(264, "3")
            g = fix44.MarketDataRequest.NoMDEntryTypes()
            g.setField(269, "0")
            req.addGroup(g)
            g.setField(269, "1")
            req.addGroup(g)
            sym = fix44.MarketDataRequest.NoRelatedSym()
            sym.setField(55, "MSFT")
            req.addGroup(sym)
            c1.send(req)
            snap = c1.expect("W")
            assert tags(snap, 262, 55, 268) == ("md1", "MSFT", "6")
        top = v.top("MSFT")
        assert top.bid is not None and top.ask is not None and top.bid < top.ask
    finally:
        v.stop()


def test_market_data_subscription_pushes_snapshots_until_unsubscribed(tmp_path):
    v = make_venue(tmp_path, depth=3, level_qty=200)
    try:
        with client(tmp_path, v, "C1") as c1, client(tmp_path, v, "C2") as c2:
            c1.send(market_data_request("FIX.4.4", "sub1", "1", ["AAPL"], entry_types="01"))
            first = c1.expect("W", t55="AAPL")
            assert tags(first, 262, 268) == ("sub1", "2")  # top of book: one bid, one offer
            c1.expect("W", t55="AAPL", timeout=2)  # and again at the next requote
            c2.new_order("M1", "AAPL", "1", "100")
            assert tags(c2.expect("8", t11="M1"), 39) == ("2",)
            assert not [m for m in c2.drain(0.3) if msg_type(m) == "W"]  # C2 did not subscribe
            c1.send(market_data_request("FIX.4.4", "sub1", "2", ["AAPL"], entry_types="01"))
            c1.drain(0.3)
            assert [m for m in c1.drain(0.5) if msg_type(m) == "W"] == []  # unsubscribed
    finally:
        v.stop()


def test_fix42_session_reports_fills_the_fix42_way(tmp_path):
    v = make_venue(tmp_path, begin_string="FIX.4.2")
    try:
        with client(tmp_path, v, "C1") as c1, client(tmp_path, v, "C2") as c2:
            c1.new_order("B1", "AAPL", "1", "100", "190.00")
            assert tags(c1.expect("8", t11="B1"), 20, 150, 39) == ("0", "0", "0")
            c2.new_order("S1", "AAPL", "2", "100", "190.00")
            assert tags(c2.expect("8", t11="S1"), 20, 150, 39, 32) == ("0", "2", "2", "100")
    finally:
        v.stop()


def test_venue_restart_accepts_logons_again(tmp_path):
    v = make_venue(tmp_path)
    port = v.venue.port
    with client(tmp_path, v, "C1") as c1:
        v.stop()
        assert c1.logged_out.wait(10)
        v2 = VenueSimulator(v.venue, INSTRUMENTS, REF)
        v2.start(tmp_path)
        try:
            assert c1.logged_on.wait(15)  # the client's reconnect finds the restarted venue
            c1.new_order("A1", "AAPL", "1", "10", "100.00")
            assert tags(c1.expect("8", t11="A1"), 150) == ("0",)
        finally:
            v2.stop()
    assert v2.venue.port == port


def test_self_trade_decrement_restates_the_resting_order(tmp_path):
    v = make_venue(tmp_path, self_trade="decrement")
    try:
        with client(tmp_path, v, "C1") as c1:
            c1.new_order("B1", "AAPL", "1", "100", "190.00")
            c1.expect("8", t11="B1")
            c1.new_order("S1", "AAPL", "2", "60", "190.00")
            assert tags(c1.expect("8", t11="B1"), 150, 39, 38, 151, 378) == ("D", "0", "40", "40", "5")
            assert tags(c1.expect("8", t11="S1"), 150, 39, 14) == ("4", "4", "0")
    finally:
        v.stop()


def test_end_of_day_ends_day_orders_and_keeps_gtc_orders_in_the_book(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1, client(tmp_path, quiet_venue, "C2") as c2:
        c1.new_order("D1", "AAPL", "1", "100", "189.00")
        c1.new_order("G1", "AAPL", "1", "200", "189.50", tif="1")
        c1.expect("8", t11="D1")
        c1.expect("8", t11="G1")
        quiet_venue.end_of_day()
        assert er(c1.expect("8", t11="D1")) == ("3", "3", "100", "0", "0", None)
        c2.new_order("S1", "AAPL", "2", "200", "189.00")  # the next morning: the GTC order is still there
        assert er(c1.expect("8", t11="G1")) == ("F", "2", "200", "200", "0", "200")


def test_a_halt_refuses_new_orders_tells_every_session_and_can_cancel_resting_ones(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1:
        c1.new_order("B1", "AAPL", "1", "100", "189.00")
        c1.expect("8", t11="B1")
        quiet_venue.halt("AAPL", True, cancel=True)
        assert tags(c1.expect("f"), 55, 326) == ("AAPL", "2")
        assert tags(c1.expect("8", t11="B1"), 150, 39, 378) == ("4", "4", "6")  # K.1.b
        c1.new_order("B2", "AAPL", "1", "100", "189.00")
        assert tags(c1.expect("8", t11="B2"), 150, 103) == ("8", "2")
        quiet_venue.halt("AAPL", False)
        assert tags(c1.expect("f"), 55, 326) == ("AAPL", "17")
        c1.new_order("B3", "AAPL", "1", "100", "189.00")
        assert tags(c1.expect("8", t11="B3"), 150) == ("0",)


def test_the_venue_keeps_its_own_session_on_its_clock(tmp_path):
    """Closed before its hours (orders refused, no quotes), open at 09:30 (TradingSessionStatus,
    quotes), closed at 16:00 (DAY orders done for day, GTC kept, quotes pulled), shut on a
    holiday, open again the next trading day with its halts repeated, where the GTC order trades."""
    clock = Clock("2054-12-24", "09:00")
    v = make_venue(tmp_path, depth=1, hours="09:30-16:00", clock=clock, volatility_bps=0.0)
    try:
        with client(tmp_path, v, "C1") as c1, client(tmp_path, v, "C2") as c2:
            assert tags(c1.expect("h"), 336, 340) == ("TSIM", "3") == tags(c2.expect("h"), 336, 340)  # at logon
            c1.new_order("EARLY", "AAPL", "1", "100", "189.00")
            early = c1.expect("8", t11="EARLY")
            assert tags(early, 150, 103) == ("8", "2") and "09:30-16:00" in (tags(early, 58)[0] or "")
            assert v.top("AAPL").bid is None
            clock.set("2054-12-24", "09:30")
            v.tick()
            assert tags(c1.expect("h"), 340) == ("2",) and tags(c2.expect("h"), 340) == ("2",)
            assert v.top("AAPL").bid == to_price("189.96")  # quoting: 2 bps either side of 190
            c1.new_order("D1", "AAPL", "1", "100", "189.00")
            c1.new_order("G1", "AAPL", "1", "200", "189.50", tif="1")
            c1.expect("8", t11="D1")
            c1.expect("8", t11="G1")
            v.halt("MSFT", True)
            c1.expect("f", t55="MSFT")
            clock.set("2054-12-24", "16:00")
            v.tick()
            assert tags(c1.expect("h"), 340) == ("3",)
            assert er(c1.expect("8", t11="D1")) == ("3", "3", "100", "0", "0", None)
            assert (v.top("AAPL").bid, v.top("AAPL").ask) == (to_price("189.50"), None)  # the GTC order, no quotes
            c1.replace("G2", "G1", "AAPL", "1", "200", "189.60")
            assert tags(c1.expect("9", t11="G2"), 102, 434) == ("2", "2")  # no matching while closed
            clock.set("2054-12-25", "10:00")  # a holiday: it stays closed
            v.tick()
            c2.new_order("S0", "AAPL", "2", "200", "189.50")
            assert tags(c2.expect("8", t11="S0"), 150, 103) == ("8", "2")
            clock.set("2054-12-28", "09:30")  # Monday
            v.tick()
            assert tags(c2.expect("h"), 340) == ("2",)
            assert tags(c2.expect("f"), 55, 326) == ("MSFT", "2")  # still halted after the open
            c2.new_order("S1", "AAPL", "2", "700", "189.50")  # the quoted bid first, then the GTC order
            assert er(c1.expect("8", t11="G1")) == ("F", "2", "200", "200", "0", "200")
            assert tags(c2.expect("8", t11="S1", t39="2"), 14, 32, 31) == ("700", "200", "189.5")
    finally:
        v.stop()


def test_the_venue_restates_a_resting_order_on_demand(tmp_path, quiet_venue):
    with client(tmp_path, quiet_venue, "C1") as c1, client(tmp_path, quiet_venue, "C2") as c2:
        c1.new_order("B1", "AAPL", "1", "100", "189.00")
        c1.expect("8", t11="B1")
        quiet_venue.restate("B1", qty=60)
        assert tags(c1.expect("8", t11="B1"), 150, 39, 38, 151, 44, 378) == ("D", "0", "60", "60", "189", "5")
        c2.new_order("S1", "AAPL", "2", "10", "189.00")
        assert er(c1.expect("8", t11="B1")) == ("F", "1", "60", "10", "50", "10")
        quiet_venue.restate("B1", price=to_price("189.10"), reason=RestatementReason.REPRICING)
        assert tags(c1.expect("8", t11="B1"), 150, 39, 38, 151, 44, 378) == ("D", "1", "60", "50", "189.1", "3")
        c2.new_order("S2", "AAPL", "2", "50", "189.10")
        assert er(c1.expect("8", t11="B1")) == ("F", "2", "60", "60", "0", "50")
        with pytest.raises(ValueError):
            quiet_venue.restate("B1", qty=40)  # filled: nothing rests
