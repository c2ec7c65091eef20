"""Internal crossing at the engine: resting CROSS orders, BEST/SWEEP orders crossing them
first at the resting price in price-time priority, never an account with itself, and
every side's FIX reports and parent/child accounting exact."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from oms.model import ChildOrderSent, ExecType, MarketData, OrdStatus, OrdType, Side, TimeInForce, Timer
from oms.router import BEST, CROSS, INTERNAL, SWEEP
from tests.harness import Desk, px, rows

QUOTES = [MarketData(symbol="AAPL", venue="V1", bid=px("99.98"), ask=px("100.02"), bid_size=300, ask_size=300),
          MarketData(symbol="AAPL", venue="V2", bid=px("99.99"), ask=px("100.03"), bid_size=300, ask_size=300)]


def desk() -> Desk:
    d = Desk()
    d.engine.ref = msgspec.structs.replace(d.engine.ref, internal_cross=True)
    for q in QUOTES:
        d.run(q)
    return d


def order(d: Desk, cl: str):
    return d.engine.state.find("CLIENT1", cl)


def sent(d: Desk) -> list[tuple[str, int]]:
    return [(e.venue, e.qty) for e in d.events if isinstance(e, ChildOrderSent)]


def test_a_cross_order_rests_inside_the_oms_and_is_acknowledged():
    d = desk()
    reps = d.nos("R1", 300, "100", ex_destination=CROSS, account="ACC1")
    assert rows(reps) == [("PENDING_NEW", "PENDING_NEW", 300, 0, 300, 0), ("NEW", "NEW", 300, 0, 300, 0)]
    assert sent(d) == [(INTERNAL, 300)]  # no venue sees it
    assert list(d.engine.state.internal["AAPL"]) == order(d, "R1").children


def test_a_routed_order_crosses_resting_orders_first_at_their_price_and_routes_the_rest():
    d = desk()
    d.nos("R1", 300, "100", ex_destination=CROSS, account="ACC1")  # buy 300 @ 100 resting
    reps = d.nos("S1", 500, "99.99", side=Side.SELL, ex_destination=SWEEP, account="ACC2")
    seller = [r for r in reps if r.cl_ord_id == "S1"]
    buyer = [r for r in reps if r.cl_ord_id == "R1"]
    assert rows(buyer) == [("TRADE", "FILLED", 300, 300, 0, 300)] and buyer[0].last_px == px("100")
    assert rows(seller) == [("PENDING_NEW", "PENDING_NEW", 500, 0, 500, 0),
                            ("TRADE", "PARTIALLY_FILLED", 500, 300, 200, 300)]
    assert seller[-1].last_px == px("100")  # the resting order's limit: price improvement for the seller
    assert sent(d)[1:] == [(INTERNAL, 300), ("V2", 200)]  # the 200 left go to the street (V2 bids best)
    s = order(d, "S1")
    kids = [d.engine.state.children[c] for c in s.children]
    assert sum(k.cum_qty for k in kids) == s.cum_qty == 300 and s.cum_value == 300 * px("100")
    assert "AAPL" not in d.engine.state.internal or not d.engine.state.internal["AAPL"]  # R1 is done


def test_price_time_priority_and_partial_fills_of_resting_orders():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("B2", 100, "100.01", ex_destination=CROSS, account="ACC1")
    d.nos("B3", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("S1", 250, "100", side=Side.SELL, ex_destination=BEST, account="ACC2")
    fills = [(r.cl_ord_id, r.last_qty, r.last_px) for r in d.reports if r.exec_type is ExecType.TRADE and
             r.cl_ord_id != "S1"]
    assert fills == [("B2", 100, px("100.01")), ("B1", 100, px("100")), ("B3", 50, px("100"))]
    b3 = order(d, "B3")
    assert (b3.status, b3.cum_qty) == (OrdStatus.PARTIALLY_FILLED, 50)
    s = order(d, "S1")
    assert s.status is OrdStatus.FILLED
    assert d.reports[-1].avg_px == Decimal("100.004")  # (100 x 100.01 + 150 x 100) / 250, exact


def test_no_account_crosses_with_itself_and_a_price_that_does_not_reach_does_not_trade():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("S1", 100, "99.99", side=Side.SELL, ex_destination=BEST, account="ACC1")  # the same account
    d.nos("S2", 100, "100.01", side=Side.SELL, ex_destination=BEST, account="ACC2")  # above the bid
    assert order(d, "B1").cum_qty == 0 and order(d, "S1").cum_qty == 0 and order(d, "S2").cum_qty == 0
    assert [v for v, _q in sent(d)][1:] == ["V2", "V2"]  # both went to the street (V2 bids best)


def test_two_cross_orders_cross_and_an_unmatched_ioc_cross_is_canceled():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    reps = d.nos("S1", 60, "100", side=Side.SELL, ex_destination=CROSS, account="ACC2")
    assert rows([r for r in reps if r.cl_ord_id == "S1"])[-1] == ("TRADE", "FILLED", 60, 60, 0, 60)
    reps = d.nos("S2", 100, "101", side=Side.SELL, ex_destination=CROSS, account="ACC2", tif=TimeInForce.IOC)
    assert rows(reps)[-1] == ("CANCELED", "CANCELED", 100, 0, 0, 0)
    reps = d.nos("S3", 100, None, side=Side.SELL, ord_type=OrdType.MARKET, ex_destination=CROSS, account="ACC2")
    assert rows(reps)[-2:] == [("TRADE", "PARTIALLY_FILLED", 100, 40, 60, 40), ("CANCELED", "CANCELED", 100, 40, 0, 0)]


def test_fok_crosses_only_when_it_can_fill_entirely_inside():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("S1", 300, "99.98", side=Side.SELL, ex_destination=BEST, account="ACC2", tif=TimeInForce.FOK)
    assert order(d, "B1").cum_qty == 0 and sent(d)[-1] == ("V2", 300)  # all of it to the street
    d.nos("S2", 100, "99.98", side=Side.SELL, ex_destination=BEST, account="ACC2", tif=TimeInForce.FOK)
    assert order(d, "S2").status is OrdStatus.FILLED


def test_cancel_replace_and_end_of_day_of_a_resting_cross_order():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("B2", 100, "100", ex_destination=CROSS, account="ACC1")
    reps = d.replace("B3", "B1", 200, "100")  # a larger quantity goes to the back of the queue
    assert rows(reps) == [("PENDING_REPLACE", "PENDING_REPLACE", 100, 0, 100, 0), ("REPLACED", "NEW", 200, 0, 200, 0)]
    assert [d.engine.state.children[c].order_id for c in d.engine.state.internal["AAPL"]] == \
        [order(d, "B2").order_id, order(d, "B3").order_id]
    reps = d.cancel("C2", "B2")
    assert rows(reps) == [("PENDING_CANCEL", "PENDING_CANCEL", 100, 0, 100, 0), ("CANCELED", "CANCELED", 100, 0, 0, 0)]
    d.run(Timer(end_of_day=True))
    assert order(d, "B3").status is OrdStatus.DONE_FOR_DAY and not d.engine.state.internal["AAPL"]


def test_cross_needs_internal_crossing_and_a_report_claiming_to_be_internal_is_refused():
    d = Desk()
    rej = d.nos("X1", 100, "100", ex_destination=CROSS)
    assert rej[-1].ord_status is OrdStatus.REJECTED and "ExDestination" in rej[-1].text
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    ch = d.child("B1")
    from oms.model import VenueExecReport

    before = d.engine.state.state_hash()
    d.run(VenueExecReport(venue=INTERNAL, cl_ord_id=ch.cl_ord_id, exec_id="fake", exec_type=ExecType.TRADE,
                          last_qty=100, last_px=px("100")))
    assert d.engine.state.state_hash() == before


def test_the_crossing_book_is_rebuilt_by_replay():
    d = desk()
    d.nos("B1", 100, "100", ex_destination=CROSS, account="ACC1")
    d.nos("B2", 100, "100.01", ex_destination=CROSS, account="ACC1")
    d.nos("S1", 150, "100", side=Side.SELL, ex_destination=SWEEP, account="ACC2")
    fresh = d.replayed().state
    assert fresh.state_hash() == d.engine.state.state_hash()
    assert fresh.internal == d.engine.state.internal and list(fresh.internal["AAPL"]) == order(d, "B1").children
