"""The router and multi-venue parent accounting at the engine, and venue down/up reconciliation."""
from __future__ import annotations

from decimal import Decimal

from oms.model import Anomaly, ChildOrderSent, ChildStatusRequested, ExecType, MarketData, OrdStatus, Side, \
    VenueExecReport, VenueStatus
from oms.router import BEST, SWEEP, plan
from tests.harness import Desk, px

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


def test_cancel_of_a_split_order_cancels_every_child_and_replace_is_refused():
    d = Desk()
    for q in Q.values():
        d.run(q)
    d.nos("S1", 250, "100.02", ex_destination=SWEEP)
    o = d.engine.state.find("CLIENT1", "S1")
    kids = [d.engine.state.children[c] for c in o.children]
    for ch in kids:
        d.run(VenueExecReport(venue=ch.venue, cl_ord_id=ch.cl_ord_id, exec_id=f"{ch.venue}-a", exec_type=ExecType.NEW))
    rep = d.replace("S2", "S1", 300, "100.02")
    assert rep[0].msg_type == "9" and "split across venues" in rep[0].text
    d.cancel("S3", "S1")
    for ch in kids:
        d.run(VenueExecReport(venue=ch.venue, cl_ord_id=d.engine.state.children[ch.child_id].pending_cl_ord_id,
                              exec_id=f"{ch.venue}-c", exec_type=ExecType.CANCELED, orig_cl_ord_id=ch.cl_ord_id))
    assert d.reports[-1].ord_status is OrdStatus.CANCELED
    assert sum(1 for r in d.reports if r.ord_status is OrdStatus.CANCELED) == 1  # once, after the last child


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
