"""The router and multi-venue parent accounting at the engine, and venue down/up reconciliation."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from oms.model import Anomaly, ChildOrderSent, ChildStatusRequested, ExecType, MarketData, OrdStatus, Side, \
    VenueCancelReject, VenueExecReport, VenueStatus
from oms.router import BEST, SWEEP, plan
from oms.states import TERMINAL
from tests.harness import Desk, px, rows

Q = {"V1": MarketData(symbol="AAPL", venue="V1", bid=px("99.98"), ask=px("100.02"), bid_size=300, ask_size=200),
     "V2": MarketData(symbol="AAPL", venue="V2", bid=px("99.99"), ask=px("100.01"), bid_size=100, ask_size=100)}


def test_plan_direct_best_and_sweep():
    venues = ("V1", "V2")
    assert plan("V1", Side.BUY, 500, None, Q, venues, set(), "V1") == [("V1", 500)]
    assert plan(BEST, Side.BUY, 500, None, Q, venues, set(), "V1") == [("V2", 500)]
    assert plan(BEST, Side.SELL, 500, None, Q, venues, set(), "V1") == [("V2", 500)]
    assert plan(BEST, Side.BUY, 500, None, Q, venues, {"V2"}, "V1") == [("V1", 500)]  # V2 is down
    assert plan(SWEEP, Side.BUY, 250, None, Q, venues, set(), "V1") == [("V2", 100), ("V1", 150)]
    assert plan(SWEEP, Side.BUY, 500, None, Q, venues, set(), "V1") == [("V2", 300), ("V1", 200)]  # rest: best
    # the limit stops the sweep at 100.01: the rest goes to the best venue
    assert plan(SWEEP, Side.BUY, 250, px("100.01"), Q, venues, set(), "V1") == [("V2", 250)]
    assert plan(BEST, Side.BUY, 10, None, {}, venues, set(), "V1") == [("V1", 10)]  # no quotes: the default


def test_sweep_splits_and_the_parent_aggregates_the_children_exactly():
    d = Desk()
    for q in Q.values():
        d.run(q)
    d.nos("S1", 250, "100.02", ex_destination=SWEEP)
    kids = [e for e in d.events if isinstance(e, ChildOrderSent)]
    assert [(k.venue, k.qty) for k in kids] == [("V2", 100), ("V1", 150)]
    o = d.engine.state.find("CLIENT1", "S1")
    by_venue = {d.engine.state.children[c].venue: d.engine.state.children[c] for c in o.children}
    for venue, qty, price in (("V2", 100, "100.01"), ("V1", 150, "100.02")):
        ch = by_venue[venue]
        d.run(VenueExecReport(venue=venue, cl_ord_id=ch.cl_ord_id, exec_id=f"{venue}-a", exec_type=ExecType.NEW))
        d.run(VenueExecReport(venue=venue, cl_ord_id=ch.cl_ord_id, exec_id=f"{venue}-f", exec_type=ExecType.TRADE,
                              last_qty=qty, last_px=px(price)))
    last = d.reports[-1]
    assert (last.ord_status, last.cum_qty, last.leaves_qty) == (OrdStatus.FILLED, 250, 0)
    assert last.avg_px == Decimal("100.016")  # (100 x 100.01 + 150 x 100.02) / 250, exact
    assert sum(1 for r in d.reports if r.exec_type is ExecType.NEW) == 1  # one New for the parent


def _split(d: Desk, cl: str = "S1", qty: int = 250) -> list:
    """A SWEEP order split V2 100 / V1 150, both acknowledged: its children."""
    for q in Q.values():
        d.run(q)
    d.nos(cl, qty, "100.02", ex_destination=SWEEP)
    o = d.engine.state.find("CLIENT1", cl)
    kids = [d.engine.state.children[c] for c in o.children]
    for ch in kids:
        d.run(VenueExecReport(venue=ch.venue, cl_ord_id=ch.cl_ord_id, exec_id=f"{ch.venue}-a", exec_type=ExecType.NEW))
    return kids


def _venue(d: Desk, ch, exec_type: ExecType, **kw) -> None:
    """The venue of child `ch` answers our pending request (cancel) or reports on the child."""
    live = d.engine.state.children[ch.child_id]
    cl = live.pending_cl_ord_id if exec_type is ExecType.CANCELED else live.cl_ord_id
    d.run(VenueExecReport(venue=ch.venue, cl_ord_id=cl, exec_id=f"{ch.venue}-{len(d.events)}", exec_type=exec_type,
                          orig_cl_ord_id=live.cl_ord_id, **kw))


def _cxl_reject(d: Desk, ch, text: str) -> None:
    live = d.engine.state.children[ch.child_id]
    d.run(VenueCancelReject(venue=ch.venue, cl_ord_id=live.pending_cl_ord_id, orig_cl_ord_id=live.cl_ord_id,
                            reason=0, text=text))


def test_cancel_of_a_split_order_cancels_every_child():
    d = Desk()
    kids = _split(d)
    d.cancel("S3", "S1")
    assert d.reports[-1].ord_status is OrdStatus.PENDING_CANCEL
    for ch in kids:
        _venue(d, ch, ExecType.CANCELED)
    assert d.reports[-1].ord_status is OrdStatus.CANCELED
    assert sum(1 for r in d.reports if r.ord_status is OrdStatus.CANCELED) == 1  # once, after the last child


def test_replace_of_a_split_order_cancels_the_children_and_routes_the_new_terms():
    d = Desk()
    kids = _split(d)
    d.replace("S2", "S1", 400, "100.02")
    assert rows(d.reports[-1:]) == [("PENDING_REPLACE", "PENDING_REPLACE", 250, 0, 250, 0)]
    _venue(d, kids[0], ExecType.TRADE, last_qty=40, last_px=px("100.01"))  # a fill while the replace is pending
    assert rows(d.reports[-1:]) == [("TRADE", "PENDING_REPLACE", 250, 40, 210, 40)]  # old quantities (C.1.b)
    for ch in kids:
        _venue(d, ch, ExecType.CANCELED)
    assert rows(d.reports[-1:]) == [("REPLACED", "PARTIALLY_FILLED", 400, 40, 360, 0)]
    assert (d.reports[-1].cl_ord_id, d.reports[-1].orig_cl_ord_id) == ("S2", "S1")
    o = d.engine.state.find("CLIENT1", "S2")
    new = [d.engine.state.children[c] for c in o.children[2:]]
    assert sum(ch.qty for ch in new) == 360 and all(ch.price == px("100.02") for ch in new)  # the new leaves, routed
    for k, ch in enumerate(new):
        _venue(d, ch, ExecType.TRADE, last_qty=ch.qty, last_px=px("100.02"))
    last = d.reports[-1]
    assert (last.ord_status, last.cum_qty, last.leaves_qty) == (OrdStatus.FILLED, 400, 0)
    assert last.avg_px == (Decimal(40) * Decimal("100.01") + Decimal(360) * Decimal("100.02")) / 400


def test_split_replace_completes_when_a_child_filled_before_its_cancel():
    d = Desk()
    kids = _split(d)
    d.replace("S2", "S1", 300)
    _venue(d, kids[0], ExecType.TRADE, last_qty=100, last_px=px("100.01"))  # V2's child fills completely
    _cxl_reject(d, kids[0], "too late: filled")
    _venue(d, kids[1], ExecType.CANCELED)
    assert rows(d.reports[-1:]) == [("REPLACED", "PARTIALLY_FILLED", 300, 100, 200, 0)]
    o = d.engine.state.find("CLIENT1", "S2")
    assert sum(d.engine.state.children[c].qty for c in o.children[2:]) == 200


def test_split_replace_refused_by_a_venue_keeps_the_old_terms():
    d = Desk()
    kids = _split(d)
    d.replace("S2", "S1", 300, "100.02")
    _cxl_reject(d, kids[0], "venue will not cancel")
    _venue(d, kids[1], ExecType.CANCELED)
    rej = d.reports[-1]
    assert rej.msg_type == "9" and rej.ord_status is OrdStatus.NEW and rej.text == "V2 would not cancel its part of the order"
    o = d.engine.state.find("CLIENT1", "S1")
    assert (o.order_qty, o.status) == (250, OrdStatus.NEW)
    working = [ch for c in o.children if (ch := d.engine.state.children[c]).status not in TERMINAL]
    assert sum(ch.qty - ch.cum_qty for ch in working) == 250  # V1's 150 routed again at the old terms


def test_a_venue_reject_of_a_policy_routed_child_goes_to_the_next_venue():
    d = Desk()
    for q in Q.values():
        d.run(q)
    d.nos("B1", 100, "100.05", ex_destination=BEST)
    assert d.child("B1").venue == "V2"
    d.v_reject("B1", "V2: symbol halted")
    assert d.child("B1").venue == "V1" and d.child("B1").qty == 100  # re-routed, the trader sees nothing yet
    assert d.reports[-1].ord_status is OrdStatus.PENDING_NEW
    d.v_reject("B1", "V1: no")  # every venue refused: now the trader gets the reject
    assert rows(d.reports[-1:]) == [("REJECTED", "REJECTED", 100, 0, 0, 0)] and "V1: no" in d.reports[-1].text


def test_a_venue_reject_of_a_direct_order_goes_back_to_the_trader():
    d = Desk()
    d.nos("D1", 100, "100", ex_destination="V2")
    d.v_reject("D1", "V2: no")
    assert rows(d.reports[-1:]) == [("REJECTED", "REJECTED", 100, 0, 0, 0)]
    assert [e.venue for e in d.events if isinstance(e, ChildOrderSent)] == ["V2"]


def test_reroute_on_reject_can_be_switched_off():
    d = Desk()
    d.engine.ref = msgspec.structs.replace(d.engine.ref, reroute_on_reject=False)
    for q in Q.values():
        d.run(q)
    d.nos("B1", 100, "100.05", ex_destination=BEST)
    d.v_reject("B1", "V2: no")
    assert d.reports[-1].ord_status is OrdStatus.REJECTED


def test_venue_down_is_avoided_and_reconciled_when_it_is_back():
    d = Desk()
    for q in Q.values():
        d.run(q)
    d.nos("B1", 100, "100.05", ex_destination=BEST)
    ch = d.child("B1")
    assert ch.venue == "V2"
    d.v_ack("B1")
    d.run(VenueStatus(venue="V2", up=False))
    assert any(isinstance(e, Anomaly) and e.kind == "venue_down" for e in d.events)
    d.nos("B2", 10, "100.05", ex_destination=BEST)
    assert d.child("B2").venue == "V1"  # routed around the venue that is down
    d.run(VenueStatus(venue="V2", up=True))
    asks = [e for e in d.events if isinstance(e, ChildStatusRequested)]
    assert [(a.venue, a.cl_ord_id) for a in asks] == [("V2", ch.cl_ord_id)]
    # while it was down the venue filled 60 at 100.01 and then canceled the rest
    d.run(VenueExecReport(venue="V2", cl_ord_id=ch.cl_ord_id, exec_id="st1", exec_type=ExecType.ORDER_STATUS,
                          cum_qty=60, avg_px=px("100.01"), ord_status=OrdStatus.CANCELED))
    o = d.engine.state.find("CLIENT1", "B1")
    assert (o.cum_qty, o.status) == (60, OrdStatus.CANCELED)
    fill = [r for r in d.reports if r.exec_type is ExecType.TRADE][-1]
    assert (fill.last_qty, fill.last_px) == (60, px("100.01"))
