"""Positions and P&L: average cost accounting is exact; the Numba mark-to-market (full and
incremental) equals its plain-Python reference."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from oms.positions import Book, apply_fill, mark_to_market_ref

fills = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(-300, 300).filter(bool),
                           st.integers(1, 500)), max_size=60)


def test_average_cost_realized_and_unrealized():
    q, c, r = apply_fill(0, 0, 100, 100 * 100)
    assert (q, c, r) == (100, 10_000, 0)
    q, c, r = apply_fill(q, c, -40, 40 * 110)
    assert (q, c, r) == (60, 6_000, 400)
    q, c, r = apply_fill(q, c, -100, 100 * 90)  # through flat: 60 closed, 40 short at 90
    assert (q, c, r) == (-40, -3_600, 60 * 90 - 6_000)
    q, c, r = apply_fill(-100, -10_000, 40, 40 * 90)
    assert (q, c, r) == (-60, -6_000, 400)  # a short bought back cheaper


@given(fills, st.booleans())
def test_cash_identity_holds_after_every_fill(seq, whole_prices):
    """realized - cost basis == cash paid and received, exactly, whatever the fills, also
    when a fill's value is not a whole price per share (an allocation's share of a block)."""
    q = c = realized = cash = 0
    for _a, _i, qty, px in seq:
        value = abs(qty) * px if whole_prices else abs(qty) * px + px % 7
        q, c, r = apply_fill(q, c, qty, value)
        realized += r
        cash -= value if qty > 0 else -value
        assert realized - c == cash
        assert (q == 0) == (c == 0)


@given(fills, st.lists(st.tuples(st.integers(0, 3), st.integers(1, 600)), max_size=10))
def test_mark_to_market_kernels_equal_the_reference(seq, updates):
    rates = np.array([[1_000_000, 1_080_000, 1_000_000, 925_926]] * 2 + [[925_926, 1_000_000, 925_926, 1_000_000]],
                     np.int64)
    b = Book(["A", "B", "C"], ["W", "X", "Y", "Z"], rates)
    b.marks[:] = [100, 0, 250, 7]
    b.mark_all()
    for a, i, qty, px in seq:
        b.fill("ABC"[a], "WXYZ"[i], qty, abs(qty) * px)
    for i, m in updates:
        b.prices(np.array([i], np.int64), np.array([m], np.int64))
    cells, totals = mark_to_market_ref(b.qty, b.cost, b.marks, b.rates)
    assert b.unrealized.tolist() == cells and b.account_unrealized.tolist() == totals
    b.mark_all()
    assert b.unrealized.tolist() == cells and b.account_unrealized.tolist() == totals


@given(fills, st.lists(st.booleans(), max_size=60))
def test_cash_identity_holds_with_transfers_too(seq, transfers):
    """Transfers mixed with fills: the cash identity holds and the cost basis keeps the
    position's sign; a transfer out of a position realizes nothing while it stays open."""
    b = Book(["A"], ["W"])
    cash = 0
    for (_a, _i, qty, px), transfer in zip(seq, transfers + [False] * len(seq)):
        q0, c0, r0 = int(b.qty[0, 0]), int(b.cost[0, 0]), int(b.realized[0, 0])
        (b.transfer if transfer else b.fill)("A", "W", qty, abs(qty) * px)
        inside = q0 and (q0 > 0) != (qty > 0) and abs(qty) < abs(q0) and abs(qty) * px < abs(c0)
        if transfer and inside:
            assert int(b.realized[0, 0]) == r0 and int(b.cost[0, 0]) == c0 - (1 if q0 > 0 else -1) * abs(qty) * px
        cash -= abs(qty) * px if qty > 0 else -abs(qty) * px
        assert int(b.realized[0, 0]) - int(b.cost[0, 0]) == cash
        assert (b.qty[0, 0] == 0) == (b.cost[0, 0] == 0)


def test_streamed_positions_follow_corrections_allocations_and_cancels_exactly():
    """The publisher's positions, fed the engine's events: a correction that raises the
    quantity and lowers the value; a block allocated out of an account that holds other
    shares of the symbol (it keeps their cost, realizes nothing); the allocation canceled."""
    from gateways.nats_stream import NatsStreamer
    from oms.model import Allocate, AllocationTarget, CancelAllocation
    from tests.harness import Desk, px

    d = Desk()
    book = Book(["ACC1", "ACC2", "OTHER"], ["AAPL", "MSFT"])
    streamer = NatsStreamer("nats://127.0.0.1:1", Path("unused"), Path("/nonexistent"), positions=book)

    def feed() -> None:
        for ev in d.events[feed.done:]:
            list(streamer._messages(ev))
        feed.done = len(d.events)
    feed.done = 0

    d.nos("C1", 200, "101")
    d.v_ack("C1")
    d.v_fill("C1", 100, "100", exec_id="f1")
    d.v_correct("C1", "f1", 110, "90", exec_id="f1c")  # 100 @ 100 -> 110 @ 90
    feed()
    assert (int(book.qty[0, 0]), int(book.cost[0, 0])) == (110, 110 * px("90"))
    d.nos("C2", 100, "111")
    d.v_ack("C2")
    d.v_fill("C2", 100, "110", exec_id="f2")
    o2 = d.engine.state.find("CLIENT1", "C2")
    d.events += d.engine.handle(Allocate(user="pm", alloc_id="A", order_id=o2.order_id, method="ratio",
                                         targets=(AllocationTarget("ACC2", 1),)))
    feed()
    assert (int(book.qty[0, 0]), int(book.cost[0, 0]), int(book.realized[0, 0])) == (110, 110 * px("90"), 0)
    assert (int(book.qty[1, 0]), int(book.cost[1, 0])) == (100, 100 * px("110"))
    d.events += d.engine.handle(CancelAllocation(user="pm", alloc_id="A"))
    feed()
    assert (int(book.qty[0, 0]), int(book.cost[0, 0]), int(book.realized[0, 0])) == (
        210, 110 * px("90") + 100 * px("110"), 0)
    assert (int(book.qty[1, 0]), int(book.cost[1, 0]), int(book.realized[1, 0])) == (0, 0, 0)
