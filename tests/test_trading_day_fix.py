"""The trading day, restatements, halts and Stopped over real FIX: trader -> OMS -> venue
(played by the test) and back. A GTC order is carried into the next day and restated
(150=D, 378=1), routed again where its venue dropped it overnight; a venue restatement
reaches the trader (E.1.d); a venue's SecurityStatus halts the symbol and new orders are
held until it resumes (K); a venue's Stopped is reported as such (L.1.a); an ExecType the
OMS does not know changes nothing."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateways.fix_session import raw_message
from oms.model import EndOfDay, ExecType, OrdStatus, StartOfDay
from tests.fix_client import tags
from tests.test_fix_trader import Desk

OPS = "risk-officer"


@pytest.fixture
def desk(tmp_path: Path):
    d = Desk(tmp_path)
    yield d
    d.close()


def operator(desk: Desk, cmd) -> None:
    desk.system.runtime.submit(cmd)
    assert desk.system.runtime.barrier()


def applied(desk: Desk, fn) -> None:
    """Wait until the engine's state says a venue's message went through (its gateway is a process of its own)."""
    deadline = time.monotonic() + 10
    while not desk.system.runtime.query(fn):
        assert time.monotonic() < deadline, "the venue's message was not applied"
        time.sleep(0.02)


def test_a_trading_day_over_fix(desk: Desk) -> None:
    operator(desk, StartOfDay(user=OPS, date="2026-12-23"))
    with desk.trader("CLIENT3") as t:
        t.new_order("G", "AAPL", "1", "1000", "100.00", tif="1")
        child = desk.venue_order()
        desk.venue_says(child, ExecType.NEW, OrdStatus.NEW, 1000, 0)
        desk.venue_says(child, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 1000, 400, 400)
        assert tags(t.expect("8", t11="G", t150="F"), 39, 14, 151) == ("1", "400", "600")
        operator(desk, EndOfDay(user=OPS))
        desk.venue_says(child, ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY, 1000, 400)  # the venue drops it
        applied(desk, lambda e: any(c.status is OrdStatus.DONE_FOR_DAY for c in e.state.children.values()))
        operator(desk, StartOfDay(user=OPS, date="2026-12-24"))
        renewal = t.expect("8", t11="G", t150="D")  # H.1.a: Restated / PF 1000/400/600, GT renewal
        assert tags(renewal, 39, 38, 14, 151, 378) == ("1", "1000", "400", "600", "1")
        again = desk.venue_order()  # its leaves go out again
        assert tags(again, 38, 59) == ("600", "1")

        desk.venue_says(again, ExecType.NEW, OrdStatus.NEW, 600, 0)
        desk.venue_says(again, ExecType.RESTATED, OrdStatus.NEW, 500, 0)  # E.1.d: the venue declines 100
        cut = t.expect("8", t11="G", t150="D")
        assert tags(cut, 39, 38, 14, 151, 378) == ("1", "900", "400", "500", "5")

        halt = raw_message("FIX.4.4", "f", [(55, "AAPL"), (326, "2"), (58, "news pending")])
        desk.venue.send(halt)
        applied(desk, lambda e: "AAPL" in e.state.halts)
        desk.venue.send(raw_message("FIX.4.4", "8", [  # an ExecType the OMS does not handle (B Calculated)
            (37, "TV-1"), (17, "TV-calc"), (150, "B"), (39, "0"), (11, tags(again, 11)[0]), (55, "AAPL"), (54, "1"),
            (38, "500"), (14, "0"), (151, "500"), (6, "0")]))
        t.new_order("H", "AAPL", "1", "100", "100.00")
        assert tags(t.expect("8", t11="H", t150="A"), 39) == ("A",)
        held = t.expect("8", t11="H", t150="0")
        assert "halted" in (tags(held, 58)[0] or "")
        desk.venue.send(raw_message("FIX.4.4", "f", [(55, "AAPL"), (326, "17")]))
        resumed = desk.venue_order()  # held until trading resumes
        assert tags(resumed, 11, 38)[1] == "100"

        desk.venue_says(resumed, ExecType.STOPPED, OrdStatus.STOPPED, 100, 0, 100, "99.5")  # L.1.a
        stopped = t.expect("8", t11="H", t150="7")
        assert tags(stopped, 39, 14, 151, 32, 31) == ("7", "0", "100", "100", "99.5")
        desk.venue_says(resumed, ExecType.TRADE, OrdStatus.FILLED, 100, 100, 100, "99.5")
        assert tags(t.expect("8", t11="H", t150="F"), 39, 14) == ("2", "100")
    live = desk.system.runtime.query(lambda e: (e.state.state_hash(), e.state.day, e.state.halts))
    assert live[1:] == ("2026-12-24", {})
