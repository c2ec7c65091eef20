"""The trader's view over real FIX sessions: trader -> OMS -> venue and back, all quickfix on loopback.

The venue is a real quickfix acceptor played by the test, so the races of the order
state matrices (fills crossing cancels and replaces) happen exactly when the test
says. Each test asserts the trader's ExecutionReports as the matrices give them.
"""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from gateways.fix_session import execution_report, field
from oms.config import Config
from oms.model import ExecType, OrdStatus
from oms.system import System
from tests.commit_watch import CommitWatch
from tests.fix_client import FixClient, free_port, tags

CONFIG = """
run_dir = "run"
default_venue = "TV"
[api]
enabled = false
[fix]
port = {trader_port}
[[fix.sessions]]
comp_id = "CLIENT1"
begin_string = "FIX.4.2"
accounts = ["DEMO1", "DEMO2"]
[[fix.sessions]]
comp_id = "CLIENT2"
begin_string = "FIX.4.4"
accounts = ["DEMO2"]
username = "trader2"
password = "s3cret!"
cancel_on_disconnect = true
[[fix.sessions]]
comp_id = "CLIENT3"
begin_string = "FIX.4.4"
accounts = ["DEMO1", "DEMO3"]
default_account = "DEMO3"
[[venues]]
name = "TV"
port = {venue_port}
begin_string = "FIX.4.4"
reset_on_logon = true  # the venue played by the test keeps no sequence numbers across its restarts
[venues.sim]
enabled = false
[[accounts]]
id = "DEMO1"
[[accounts]]
id = "DEMO2"
[[accounts]]
id = "DEMO3"
[[instruments]]
symbol = "AAPL"
[[instruments]]
symbol = "MSFT"
[risk]
admins = ["risk-officer"]
[[risk.limits]]
control = "max_qty"
value = "50000"
"""


class Desk:
    """A running OMS, the venue TV (played by the test) and the two trader sessions."""

    def __init__(self, tmp: Path, extra: str = "", top: str = "") -> None:
        """`extra`: config appended to CONFIG; `top`: top-level keys put before it."""
        self.tmp = tmp
        self.trader_port, self.venue_port = free_port(), free_port()
        self.cfg = msgspec.toml.decode(
            top + CONFIG.format(trader_port=self.trader_port, venue_port=self.venue_port) + extra, type=Config)
        self.venue = FixClient(tmp, self.venue_port, "TV", "OMS", role="acceptor", wait_logon=False)
        self.venue.__enter__()
        self.start()
        self._n = 0

    def start(self) -> None:
        self.venue.logged_on.clear()
        self.system = System(self.cfg, self.tmp, venues=False, serve_metrics=False, streams=False)
        self.system.start()
        self.commits = CommitWatch(self.system)
        assert self.venue.logged_on.wait(15), "the OMS did not log on to the venue"

    def restart(self) -> None:
        """The OMS down and up again on its journal (and the snapshot of its last end of day)."""
        self.system.stop()
        self.start()

    def trader(self, comp: str = "CLIENT1", **kw: object) -> FixClient:
        begin = "FIX.4.2" if comp == "CLIENT1" else "FIX.4.4"
        fields = {553: "trader2", 554: "s3cret!"} if comp == "CLIENT2" else {}
        kw.setdefault("logon_fields", fields)
        return FixClient(self.tmp, self.trader_port, comp, "OMS", begin, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        self.system.stop()
        self.venue.__exit__()

    # ------------------------------------------------------------ the venue's side
    def venue_order(self, kind: str = "D"):
        return self.venue.expect(kind)

    def venue_says(self, order, exec_type: ExecType, status: OrdStatus, qty: int, cum: int, last: int = 0,
                   px: str = "100", cl: str | None = None, exec_id: str | None = None, ref: str | None = None) -> str:
        self._n += 1
        exec_id = exec_id or f"TV{self._n}"
        msg = execution_report(
            "FIX.4.4", order_id="TV-1", exec_id=exec_id, exec_type=exec_type, ord_status=status,
            cl_ord_id=cl or field(order, 11) or "", symbol=field(order, 55) or "", side=field(order, 54) or "1",
            order_qty=qty, cum_qty=cum, leaves_qty=max(qty - cum, 0) if status.value in "01AE6" else 0,
            avg_px=Decimal(px), last_qty=last, last_px=int(Decimal(px) * 10**6), exec_ref_id=ref,
        )
        self.venue.send(msg)
        return exec_id


@pytest.fixture
def desk(tmp_path: Path):
    d = Desk(tmp_path)
    yield d
    d.close()


def er(m) -> tuple:
    """OrdStatus, OrderQty, CumQty, LeavesQty, LastQty (FIX 4.2: LastShares)."""
    return tags(m, 39, 38, 14, 151, 32)


def test_a1a_new_order_filled_through_the_venue(desk: Desk) -> None:
    with desk.trader() as t:
        t.new_order("X", "AAPL", "1", "10000", "100.00", account="DEMO1")
        assert er(t.expect("8", t11="X")) == ("A", "10000", "0", "10000", None)
        child = desk.venue_order()
        assert tags(child, 55, 54, 38, 44, 40) == ("AAPL", "1", "10000", "100", "2")
        desk.venue_says(child, ExecType.NEW, OrdStatus.NEW, 10000, 0)
        assert tags(t.expect("8", t11="X"), 20, 150, 39) == ("0", "0", "0")  # FIX 4.2 session
        desk.venue_says(child, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 10000, 2000, 2000, "100.01")
        fill = t.expect("8", t11="X")
        assert er(fill) == ("1", "10000", "2000", "8000", "2000") and tags(fill, 150, 31) == ("1", "100.01")
        desk.venue_says(child, ExecType.TRADE, OrdStatus.FILLED, 10000, 10000, 8000, "100.02")
        last = t.expect("8", t11="X")
        assert er(last) == ("2", "10000", "10000", "0", "8000") and tags(last, 150) == ("2",)
        assert Decimal(field(last, 6) or "0") == (2000 * Decimal("100.01") + 8000 * Decimal("100.02")) / 10000


def test_b1b_fill_during_pending_cancel_is_reported_on_the_old_id(desk: Desk) -> None:
    with desk.trader("CLIENT2") as t:
        t.new_order("X", "MSFT", "2", "1000", "400.00", account="DEMO2")
        child = desk.venue_order()
        desk.venue_says(child, ExecType.NEW, OrdStatus.NEW, 1000, 0, px="400")
        t.expect("8", t11="X", t150="0")
        t.cancel("Y", "X", "MSFT", "2")
        pending = t.expect("8", t11="Y")
        assert tags(pending, 150, 39, 41, 151) == ("6", "6", "X", "1000")
        venue_cancel = desk.venue_order("F")
        assert tags(venue_cancel, 41) == tags(child, 11)
        desk.venue_says(child, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 1000, 300, 300, "400")
        fill = t.expect("8", t11="X")
        assert tags(fill, 150, 39, 14, 151) == ("F", "6", "300", "700")
        desk.venue_says(child, ExecType.CANCELED, OrdStatus.CANCELED, 1000, 300, px="400", cl=field(venue_cancel, 11))
        done = t.expect("8", t11="Y")
        assert tags(done, 150, 39, 41, 14, 151) == ("4", "4", "X", "300", "0")


def test_c1b_replace_with_a_fill_while_pending(desk: Desk) -> None:
    with desk.trader("CLIENT2") as t:
        t.new_order("X", "AAPL", "1", "10000", "100.00", account="DEMO2")
        child = desk.venue_order()
        desk.venue_says(child, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 10000, 1000, 1000)  # first report a fill
        assert tags(t.expect("8", t11="X", t150="F"), 39, 14) == ("1", "1000")
        t.replace("Y", "X", "AAPL", "1", "12000", "100.00")
        assert tags(t.expect("8", t11="Y"), 150, 39, 38, 14) == ("E", "E", "10000", "1000")
        venue_replace = desk.venue_order("G")
        assert tags(venue_replace, 38, 41) == ("12000", field(child, 11))
        desk.venue_says(child, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 10000, 1100, 100)
        assert tags(t.expect("8", t11="X"), 150, 39, 38, 14, 151) == ("F", "E", "10000", "1100", "8900")
        desk.venue_says(venue_replace, ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, 12000, 1100)
        assert tags(t.expect("8", t11="Y"), 150, 39, 38, 14, 151, 41) == ("5", "1", "12000", "1100", "10900", "X")


def test_duplicate_status_and_unknown_order(desk: Desk) -> None:
    with desk.trader() as t:
        t.new_order("X", "AAPL", "1", "100", "100.00", account="DEMO1")
        desk.venue_says(desk.venue_order(), ExecType.NEW, OrdStatus.NEW, 100, 0)
        t.expect("8", t11="X", t150="0")
        t.new_order("X", "AAPL", "1", "500", "100.00", account="DEMO1")  # F.1.a
        dup = t.expect("8", t11="X", t150="8")
        assert tags(dup, 39, 38, 103) == ("0", "100", "6")
        t.status("NOPE", "AAPL", "1")  # G.1.a
        assert tags(t.expect("8", t11="NOPE"), 20, 39, 103) == ("3", "8", "5")
        t.cancel("C1", "NOPE", "AAPL", "1")  # B.1.f
        assert tags(t.expect("9", t11="C1"), 39, 102, 37) == ("8", "1", "NONE")


@pytest.mark.parametrize("comp,fields,reason,text", [
    ("CLIENT2", dict(qty="abc"), "13", "OrderQty"),
    ("CLIENT2", dict(qty="100", price="NaN"), "99", "Price"),
    ("CLIENT2", dict(qty="100", price="100.001"), "99", "tick"),  # 18 is FIX 5.0: Other in 4.4
    ("CLIENT1", dict(qty="100", price="100.001"), "0", "tick"),  # FIX 4.2 knows 0-8 only
    ("CLIENT2", dict(qty="0"), "13", "OrderQty (38)"),
    ("CLIENT2", dict(qty="100", account="DEMO1"), "15", "may not trade"),
    ("CLIENT2", dict(qty="100", symbol="ZZZZ"), "1", "unknown symbol"),
])
def test_bad_orders_are_rejected_with_a_reason_and_the_session_stays_up(desk: Desk, comp, fields, reason, text) -> None:
    account = "DEMO1" if comp == "CLIENT1" else "DEMO2"
    with desk.trader(comp) as t:
        t.new_order("B", fields.get("symbol", "AAPL"), "1", fields["qty"], fields.get("price", "100.00"),
                    account=fields.get("account", account))
        rej = t.expect("8", t11="B")
        assert tags(rej, 39, 103) == ("8", reason) and text in (field(rej, 58) or "")
        t.new_order("OK", "AAPL", "1", "100", "100.00", account=account)
        assert tags(t.expect("8", t11="OK"), 39) == ("A",)
        assert t.logged_on.is_set()


def test_an_order_without_account_takes_the_session_default(desk: Desk) -> None:
    with desk.trader("CLIENT3") as t3, desk.trader() as t1:
        t3.new_order("NA", "AAPL", "1", "100", "100.00")  # no Account (1): default_account DEMO3
        assert tags(t3.expect("8", t11="NA"), 39, 1) == ("A", "DEMO3")
        assert desk.venue_order() is not None
        t1.new_order("NA", "AAPL", "1", "100", "100.00")  # two accounts, no default: still refused
        rej = t1.expect("8", t11="NA")
        assert tags(rej, 39, 103) == ("8", "0") and "Account (1) is required" in field(rej, 58)  # 15 is FIX 4.4


ECHOED = (11, 55, 54, 38, 44, 40, 59, 1)  # ClOrdID, Symbol, Side, OrderQty, Price, OrdType, TimeInForce, Account


@pytest.mark.parametrize("change,wrong,reason", [
    (dict(side="9"), "Side (54) '9' is not supported", "11"),
    (dict(ord_type="P"), "OrdType (40) 'P' is not supported", "11"),
    (dict(tif="9"), "TimeInForce (59) '9' is not supported", "11"),
    (dict(price=None, ord_type="2"), "Price (44) is required", "99"),
    (dict(qty="12x"), "OrderQty", "13"),
    (dict(symbol="ZZZZ"), "Symbol (55): unknown symbol", "1"),  # refused by the engine
    (dict(price="100.001"), "Price (44) 100.001 is not a multiple of tick", "99"),
])
def test_a_refused_order_echoes_its_terms_and_names_the_wrong_field(desk: Desk, change, wrong, reason) -> None:
    sent = dict(symbol="AAPL", side="1", qty="300", price="100.5", ord_type="2", tif="1") | change
    with desk.trader("CLIENT2") as t:
        t.new_order("E1", sent["symbol"], sent["side"], sent["qty"], sent["price"], ord_type=sent["ord_type"],
                    tif=sent["tif"], account="DEMO2")
        rej = t.expect("8", t11="E1")
        assert tags(rej, 39, 150, 103) == ("8", "8", reason) and wrong in field(rej, 58)
        echo = dict(zip(ECHOED, tags(rej, *ECHOED)))
        assert echo == {11: "E1", 55: sent["symbol"], 54: sent["side"],  # as sent, but for what is no number or
                        38: None if "x" in sent["qty"] else sent["qty"], 44: sent["price"],  # value of FIX 4.4
                        40: sent["ord_type"], 59: None if sent["tif"] == "9" else sent["tif"], 1: "DEMO2"}


def test_unsupported_message_gets_a_business_reject(desk: Desk) -> None:
    from gateways.fix_session import new_message

    with desk.trader("CLIENT2") as t:
        m = new_message("AC")  # MultilegOrderCancelReplace: not supported
        m.setField(11, "Q1")
        t.send(m)
        assert tags(t.expect("j"), 372, 380) == ("AC", "3")


def test_bad_password_and_unknown_comp_id_cannot_log_on(desk: Desk) -> None:
    bad = desk.trader("CLIENT2", logon_fields={553: "trader2", 554: "wrong"}, wait_logon=False)
    bad.__enter__()
    try:
        assert not bad.logged_on.wait(3)
    finally:
        bad.__exit__()
    failed = desk.system.metrics.registry.get_sample_value("oms_failed_logons_total", {"session": "CLIENT2"})
    assert failed and failed >= 1
    stranger = FixClient(desk.tmp, desk.trader_port, "INTRUDER", "OMS", "FIX.4.4", wait_logon=False)
    stranger.__enter__()
    try:
        assert not stranger.logged_on.wait(3)
    finally:
        stranger.__exit__()


def test_cancel_on_disconnect(desk: Desk) -> None:
    with desk.trader("CLIENT2") as t:
        t.new_order("X", "AAPL", "1", "100", "100.00", account="DEMO2")
        desk.venue_says(desk.venue_order(), ExecType.NEW, OrdStatus.NEW, 100, 0)
        t.expect("8", t11="X", t150="0")
    cancel = desk.venue_order("F")  # the trader left: its working order is canceled at the venue
    assert field(cancel, 55) == "AAPL"


def test_venue_down_rejects_instead_of_hanging(desk: Desk) -> None:
    with desk.trader() as t:
        desk.venue.endpoint.stop()
        assert desk.venue.logged_out.wait(10)
        t.new_order("X", "AAPL", "1", "100", "100.00", account="DEMO1")
        assert tags(t.expect("8", t11="X"), 39) == ("A",)
        rej = t.expect("8", t11="X", t39="8")
        assert "not connected" in (field(rej, 58) or "")


def test_d1a_two_replaces_in_turn(desk: Desk) -> None:
    with desk.trader("CLIENT2") as t:
        t.new_order("D1", "AAPL", "1", "10000", "100.00", account="DEMO2")
        order = desk.venue_order()
        desk.venue_says(order, ExecType.NEW, OrdStatus.NEW, 10000, 0)
        t.expect("8", t11="D1", t150="0")
        desk.venue_says(order, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 10000, 1000, last=1000)
        assert er(t.expect("8", t11="D1", t150="F")) == ("1", "10000", "1000", "9000", "1000")
        for cl, orig, qty in (("D2", "D1", "12000"), ("D3", "D2", "11000")):
            t.replace(cl, orig, "AAPL", "1", qty, "100.00")
            assert er(t.expect("8", t11=cl, t150="E")) == ("E", "10000" if cl == "D2" else "12000", "1000",
                                                          "9000" if cl == "D2" else "11000", None)
            venue_replace = desk.venue_order("G")
            desk.venue_says(venue_replace, ExecType.REPLACED, OrdStatus.PARTIALLY_FILLED, int(qty), 1000,
                            cl=field(venue_replace, 11))
            rep = t.expect("8", t11=cl, t150="5")
            assert er(rep) == ("1", qty, "1000", str(int(qty) - 1000), None) and field(rep, 41) == orig
            order = venue_replace


def test_g_status_of_a_working_order(desk: Desk) -> None:
    with desk.trader("CLIENT2") as t:
        t.new_order("G1", "AAPL", "2", "300", "100.00", account="DEMO2")
        order = desk.venue_order()
        desk.venue_says(order, ExecType.NEW, OrdStatus.NEW, 300, 0)
        desk.venue_says(order, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 300, 100, last=100, px="100.5")
        t.expect("8", t11="G1", t150="F")
        t.status("G1", "AAPL", "2")
        st = t.expect("8", t11="G1", t150="I")
        assert er(st) == ("1", "300", "100", "200", None) and field(st, 6) == "100.5"


def test_a_venue_dropped_mid_order_is_reconciled_when_it_is_back(desk: Desk) -> None:
    with desk.trader() as t:
        t.new_order("R1", "AAPL", "1", "100", "100.00", account="DEMO1")
        order = desk.venue_order()
        desk.venue_says(order, ExecType.NEW, OrdStatus.NEW, 100, 0)
        t.expect("8", t11="R1", t39="0")
        desk.venue.endpoint.stop()  # the venue goes away with the order working
        assert desk.venue.logged_out.wait(10)
        desk.venue = FixClient(desk.tmp, desk.venue_port, "TV", "OMS", role="acceptor", wait_logon=False)
        desk.venue.__enter__()
        assert desk.venue.logged_on.wait(15), "the OMS did not reconnect to the venue"
        ask = desk.venue_order("H")  # one OrderStatusRequest per child that was working
        assert field(ask, 11) == field(order, 11)
        # while the link was down the venue filled 60 at 100.01 and canceled the rest
        desk.venue.send(execution_report(
            "FIX.4.4", order_id="TV-1", exec_id="TV-status", exec_type=ExecType.ORDER_STATUS,
            ord_status=OrdStatus.CANCELED, cl_ord_id=field(order, 11) or "", symbol="AAPL", side="1",
            order_qty=100, cum_qty=60, leaves_qty=0, avg_px=Decimal("100.01"),
        ))
        fill = t.expect("8", t11="R1", t150="1")  # FIX 4.2: a partial fill
        assert tags(fill, 32, 31, 14) == ("60", "100.01", "60")
        done = t.expect("8", t11="R1", t150="4")
        assert er(done) == ("4", "100", "60", "0", None)


def test_a_compliance_reject_and_a_kill_switch_as_the_trader_sees_them(desk: Desk) -> None:
    from oms.model import SetKillSwitch

    with desk.trader() as t:
        t.new_order("BIG", "AAPL", "1", "60000", "100.00", account="DEMO1")
        rej = t.expect("8", t11="BIG")
        assert tags(rej, 39, 150) == ("8", "8") and "max_qty" in field(rej, 58) and "60000 > 50000" in field(rej, 58)
        t.new_order("K1", "AAPL", "1", "100", "100.00", account="DEMO1")
        desk.venue_says(desk.venue_order(), ExecType.NEW, OrdStatus.NEW, 100, 0)
        t.expect("8", t11="K1", t39="0")
        desk.system.runtime.submit(SetKillSwitch(user="risk-officer", scope="account", key="DEMO1"))
        pending = t.expect("8", t11="K1", t39="6")  # the trader's own ClOrdID, with the reason
        assert "kill switch [account DEMO1]" in field(pending, 58)
        cancel = desk.venue_order("F")  # the working order in scope is pulled from the venue
        desk.venue_says(cancel, ExecType.CANCELED, OrdStatus.CANCELED, 100, 0, cl=field(cancel, 11))
        pulled = t.expect("8", t11="K1", t39="4")
        assert tags(pulled, 150, 41) == ("4", None)
        t.new_order("K2", "AAPL", "1", "100", "100.00", account="DEMO1")
        blocked = t.expect("8", t11="K2")
        assert tags(blocked, 39) == ("8",) and "kill switch" in field(blocked, 58)
        t.new_order("K3", "AAPL", "1", "100", "100.00", account="DEMO2")  # another account trades on
        assert tags(t.expect("8", t11="K3"), 39) == ("A",)


def test_quotes_come_from_the_venue_session(desk: Desk) -> None:
    import quickfix44 as fix44

    from gateways.fix_session import new_message

    req = desk.venue.expect("V")
    assert tags(req, 263, 264, 146) == ("1", "1", "2")  # snapshot + updates, top of book, both instruments
    snap = new_message("W")
    snap.setField(262, field(req, 262) or "")
    snap.setField(55, "AAPL")
    for kind, px, size in (("0", "99.98", "300"), ("1", "100.02", "200"), ("2", "100.01", None)):
        e = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        e.setField(269, kind)
        e.setField(270, px)
        if size:
            e.setField(271, size)
        snap.addGroup(e)
    desk.venue.send(snap)
    quotes = desk.system.engine.quotes
    deadline = time.monotonic() + 5
    while "TV" not in quotes.get("AAPL", {}) and time.monotonic() < deadline:
        time.sleep(0.02)
    q = quotes["AAPL"]["TV"]
    assert (q.bid, q.ask, q.last, q.bid_size, q.ask_size) == (99_980_000, 100_020_000, 100_010_000, 300, 200)


def test_a_block_is_allocated_over_fix_and_the_instruction_acknowledged(desk: Desk) -> None:
    """AllocationInstruction (J) in, AllocationInstructionAck (P) out, on FIX 4.2 and 4.4:
    accepted; refused at block level (quantity) and at account level (an account the
    session may not act for); canceled."""
    with desk.trader() as t, desk.trader("CLIENT2") as t2:
        t.new_order("BLK", "AAPL", "1", "300", "100.00", account="DEMO1")
        child = desk.venue_order()
        desk.venue_says(child, ExecType.TRADE, OrdStatus.FILLED, 300, 300, 300, "100.01")
        t.expect("8", t11="BLK", t39="2")
        t.allocation("AL1", "BLK", "AAPL", "1", [("DEMO2", "400")])
        assert tags(t.expect("P"), 70, 87, 88) == ("AL1", "1", "1")  # more than the block
        t.allocation("AL2", "BLK", "AAPL", "1", [("DEMO3", "100")])
        assert tags(t.expect("P"), 70, 87, 88) == ("AL2", "2", "0")  # CLIENT1 may not act for DEMO3
        t.allocation("AL3", "BLK", "AAPL", "1", [("DEMO2", "100")], shares="150")
        assert tags(t.expect("P"), 70, 87, 88) == ("AL3", "1", "1")  # Shares is not the sum
        t.allocation("AL5", "BLK", "MSFT", "1", [("DEMO2", "100")])
        assert tags(t.expect("P"), 70, 87) == ("AL5", "1")  # not the block's symbol
        t.allocation("AL4", "BLK", "AAPL", "1", [("DEMO2", "300")])
        assert tags(t.expect("P"), 70, 87, 88) == ("AL4", "0", None)
        booking = desk.system.runtime.query(lambda e: e.state.allocations["AL4"])
        assert [(s.account, s.qty, s.value) for s in booking.shares] == [("DEMO2", 300, 300 * 100_010_000)]
        t2.allocation("AL4", "BLK", "AAPL", "1", [("DEMO2", "1")], trans_type="2")
        assert tags(t2.expect("P"), 70, 87) == ("AL4", "2")  # CLIENT2 may not take back DEMO1's block
        t.allocation("AL4", "BLK", "AAPL", "1", [("DEMO2", "300")], trans_type="2")
        assert tags(t.expect("P"), 70, 87, 58) == ("AL4", "0", "canceled")
        assert desk.system.runtime.query(lambda e: e.state.allocated[booking.order_id]) == (0, 0)
