"""FIX order state matrices E (unsolicited restatements), K (trading halts) and L (Stopped)
at the engine level, row by row as in ../shared/reference/fix-order-state-matrices.md
(H, GT orders across days, is in tests/test_trading_day.py)."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from oms.model import (
    Anomaly,
    ComplianceAlert,
    ExecType,
    HaltChanged,
    OrderRejected,
    RestatementReason,
    TimeInForce,
    Timer,
    TradingHalt,
    VenueNotice,
)
from risk.config import RiskConfig
from tests.harness import REF, Desk, px, rows

PN, NEW, PF, FILLED = "PENDING_NEW", "NEW", "PARTIALLY_FILLED", "FILLED"
STOPPED, RESTATED, CXL = "STOPPED", "RESTATED", "CANCELED"
ADMIN = "ops"


def acked(qty: int = 10000, d: Desk | None = None) -> Desk:
    d = d or Desk()
    d.nos("X", qty)
    d.v_ack("X")
    return d


def restated(d: Desk, cl: str = "X", **kw: object) -> list:
    return d._venue(cl, ExecType.RESTATED, **kw)


# ---------------------------------------------------------------- E unsolicited


def test_e1d_unsolicited_reduction_by_the_venue_then_filled():
    d = acked()
    reps = restated(d, order_qty=9000, text="partial decline")
    assert rows(reps) == [(RESTATED, NEW, 9000, 0, 9000, 0)]
    assert reps[0].restatement_reason == RestatementReason.PARTIAL_DECLINE and reps[0].text == "partial decline"
    assert d.child("X").qty == 9000
    assert rows(d.v_fill("X", 9000)) == [("TRADE", FILLED, 9000, 9000, 0, 9000)]
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_e1c_unsolicited_increases_with_a_fill_between():
    d = acked()
    reps = restated(d, order_qty=11000, restatement_reason=RestatementReason.VERBAL_CHANGE)
    assert rows(reps) == [(RESTATED, NEW, 11000, 0, 11000, 0)] and reps[0].restatement_reason == 2
    assert rows(d.v_fill("X", 1000)) == [("TRADE", PF, 11000, 1000, 10000, 1000)]
    assert rows(restated(d, order_qty=12000)) == [(RESTATED, PF, 12000, 1000, 11000, 0)]


def test_a_restated_price_follows_the_only_child_and_a_reduction_never_goes_below_cum_qty():
    d = acked()
    reps = restated(d, price=px("99.5"))
    assert rows(reps) == [(RESTATED, NEW, 10000, 0, 10000, 0)] and reps[0].price == px("99.5")
    assert d.child("X").price == px("99.5")
    d.v_fill("X", 3000)
    assert rows(restated(d, order_qty=2000)) == [(RESTATED, FILLED, 3000, 3000, 0, 0)]  # amended to CumQty
    assert restated(d, order_qty=3000) == []  # restated as it was: nothing for the trader


def test_e1b_unsolicited_cancel_of_a_part_filled_order():
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.v_canceled("X", "verbal change")) == [(CXL, CXL, 10000, 1000, 0, 0)]


def test_an_exec_type_or_ord_status_the_oms_does_not_handle_is_a_counted_anomaly_with_an_alert():
    seen: list[Anomaly] = []
    d = Desk()
    d.engine._on_anomaly = seen.append
    for kind in ("unknown_exec_type", "unknown_ord_status"):
        events = d.run_events(VenueNotice(venue="V1", kind=kind, text="ExecType (150) 'B' for ClOrdID 7"))
        assert [type(e) for e in events] == [Anomaly, ComplianceAlert] and events[0].kind == f"venue_{kind}"
    assert len(seen) == 2


# ---------------------------------------------------------------- L stopped


def test_l1a_guarantee_of_execution_before_execution():
    d = acked()
    reps = d._venue("X", ExecType.STOPPED, last_qty=1000, last_px=px("50.10"))
    assert rows(reps) == [(STOPPED, STOPPED, 10000, 0, 10000, 1000)] and reps[0].last_px == px("50.10")
    assert rows(d.v_fill("X", 1000, "50")) == [("TRADE", STOPPED, 10000, 1000, 9000, 1000)]
    assert rows(d.v_fill("X", 9000, "50")) == [("TRADE", FILLED, 10000, 10000, 0, 9000)]
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_a_stopped_order_can_be_canceled():
    d = acked()
    d._venue("X", ExecType.STOPPED, last_qty=10000, last_px=px("50"))
    assert rows(d.cancel("Y", "X")) == [("PENDING_CANCEL", "PENDING_CANCEL", 10000, 0, 10000, 0)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 0, 0, 0)]


# ---------------------------------------------------------------- K trading halt


def halt_desk(policy: str = "hold") -> Desk:
    return Desk(RiskConfig(admins=[ADMIN]), msgspec.structs.replace(REF, halt_policy=policy))


def test_k_an_operator_halt_holds_new_orders_and_resume_routes_them():
    d = halt_desk()
    events = d.run_events(TradingHalt(symbol="AAPL", halted=True, user=ADMIN, reason="news pending"))
    assert [type(e) for e in events] == [HaltChanged]
    reps = d.nos("H", 500)
    assert rows(reps) == [(PN, PN, 500, 0, 500, 0), (NEW, NEW, 500, 0, 500, 0)]
    assert "halted" in reps[1].text and not d.engine.state.find("CLIENT1", "H").children
    d.nos("H2", 300)
    assert rows(d.cancel("H2c", "H2")) == [("PENDING_CANCEL", "PENDING_CANCEL", 300, 0, 300, 0),
                                           (CXL, CXL, 300, 0, 0, 0)]  # a held order cancels at once
    assert d.run(TradingHalt(symbol="AAPL", halted=False, user=ADMIN)) == []
    assert d.child("H").qty == 500 and d.child("H").venue == "V1"
    assert d.v_ack("H") == []  # already acknowledged by the OMS
    assert rows(d.v_fill("H", 500)) == [("TRADE", FILLED, 500, 500, 0, 500)]
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_k_by_policy_new_orders_in_a_halted_symbol_are_rejected():
    d = halt_desk("reject")
    d.run(TradingHalt(symbol="AAPL", halted=True, user=ADMIN))
    reps = d.nos("R", 100)
    assert rows(reps) == [("REJECTED", "REJECTED", 100, 0, 0, 0)]
    assert reps[0].ord_rej_reason == 2 and "halted" in reps[0].text
    assert rows(d.nos("M", 100, symbol="MSFT")) == [(PN, PN, 100, 0, 100, 0)]


def test_k_a_venue_halt_is_routed_around_by_policy_orders_and_holds_direct_ones():
    d = halt_desk()
    d.run(TradingHalt(symbol="AAPL", halted=True, venue="V1"))
    d.nos("B", 100, ex_destination="BEST")
    assert d.child("B").venue == "V2"
    d.nos("D", 100, ex_destination="V1")
    assert not d.engine.state.find("CLIENT1", "D").children
    assert d.run_events(TradingHalt(symbol="AAPL", halted=True, venue="V1")) == []  # repeated: no change
    d.run(TradingHalt(symbol="AAPL", halted=False, venue="V1"))
    assert d.child("D").venue == "V1"


def test_k1b_orders_canceled_by_the_venue_on_a_halt_and_k1a_filled_after_it():
    d = acked(d=halt_desk())
    d.run(TradingHalt(symbol="AAPL", halted=True, venue="V1"))
    d.nos("G", 100, tif=TimeInForce.GTC)  # held, not routed
    assert rows(d.v_canceled("X", "cancel on trading halt")) == [(CXL, CXL, 10000, 0, 0, 0)]  # K.1.b
    d.run(TradingHalt(symbol="AAPL", halted=False, venue="V1"))
    assert rows(d.v_fill("G", 100)) == [("TRADE", FILLED, 100, 100, 0, 100)]  # K.1.a


def test_k_halts_from_unknown_venues_or_users_are_refused():
    d = halt_desk()
    events = d.run_events(TradingHalt(symbol="AAPL", halted=True, venue="NOPE"))
    assert type(events[0]) is Anomaly and events[0].kind == "unknown_halt"
    assert d.run_events(TradingHalt(symbol="AAPL", halted=True, user="intruder"))[0].control == "authorisation"
    assert "unknown symbol" in d.run_events(TradingHalt(symbol="ZZZ", halted=True, user=ADMIN))[0].text
    assert not d.engine.state.halts and not any(type(e) is OrderRejected for e in d.events)


# ---------------------------------------------------------------- H.1.b a split


def test_h1b_a_2_for_1_split_restates_open_orders_positions_and_prices():
    from oms.model import StockSplit
    from oms.positions import Book, Ledger

    d = Desk(RiskConfig(admins=[ADMIN]))
    d.nos("X", 10000, tif=TimeInForce.GTC)
    d.v_ack("X")
    d.v_fill("X", 2000, "100.01")
    ledger = Ledger(Book(["ACC1", "ACC2", "OTHER"], list(REF.instruments)))
    for e in d.events:
        ledger.apply(e)
    before = d.engine.compliance.book.copy()
    events = d.run_events(StockSplit(user=ADMIN, symbol="AAPL", new=2, old=1))
    reps = [r for r in d.reports[-1:]]
    # H.1.b: Restated / PF 20000/4000/16000, prices halved, ExecRestatementReason 10
    assert rows(reps) == [(RESTATED, PF, 20000, 4000, 16000, 0)]
    assert reps[0].price == px("50") and reps[0].restatement_reason == RestatementReason.CORPORATE_ACTION
    assert reps[0].avg_px * 2 == Decimal("100.01")  # the same value over twice the shares
    assert d.child("X").qty == 20000 and d.child("X").cum_qty == 4000 and d.child("X").price == px("50")
    c = d.engine.compliance
    i, a = c.symbols["AAPL"], c.accounts["ACC1"]
    assert c.book[0, a, i] == 2 * before[0, a, i] == 4000  # the position, in post-split shares
    for e in events:
        ledger.apply(e)
    assert ledger.book.qty[0, ledger.book.symbols["AAPL"]] == 4000
    assert rows(d.v_fill("X", 16000, "50")) == [("TRADE", FILLED, 20000, 20000, 0, 16000)]
    for e in d.events[-3:]:
        ledger.apply(e)
    assert ledger.book.qty[0, ledger.book.symbols["AAPL"]] == 20000 == c.book[0, a, i]
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_a_split_that_would_leave_a_fraction_of_a_lot_is_refused():
    from oms.model import StockSplit

    d = Desk(RiskConfig(admins=[ADMIN]))
    d.nos("X", 3, tif=TimeInForce.GTC)
    refused = d.run_events(StockSplit(user=ADMIN, symbol="AAPL", new=1, old=2))
    assert [type(e) for e in refused] == [ComplianceAlert] and "whole lots" in refused[0].text
    assert d.run_events(StockSplit(user="intruder", symbol="AAPL", new=2, old=1))[0].control == "authorisation"


def test_k_a_venue_s_session_open_resumes_on_the_next_tick_what_the_venue_does_not_halt_again():
    """TradingSessionStatus open is followed at once by the SecurityStatus halts that outlast
    it: nothing held goes to the venue before the engine's next tick has heard them."""
    d = halt_desk()
    for symbol in ("AAPL", "MSFT"):
        d.run(TradingHalt(symbol=symbol, halted=True, venue="V1", session=True, reason="trading session closed"))
    d.nos("A", 100, ex_destination="V1")
    d.nos("M", 100, symbol="MSFT", ex_destination="V1")
    for symbol in ("AAPL", "MSFT"):
        assert d.run_events(TradingHalt(symbol=symbol, halted=False, venue="V1", session=True,
                                        reason="trading session open")) == []
    d.run(TradingHalt(symbol="AAPL", halted=True, venue="V1", reason="still halted"))  # its SecurityStatus
    assert not d.engine.state.find("CLIENT1", "A").children and not d.engine.state.find("CLIENT1", "M").children
    changed = [e for e in d.run_events(Timer()) if type(e) is HaltChanged]
    assert [(e.symbol, e.halted, e.reason) for e in changed] == [("MSFT", False, "trading session open")]
    assert d.child("M").venue == "V1" and not d.engine.state.find("CLIENT1", "A").children
    assert d.engine.state.halts == {"AAPL": {"V1"}}
    d.run(TradingHalt(symbol="AAPL", halted=False, venue="V1"))  # its own resume: at once
    assert d.child("A").venue == "V1"
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()
