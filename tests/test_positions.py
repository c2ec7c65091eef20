"""Positions and P&L: average cost accounting is exact; the Numba mark-to-market (full and
incremental) equals its plain-Python reference."""
from __future__ import annotations

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
