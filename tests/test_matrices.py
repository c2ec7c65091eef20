"""The FIX order state change matrices, reproduced at the engine level.

Each test follows one scenario of ../shared/reference/fix-order-state-matrices.md and
asserts the trader's ExecutionReports row by row: ExecType, OrdStatus, OrderQty,
CumQty, LeavesQty, LastQty (and ClOrdID chains, AvgPx, reject reasons where the
scenario is about them). The OMS acknowledges every order with PendingNew and every
cancel or replace with a pending report before the venue confirms it; the spec makes
these optional, so rows that a sell side may omit appear here as extra rows, marked.
"""
from __future__ import annotations

from decimal import Decimal

from oms.model import OrdType, TimeInForce, Timer
from tests.harness import Desk, rows

PN, NEW, PF, FILLED = "PENDING_NEW", "NEW", "PARTIALLY_FILLED", "FILLED"
PCXL, PRPL, CXL, REJ, DFD = "PENDING_CANCEL", "PENDING_REPLACE", "CANCELED", "REJECTED", "DONE_FOR_DAY"


def acked(qty: int = 10000, cl: str = "X") -> Desk:
    d = Desk()
    assert rows(d.nos(cl, qty)) == [(PN, PN, qty, 0, qty, 0)]  # extra row: PendingNew
    assert rows(d.v_ack(cl)) == [(NEW, NEW, qty, 0, qty, 0)]
    return d


# ---------------------------------------------------------------- A vanilla


def test_a1a_filled_order_with_exact_avg_px():
    d = acked()
    assert rows(d.v_fill("X", 2000, "100.01")) == [("TRADE", PF, 10000, 2000, 8000, 2000)]
    assert rows(d.v_fill("X", 1000, "100.02")) == [("TRADE", PF, 10000, 3000, 7000, 1000)]
    last = d.v_fill("X", 7000, "99.99")
    assert rows(last) == [("TRADE", FILLED, 10000, 10000, 0, 7000)]
    exact = (Decimal("2000") * Decimal("100.01") + 1000 * Decimal("100.02") + 7000 * Decimal("99.99")) / 10000
    assert last[0].avg_px == exact


def test_a1a_alt_rejected_by_venue_before_and_after_new():
    d = Desk()
    d.nos("X", 10000)
    assert rows(d.v_reject("X")) == [(REJ, REJ, 10000, 0, 0, 0)]
    d2 = acked()
    rep = d2.v_reject("X", "halted")
    assert rows(rep) == [(REJ, REJ, 10000, 0, 0, 0)]
    assert rep[0].text == "halted" and rep[0].ord_rej_reason == 0


def test_a1b_part_filled_day_order_done_for_day():
    d = acked()
    d.v_fill("X", 2000)
    d.v_fill("X", 1000)
    assert rows(d.v_done_for_day("X")) == [(DFD, DFD, 10000, 3000, 0, 0)]


def test_a1b_end_of_day_timer_marks_day_orders_done_and_cancels_children():
    d = acked()
    d.v_fill("X", 3000)
    assert rows(d.run(Timer(end_of_day=True))) == [(DFD, DFD, 10000, 3000, 0, 0)]
    assert d.child("X").status.name == PCXL  # the venue is asked to cancel the child
    assert d.v_canceled("X") == []  # the child's cancel changes nothing for the trader


# ---------------------------------------------------------------- B cancel


def test_b1a_cancel_zero_filled_order():
    d = acked()
    rep = d.cancel("Y", "X")
    assert rows(rep) == [(PCXL, PCXL, 10000, 0, 10000, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Y", "X")
    rep = d.v_canceled("X")
    assert rows(rep) == [(CXL, CXL, 10000, 0, 0, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Y", "X")


def test_b1a_alt_cancel_rejected_by_venue():
    d = acked()
    d.cancel("Y", "X")
    rep = d.v_cxl_reject("X", "venue refuses")
    assert rows(rep) == [("CxlRej", NEW, 2)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id, rep[0].text) == ("Y", "X", "venue refuses")
    assert rows(d.v_fill("X", 100)) == [("TRADE", PF, 10000, 100, 9900, 100)]  # still working under X


def test_b1b_cancel_part_filled_with_fills_while_pending():
    d = acked()
    d.v_fill("X", 2000)
    assert rows(d.v_fill("X", 3000)) == [("TRADE", PF, 10000, 5000, 5000, 3000)]  # crosses the cancel
    assert rows(d.cancel("Y", "X")) == [(PCXL, PCXL, 10000, 5000, 5000, 0)]
    fill = d.v_fill("X", 1000)
    assert rows(fill) == [("TRADE", PCXL, 10000, 6000, 4000, 1000)]
    assert fill[0].cl_ord_id == "X"  # reported on the original ClOrdID
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 6000, 0, 0)]


def test_b1c_order_fills_before_cancel_accepted():
    d = acked()
    d.v_fill("X", 2000)
    d.v_fill("X", 3000)
    d.cancel("Y", "X")
    assert rows(d.v_fill("X", 5000)) == [("TRADE", PCXL, 10000, 10000, 0, 5000)]
    rep = d.v_cxl_reject("X")
    assert rows(rep) == [("CxlRej", FILLED, 0)]  # too late to cancel


def test_b1d_cancel_before_acknowledged():
    d = Desk()
    d.nos("X", 10000)
    rep = d.cancel("Y", "X")
    assert rows(rep) == [(PCXL, PCXL, 10000, 0, 10000, 0)]
    assert rep[0].orig_cl_ord_id == "X"
    # The ack crosses the cancel. S1 prints OrdStatus New here; the OMS keeps the
    # precedence rule (PendingCancel over New), so the report says New/PendingCancel.
    assert rows(d.v_ack("X")) == [(NEW, PCXL, 10000, 0, 10000, 0)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 0, 0, 0)]
    # second half: canceled before any New ack
    d.nos("A", 5000)
    assert rows(d.cancel("B", "A")) == [(PCXL, PCXL, 5000, 0, 5000, 0)]
    assert rows(d.v_canceled("A")) == [(CXL, CXL, 5000, 0, 0, 0)]


def test_b1e_ack_and_cancel_cross():
    d = Desk()
    d.nos("X", 10000)
    assert rows(d.v_ack("X")) == [(NEW, NEW, 10000, 0, 10000, 0)]
    assert rows(d.cancel("Y", "X")) == [(PCXL, PCXL, 10000, 0, 10000, 0)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 0, 0, 0)]


def test_b1f_cancel_unknown_order_consumes_no_id():
    d = Desk()
    before = d.engine.state.state_hash()
    rep = d.cancel("Y", "X")
    assert rows(rep) == [("CxlRej", REJ, 1)]
    assert rep[0].order_id == "NONE"
    assert d.engine.state.state_hash() == before
    assert rows(d.nos("X", 100)) == [(PN, PN, 100, 0, 100, 0)]  # X is still free
    assert rows(d.nos("Y", 100)) == [(PN, PN, 100, 0, 100, 0)]  # and so is Y


# ---------------------------------------------------------------- C cancel/replace quantity


def test_c1a_replace_zero_filled_to_increase_qty():
    d = acked()
    rep = d.replace("Y", "X", 11000)
    assert rows(rep) == [(PRPL, PRPL, 10000, 0, 10000, 0)]
    rep = d.v_replaced("X")
    assert rows(rep) == [("REPLACED", NEW, 11000, 0, 11000, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Y", "X")
    fill = d.v_fill("Y", 1000)
    assert rows(fill) == [("TRADE", PF, 11000, 1000, 10000, 1000)]
    assert fill[0].cl_ord_id == "Y"
    assert rows(d.v_fill("Y", 2000)) == [("TRADE", PF, 11000, 3000, 8000, 2000)]


def test_c1a_alt_replace_rejected_by_venue():
    d = acked()
    d.replace("Y", "X", 11000)
    rep = d.v_cxl_reject("X", "no")
    assert rows(rep) == [("CxlRej", NEW, 2)]
    assert rep[0].cxl_rej_response_to == "2"
    assert d.engine.state.find("CLIENT1", "X").order_qty == 10000  # type: ignore[union-attr]


def test_c1b_part_filled_replace_up_with_fill_while_pending():
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.replace("Y", "X", 12000)) == [(PRPL, PRPL, 10000, 1000, 9000, 0)]
    assert rows(d.v_fill("X", 100)) == [("TRADE", PRPL, 10000, 1100, 8900, 100)]
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 12000, 1100, 10900, 0)]
    assert rows(d.v_fill("Y", 10900)) == [("TRADE", FILLED, 12000, 12000, 0, 10900)]


def test_c1c_filled_order_replaced_to_increase_qty_routes_the_increase():
    d = acked()
    assert rows(d.v_fill("X", 10000)) == [("TRADE", FILLED, 10000, 10000, 0, 10000)]
    assert rows(d.replace("Y", "X", 12000)) == [
        (PRPL, PRPL, 10000, 10000, 0, 0),
        ("REPLACED", PF, 12000, 10000, 2000, 0),  # Filled -> PF (broker flow)
    ]
    new_child = d.child("Y")
    assert new_child.qty == 2000  # the increase goes to the venue as a new child
    d.v_ack("Y")
    assert rows(d.v_fill("Y", 2000)) == [("TRADE", FILLED, 12000, 12000, 0, 2000)]


def test_c2a_price_replace_too_late_because_filled():
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.v_fill("X", 9000)) == [("TRADE", FILLED, 10000, 10000, 0, 9000)]  # crosses
    assert rows(d.replace("Y", "X", 10000, "101")) == [("CxlRej", FILLED, 0)]


def test_c2a_variant_fill_while_pending_then_venue_says_too_late():
    d = acked()
    d.v_fill("X", 1000)
    d.replace("Y", "X", 10000, "101")
    assert rows(d.v_fill("X", 9000)) == [("TRADE", PRPL, 10000, 10000, 0, 9000)]
    assert rows(d.v_cxl_reject("X")) == [("CxlRej", FILLED, 0)]


def test_c3a_replace_down_above_cum_qty():
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.v_fill("X", 500)) == [("TRADE", PF, 10000, 1500, 8500, 500)]
    assert rows(d.replace("Y", "X", 8000)) == [(PRPL, PRPL, 10000, 1500, 8500, 0)]
    assert rows(d.v_fill("X", 100)) == [("TRADE", PRPL, 10000, 1600, 8400, 100)]
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 8000, 1600, 6400, 0)]
    assert rows(d.v_fill("Y", 6400)) == [("TRADE", FILLED, 8000, 8000, 0, 6400)]


def test_c3b_replace_down_to_cum_qty_is_filled():
    d = acked()
    assert rows(d.v_fill("X", 7000)) == [("TRADE", PF, 10000, 7000, 3000, 7000)]
    assert rows(d.replace("Y", "X", 7000)) == [(PRPL, PRPL, 10000, 7000, 3000, 0)]  # extra row
    assert d.child("X").pending_qty == 7000
    assert rows(d.v_replaced("X", order_qty=7000)) == [("REPLACED", FILLED, 7000, 7000, 0, 0)]


def test_c3c_replace_below_cum_qty_amends_to_cum_qty():
    d = acked()
    d.replace("Y", "X", 7000)
    assert rows(d.v_fill("X", 8000)) == [("TRADE", PRPL, 10000, 8000, 2000, 8000)]
    # the venue confirms the replace, amending its own OrderQty to its CumQty
    rep = d.v_replaced("X", order_qty=7000)
    assert rows(rep) == [("REPLACED", FILLED, 8000, 8000, 0, 0)]


# ---------------------------------------------------------------- D sequencing and chaining


def test_d1a_two_replaces_in_turn_both_accepted():
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.replace("Y", "X", 8000)) == [(PRPL, PRPL, 10000, 1000, 9000, 0)]
    assert rows(d.v_fill("X", 500)) == [("TRADE", PRPL, 10000, 1500, 8500, 500)]
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 8000, 1500, 6500, 0)]
    assert rows(d.v_fill("Y", 2000)) == [("TRADE", PF, 8000, 3500, 4500, 2000)]
    rep = d.replace("Z", "Y", 6000)
    assert rows(rep) == [(PRPL, PRPL, 8000, 3500, 4500, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Z", "Y")
    assert rows(d.v_fill("Y", 500)) == [("TRADE", PRPL, 8000, 4000, 4000, 500)]
    rep = d.v_replaced("Y")
    assert rows(rep) == [("REPLACED", PF, 6000, 4000, 2000, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Z", "Y")
    assert rows(d.v_fill("Z", 2000)) == [("TRADE", FILLED, 6000, 6000, 0, 2000)]


def test_d1b_first_replace_rejected_before_pending_second_accepted():
    d = acked()
    d.v_fill("X", 1000)
    rep = d.replace("Y", "X", 8000, "100.001")  # off tick: refused by the OMS itself
    assert rows(rep) == [("CxlRej", PF, 99)]
    assert "tick" in rep[0].text
    assert rows(d.v_fill("X", 500)) == [("TRADE", PF, 10000, 1500, 8500, 500)]
    assert rows(d.v_fill("X", 2000)) == [("TRADE", PF, 10000, 3500, 6500, 2000)]
    rep = d.replace("Z", "X", 6000)
    assert rows(rep) == [(PRPL, PRPL, 10000, 3500, 6500, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Z", "X")
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 6000, 3500, 2500, 0)]
    assert rows(d.v_fill("Z", 1500)) == [("TRADE", PF, 6000, 5000, 1000, 1500)]


def test_d1c_first_replace_rejected_after_pending_second_accepted():
    d = acked()
    d.v_fill("X", 1000)
    d.replace("Y", "X", 8000)
    assert rows(d.v_fill("X", 500)) == [("TRADE", PRPL, 10000, 1500, 8500, 500)]
    rep = d.v_cxl_reject("X", "refused")
    assert rows(rep) == [("CxlRej", PF, 2)]
    assert rep[0].orig_cl_ord_id == "X"
    assert rows(d.v_fill("X", 2000)) == [("TRADE", PF, 10000, 3500, 6500, 2000)]
    assert rows(d.replace("Z", "X", 6000)) == [(PRPL, PRPL, 10000, 3500, 6500, 0)]
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 6000, 3500, 2500, 0)]
    assert rows(d.v_fill("Z", 1500)) == [("TRADE", PF, 6000, 5000, 1000, 1500)]


def test_d2d_second_replace_while_pending_is_rejected():
    """Invariant 10: the OMS rejects a second replace while one is pending (D.2.d)."""
    d = acked()
    d.v_fill("X", 1000)
    assert rows(d.replace("Y", "X", 8000)) == [(PRPL, PRPL, 10000, 1000, 9000, 0)]
    rep = d.replace("Z", "Y", 7000)  # chained optimistically to Y
    assert rows(rep) == [("CxlRej", PRPL, 3)]
    assert rep[0].orig_cl_ord_id == "X"  # the last accepted ClOrdID
    assert rows(d.v_replaced("X")) == [("REPLACED", PF, 8000, 1000, 7000, 0)]
    assert rows(d.v_fill("Y", 2000)) == [("TRADE", PF, 8000, 3000, 5000, 2000)]


# ---------------------------------------------------------------- F reject


def test_f1a_duplicate_cl_ord_id_carries_existing_status():
    d = acked()
    d.v_fill("X", 1000)
    before = d.book()
    rep = d.nos("X", 15000)
    assert rows(rep) == [(REJ, PF, 10000, 1000, 9000, 0)]
    assert rep[0].ord_rej_reason == 6
    assert d.book() == before
    assert len(d.engine.state.orders) == 1


def test_f1b_poss_resend():
    d = acked()
    assert rows(d.nos("X", 10000, poss_resend=True)) == [("ORDER_STATUS", NEW, 10000, 0, 10000, 0)]
    rep = d.nos("X", 20000)
    assert rows(rep) == [(REJ, NEW, 10000, 0, 10000, 0)]
    assert rep[0].ord_rej_reason == 6
    assert rows(d.nos("Y", 15000, poss_resend=True)) == [(PN, PN, 15000, 0, 15000, 0)]  # never seen: new
    assert rows(d.v_ack("Y")) == [(NEW, NEW, 15000, 0, 15000, 0)]
    assert len(d.engine.state.orders) == 2


# ---------------------------------------------------------------- G status


def test_g1a_status_of_unknown_order():
    d = Desk()
    rep = d.status("Y")
    assert rows(rep) == [("ORDER_STATUS", REJ, 0, 0, 0, 0)]
    assert rep[0].ord_rej_reason == 5


def test_g1b_g1c_status_through_the_order_life():
    d = Desk()
    d.nos("X", 10000)
    assert rows(d.status("X")) == [("ORDER_STATUS", PN, 10000, 0, 10000, 0)]
    d.v_ack("X")
    assert rows(d.status("X")) == [("ORDER_STATUS", NEW, 10000, 0, 10000, 0)]
    d.v_fill("X", 10000)
    assert rows(d.status("X")) == [("ORDER_STATUS", FILLED, 10000, 10000, 0, 0)]
    assert rows(d.replace("Y", "X", 12000)) == [
        (PRPL, PRPL, 10000, 10000, 0, 0),  # G.1.c row 14
        ("REPLACED", PF, 12000, 10000, 2000, 0),  # row 15
    ]
    rep = d.status("X")  # row 17: asked on X, answered with ClOrdID Y, OrigClOrdID X
    assert rows(rep) == [("ORDER_STATUS", PF, 12000, 10000, 2000, 0)]
    assert (rep[0].cl_ord_id, rep[0].orig_cl_ord_id) == ("Y", "X")


# ---------------------------------------------------------------- I time in force


def test_i1a_fok_cannot_be_filled():
    d = Desk()
    d.nos("X", 10000, tif=TimeInForce.FOK)
    assert rows(d.v_ack("X")) == [(NEW, NEW, 10000, 0, 10000, 0)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 0, 0, 0)]


def test_i1a_fok_killed_by_venue_without_ack():
    d = Desk()
    d.nos("X", 10000, tif=TimeInForce.FOK)
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 0, 0, 0)]


def test_i1b_ioc_remainder_canceled():
    d = acked()
    assert rows(d.v_fill("X", 1000)) == [("TRADE", PF, 10000, 1000, 9000, 1000)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 1000, 0, 0)]


def test_exchange_variant_first_report_is_a_fill():
    d = Desk()
    d.nos("X", 10000, ord_type=OrdType.MARKET, price=None)
    assert rows(d.v_fill("X", 7000)) == [("TRADE", PF, 10000, 7000, 3000, 7000)]  # S2 A.1.d
    assert rows(d.v_fill("X", 3000)) == [("TRADE", FILLED, 10000, 10000, 0, 3000)]


# ---------------------------------------------------------------- J execution cancels/corrects


def test_j1a_fills_busted_and_corrected():
    d = acked()
    c = d.v_fill("X", 1000, "100", exec_id="C")
    assert rows(c) == [("TRADE", PF, 10000, 1000, 9000, 1000)] and c[0].avg_px == 100
    dd = d.v_fill("X", 9000, "110", exec_id="D")
    assert rows(dd) == [("TRADE", FILLED, 10000, 10000, 0, 9000)] and dd[0].avg_px == 109
    e = d.v_bust("X", "C")
    assert rows(e) == [("TRADE_CANCEL", PF, 10000, 9000, 1000, 0)]  # Filled -> PF
    assert e[0].avg_px == 110 and e[0].exec_ref_id == c[0].exec_id
    f = d.v_correct("X", "D", 9000, "100", exec_id="F")
    assert rows(f) == [("TRADE_CORRECT", PF, 10000, 9000, 1000, 9000)]
    assert f[0].avg_px == 100 and f[0].exec_ref_id == dd[0].exec_id
    g = d.v_fill("X", 1000, "120", exec_id="G")
    assert rows(g) == [("TRADE", FILLED, 10000, 10000, 0, 1000)] and g[0].avg_px == 102
    h = d.v_correct("X", "F", 9000, "120", exec_id="H")  # corrects the correction
    assert rows(h) == [("TRADE_CORRECT", FILLED, 10000, 10000, 0, 9000)]
    assert h[0].avg_px == 120 and h[0].exec_ref_id == f[0].exec_id
    assert rows(d.replace("Y", "X", 12000)) == [
        (PRPL, PRPL, 10000, 10000, 0, 0),
        ("REPLACED", PF, 12000, 10000, 2000, 0),
    ]


def test_j1b_canceled_order_then_bust_and_late_fill():
    d = acked()
    b = d.v_fill("X", 5000, "50", exec_id="B")
    assert rows(b) == [("TRADE", PF, 10000, 5000, 5000, 5000)]
    assert rows(d.cancel("Y", "X")) == [(PCXL, PCXL, 10000, 5000, 5000, 0)]
    assert rows(d.v_canceled("X")) == [(CXL, CXL, 10000, 5000, 0, 0)]
    assert rows(d.v_bust("X", "B")) == [("TRADE_CANCEL", CXL, 10000, 0, 0, 0)]
    late = d.v_fill("X", 4000, "51")
    assert rows(late) == [("TRADE", CXL, 10000, 4000, 0, 4000)]  # late fills still count
    assert late[0].avg_px == 51


def test_j1d_done_for_day_then_correction_and_bust():
    d = acked()
    d.v_fill("X", 2000, "100", exec_id="a")
    d.v_fill("X", 1000, "101", exec_id="b")
    assert rows(d.v_done_for_day("X")) == [(DFD, DFD, 10000, 3000, 0, 0)]
    assert rows(d.v_correct("X", "a", 1500, "100")) == [("TRADE_CORRECT", DFD, 10000, 2500, 0, 1500)]
    assert rows(d.v_bust("X", "b")) == [("TRADE_CANCEL", DFD, 10000, 1500, 0, 0)]


def test_each_venue_exec_id_applies_once():
    d = acked()
    d.v_fill("X", 1000, exec_id="dup")
    before = d.engine.state.state_hash()
    assert d.v_fill("X", 1000, exec_id="dup") == []
    assert d.engine.state.state_hash() == before
    assert d.engine.duplicate_venue_execs == 1


def test_gtd_order_expires_at_its_time_and_its_child_is_canceled():
    d = Desk()
    d.nos("G", 1000, tif=TimeInForce.GTD, expire_time=d.now + 5_000_000_000)
    d.v_ack("G")
    d.v_fill("G", 200)
    assert d.run(Timer()) == []  # not yet
    d.now += 6_000_000_000
    assert rows(d.run(Timer())) == [("EXPIRED", "EXPIRED", 1000, 200, 0, 0)]
    assert d.child("G").status.name == PCXL
    assert d.v_canceled("G") == []
    assert rows(d.v_fill("G", 100)) == [("TRADE", "EXPIRED", 1000, 300, 0, 100)]  # a late fill still counts


def test_session_lost_cancels_the_sessions_working_orders():
    from oms.model import SessionLost

    d = acked()
    d.nos("Y", 500)
    d.v_fill("X", 10000)  # filled: nothing to cancel
    reps = d.run(SessionLost(session="CLIENT1"))
    assert rows(reps) == [(PCXL, PCXL, 500, 0, 500, 0)]
    # the trader's own ClOrdID, no OMS-made one it never sent, and the reason
    assert (reps[0].cl_ord_id, reps[0].orig_cl_ord_id, reps[0].text) == ("Y", None, "cancel on disconnect")
    done = d.v_canceled("Y")
    assert rows(done) == [(CXL, CXL, 500, 0, 0, 0)] and (done[0].cl_ord_id, done[0].orig_cl_ord_id) == ("Y", None)
