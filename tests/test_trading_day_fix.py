"""The trading day, restatements, halts and Stopped over real FIX: trader -> OMS -> venue
(played by the test) and back. A GTC order is carried into the next day and restated
(150=D, 378=1), routed again where its venue dropped it overnight; a venue restatement
reaches the trader (E.1.d); a venue's SecurityStatus halts the symbol (its
TradingSessionStatus every symbol) and new orders are held until it resumes (K); a
venue's Stopped is reported as such (L.1.a); an ExecType the OMS does not know changes
nothing. Then three days with a holiday, a split and a halt,
straight and with the OMS restarted every night from its snapshot."""
from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from gateways.fix_session import field, raw_message
from oms.model import Anomaly, EndOfDay, Event, ExecType, HaltChanged, OrdStatus, StartOfDay, StockSplit
from oms.journal import Journal
from oms.runtime import rebuild
from oms.snapshot import directory
from risk.kernel import B_POS
from tests.fix_client import FixClient, tags
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
    desk.commits.until(fn, "the venue's message applied")


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


def test_a_halt_under_the_reject_policy_over_fix(tmp_path: Path) -> None:
    """K with `halt_policy = "reject"`: while the venue halts AAPL a new order for it is
    rejected (OrdRejReason 2, the halt in Text) and nothing goes to the venue; a working
    order stays there and fills (K.1.a); after the resume a new order is routed."""
    desk = Desk(tmp_path, top='halt_policy = "reject"\n')
    try:
        with desk.trader("CLIENT3") as t:
            t.new_order("W", "AAPL", "1", "300", "100.00")
            working = desk.venue_order()
            desk.venue_says(working, ExecType.NEW, OrdStatus.NEW, 300, 0)
            t.expect("8", t11="W", t150="0")
            desk.venue.send(raw_message("FIX.4.4", "f", [(55, "AAPL"), (326, "2"), (58, "news pending")]))
            applied(desk, lambda e: "AAPL" in e.state.halts)
            t.new_order("R", "AAPL", "1", "100", "100.00")
            refused = t.expect("8", t11="R", t150="8")
            assert tags(refused, 39, 103) == ("8", "2") and "halted" in (tags(refused, 58)[0] or "")
            desk.venue_says(working, ExecType.TRADE, OrdStatus.FILLED, 300, 300, 300, "100")  # K.1.a: it still fills
            assert tags(t.expect("8", t11="W", t150="F"), 39, 14) == ("2", "300")
            desk.venue.send(raw_message("FIX.4.4", "f", [(55, "AAPL"), (326, "17")]))
            applied(desk, lambda e: not e.state.halts)
            t.new_order("N", "AAPL", "1", "200", "100.00")
            assert tags(desk.venue_order(), 55, 38) == ("AAPL", "200")  # the next to go out: the refused one never did
    finally:
        desk.close()


def test_a_venues_trading_session_status_over_fix(desk: Desk) -> None:
    """The venue's session closed (340=3) halts every symbol there: a new order is held, and
    goes out when it opens (340=2). A status the OMS does not act on (4, pre-open) is a
    journaled anomaly with an alert."""
    seen: queue.Queue[Event] = queue.Queue()

    def hear(events: list[Event]) -> None:
        for ev in events:
            seen.put(ev)

    desk.system.runtime.listeners.append(hear)

    def journaled(kind: type, n: int = 1) -> list:
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < n:
            ev = seen.get(timeout=max(0.0, deadline - time.monotonic()))
            if type(ev) is kind:
                got.append(ev)
        return got

    desk.venue.send(raw_message("FIX.4.4", "h", [(336, "TV"), (340, "3")]))
    halts = journaled(HaltChanged, 2)
    assert {(h.symbol, h.venue, h.halted) for h in halts} == {("AAPL", "TV", True), ("MSFT", "TV", True)}
    assert halts[0].reason == "trading session TV closed"
    with desk.trader("CLIENT3") as t:
        t.new_order("H", "MSFT", "1", "100", "400")
        assert "halted" in (tags(t.expect("8", t11="H", t150="0"), 58)[0] or "")
        desk.venue.send(raw_message("FIX.4.4", "h", [(336, "TV"), (340, "4")]))
        (notice,) = journaled(Anomaly)
        assert notice.kind == "venue_trading_session_status" and "(340) '4'" in notice.detail
        desk.venue.send(raw_message("FIX.4.4", "h", [(336, "TV"), (340, "2")]))
        assert tags(desk.venue_order(), 55, 38) == ("MSFT", "100")
    assert desk.system.runtime.query(lambda e: e.state.halts) == {}


DAYS = """
[calendar]
time_zone = "America/New_York"
open = "00:00"  # the OMS's wall clock barely ever starts a day here: the operator starts each one
close = "00:01"
holidays = ["2054-12-25"]
[[risk.limits]]
control = "credit"
scope = "account"
account = "DEMO1"
value = "40000"
"""
ER = (11, 150, 39, 38, 14, 151, 44, 378)  # ClOrdID, ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, Price, reason


def said(t: FixClient, log: list, *expected: tuple) -> list:
    """The trader's next ExecutionReports, in order, are these (fields ER); each goes to `log`."""
    got = []
    for _ in expected:
        got.append(t.expect("8"))
        log.append(tags(got[-1], *ER))
    assert [tags(m, *ER) for m in got] == list(expected)
    return got


def book(desk: Desk) -> dict:
    """Each account's position and today's cash (what fills paid since the day's marks) per symbol."""
    def read(e) -> dict:
        c = e.compliance
        return {(a, s): (int(c.book[B_POS][i, j]), int(c.cash[i, j]))
                for a, i in c.accounts.items() for s, j in c.symbols.items() if c.book[B_POS][i, j] or c.cash[i, j]}
    return desk.system.runtime.query(read)


def three_days(desk: Desk, restarts: bool) -> tuple[list, dict]:
    """Wednesday, Thursday, the Christmas holiday and a weekend, Monday: a GTC buy of AAPL
    (dropped by its venue the first night, kept the second), a GTD sell of MSFT to Monday
    and a DAY order, filled in part each day; a 2-for-1 split of AAPL on day two; MSFT
    halted at the venue on day three. `restarts`: the OMS goes down and up every night.
    What the trader was told, and the accounts' book at the end."""
    log: list = []
    gtd_expiry = "20541228-20:00:00"  # 15:00 in New York on Monday

    snapshots = directory(desk.cfg.journal_path(desk.tmp))
    taken = [0]  # the journal record of the last night's snapshot

    def night() -> None:
        """Once the day's end has its snapshot, the OMS restarts from it."""
        runtime = desk.system.runtime
        runtime.barrier()  # the DayEnded's commit is behind us, its listeners too: the snapshot is requested
        runtime.query(lambda _engine: None)  # and taken: requests run in order on the engine's thread
        seq = max((int(p.stem) for p in snapshots.glob("*.snapshot")), default=0)
        assert seq > taken[-1], "no snapshot at the end of the day"
        taken.append(seq)
        if restarts:
            desk.restart()
            assert desk.system.engine.base_seq == seq

    operator(desk, StartOfDay(user=OPS, date="2054-12-23"))
    with desk.trader("CLIENT3") as t:
        t.new_order("GTC", "AAPL", "1", "1000", "100", tif="1")
        gtc = desk.venue_order()
        t.new_order("GTD", "MSFT", "2", "500", "400", tif="6", extra={126: gtd_expiry})
        gtd = desk.venue_order()
        t.new_order("DAY", "AAPL", "1", "300", "99", account="DEMO1")
        day = desk.venue_order()
        said(t, log, ("GTC", "A", "A", "1000", "0", "1000", "100", None),
             ("GTD", "A", "A", "500", "0", "500", "400", None), ("DAY", "A", "A", "300", "0", "300", "99", None))
        for child, qty, price in ((gtc, 1000, "100"), (gtd, 500, "400"), (day, 300, "99")):
            desk.venue_says(child, ExecType.NEW, OrdStatus.NEW, qty, 0, px=price)
        desk.venue_says(gtc, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 1000, 400, 400, "100")
        desk.venue_says(gtd, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 500, 100, 100, "400")
        desk.venue_says(day, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 300, 100, 100, "99")
        said(t, log, ("GTC", "0", "0", "1000", "0", "1000", "100", None),
             ("GTD", "0", "0", "500", "0", "500", "400", None), ("DAY", "0", "0", "300", "0", "300", "99", None),
             ("GTC", "F", "1", "1000", "400", "600", "100", None), ("GTD", "F", "1", "500", "100", "400", "400", None),
             ("DAY", "F", "1", "300", "100", "200", "99", None))
        t.new_order("CR1", "MSFT", "1", "90", "390", account="DEMO1")  # 9,900 executed + 19,800 open + 35,100
        refused = said(t, log, ("CR1", "8", "8", "90", "0", "0", "390", None))[0]
        assert "credit" in (field(refused, 58) or "")

        operator(desk, EndOfDay(user=OPS))  # A.1.b: the DAY order is done for the day
        said(t, log, ("DAY", "3", "3", "300", "100", "0", "99", None))
        cancel = desk.venue_order("F")
        assert tags(cancel, 41) == tags(day, 11)
        desk.venue_says(day, ExecType.CANCELED, OrdStatus.CANCELED, 300, 100, px="99", cl=field(cancel, 11))
        desk.venue_says(gtc, ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY, 1000, 400)  # the venue drops it
        applied(desk, lambda e: {c.status for c in e.state.children.values()}
                >= {OrdStatus.DONE_FOR_DAY, OrdStatus.CANCELED})
    night()

    with desk.trader("CLIENT3") as t:
        operator(desk, StartOfDay(user=OPS))  # the next trading date: Thursday
        renewals = said(t, log, ("GTC", "D", "1", "1000", "400", "600", "100", "1"),  # H.1.a
                        ("GTD", "D", "1", "500", "100", "400", "400", "1"))
        assert all("2054-12-24" in (field(m, 58) or "") for m in renewals)
        gtc = desk.venue_order()  # the leaves the venue dropped go out again
        assert tags(gtc, 38, 59) == ("600", "1")
        desk.venue_says(gtc, ExecType.NEW, OrdStatus.NEW, 600, 0)
        t.new_order("CR2", "MSFT", "1", "90", "390", account="DEMO1")  # credit counts from 0 again
        credit = desk.venue_order()
        desk.venue_says(credit, ExecType.TRADE, OrdStatus.FILLED, 90, 90, 90, "390")
        said(t, log, ("CR2", "A", "A", "90", "0", "90", "390", None), ("CR2", "F", "2", "90", "90", "0", "390", None))

        operator(desk, StockSplit(user=OPS, symbol="AAPL", new=2, old=1))  # H.1.b
        said(t, log, ("GTC", "D", "1", "2000", "800", "1200", "50", "10"))
        desk.venue_says(gtc, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 1200, 600, 600, "50")
        desk.venue_says(gtd, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 500, 200, 100, "401")
        said(t, log, ("GTC", "F", "1", "2000", "1400", "600", "50", None),
             ("GTD", "F", "1", "500", "200", "300", "400", None))
        operator(desk, EndOfDay(user=OPS))  # both GT orders rest at the venue overnight
    night()

    with desk.trader("CLIENT3") as t:
        operator(desk, StartOfDay(user=OPS))  # past the holiday and the weekend: Monday
        renewals = said(t, log, ("GTC", "D", "1", "2000", "1400", "600", "50", "1"),
                        ("GTD", "D", "1", "500", "200", "300", "400", "1"))
        assert all("2054-12-28" in (field(m, 58) or "") for m in renewals)
        desk.venue.send(raw_message("FIX.4.4", "f", [(55, "MSFT"), (326, "2")]))  # K: the venue halts MSFT
        applied(desk, lambda e: "MSFT" in e.state.halts)
        t.new_order("HELD", "MSFT", "1", "100", "399")
        held = said(t, log, ("HELD", "A", "A", "100", "0", "100", "399", None),
                    ("HELD", "0", "0", "100", "0", "100", "399", None))[1]
        assert "halted" in (field(held, 58) or "")  # halt_policy "hold": acknowledged, kept at the OMS
        desk.venue.send(raw_message("FIX.4.4", "f", [(55, "MSFT"), (326, "17")]))
        routed = desk.venue_order()  # the first new child since the night: the GT orders were left resting
        assert tags(routed, 55, 54, 38) == ("MSFT", "1", "100")
        desk.venue_says(routed, ExecType.TRADE, OrdStatus.FILLED, 100, 100, 100, "399")
        desk.venue_says(gtc, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 1200, 1100, 500, "50.01")
        said(t, log, ("HELD", "F", "2", "100", "100", "0", "399", None),
             ("GTC", "F", "1", "2000", "1900", "100", "50", None))
        operator(desk, EndOfDay(user=OPS))  # the GTD order's date
        said(t, log, ("GTD", "C", "C", "500", "200", "0", "400", None))
        cancel = desk.venue_order("F")
        assert tags(cancel, 41) == tags(gtd, 11)
        desk.venue_says(gtd, ExecType.CANCELED, OrdStatus.CANCELED, 500, 200, px="400", cl=field(cancel, 11))
        applied(desk, lambda e: not e.state.awaiting)
    night()
    live = desk.system.runtime.query(lambda e: (e.state.state_hash(), e.state.day, e.state.day_open))
    path = desk.cfg.journal_path(desk.tmp)
    with Journal(path) as journal:  # the live state is what a full replay and the last snapshot give
        assert rebuild(desk.cfg, journal).state.state_hash() == live[0]
        assert rebuild(desk.cfg, journal, snapshots=True).state.state_hash() == live[0]
    assert live[1:] == ("2054-12-28", False)
    return log, book(desk)


def test_three_days_with_a_holiday_a_split_and_a_halt_over_fix(tmp_path: Path) -> None:
    """The trader sees the same reports and the accounts hold the same positions and cash
    whether the OMS ran straight through or restarted every night."""
    runs = []
    for restarts in (False, True):
        (tmp_path / str(restarts)).mkdir()
        desk = Desk(tmp_path / str(restarts), DAYS)
        try:
            runs.append(three_days(desk, restarts))
        finally:
            desk.close()
    assert runs[0] == runs[1]
    m = 10**6
    assert runs[0][1] == {  # Monday's cash starts at minus the position at Thursday's last prices (50, 401)
        ("DEMO1", "AAPL"): (200, -200 * 50 * m), ("DEMO1", "MSFT"): (90, -90 * 401 * m),
        ("DEMO3", "AAPL"): (1900, -1400 * 50 * m - 500 * 50_010_000),
        ("DEMO3", "MSFT"): (-100, (200 * 401 - 100 * 399) * m)}
