"""The Numba book against its plain-Python reference, and the book's invariants."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms.matching import (
    BUY, DAY, FOK, GTC, IOC, OP_ADD, OP_ADD_MARKET, OP_CANCEL, OP_COLUMNS, OP_REPLACE, SELL, STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_DECREMENT, STP_NONE, Book, BookError, BookFullError,
)
from oms.matching_codes import ERR_DUPLICATE, ERR_QTY, ERR_UNKNOWN, RESTED
from oms.matching_ref import RefBook

STP_MODES = [STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT]

op = st.one_of(
    st.tuples(st.just(OP_ADD), st.integers(0, 40), st.sampled_from([BUY, SELL]), st.integers(95, 105),
              st.integers(1, 30), st.sampled_from([DAY, GTC, IOC, FOK]), st.integers(0, 3)),
    st.tuples(st.just(OP_ADD_MARKET), st.integers(0, 40), st.sampled_from([BUY, SELL]), st.just(0),
              st.integers(1, 60), st.sampled_from([DAY, IOC, FOK]), st.integers(0, 3)),
    st.tuples(st.just(OP_CANCEL), st.integers(0, 40), st.just(0), st.just(0), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just(OP_REPLACE), st.integers(0, 40), st.just(0), st.integers(95, 105), st.integers(1, 30),
              st.just(0), st.just(0)),
)


def rows(a) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in r) for r in a]


def apply(book, o) -> tuple:
    """One operation on either book, as comparable plain data (errors included)."""
    kind, oid, side, price, qty, tif, owner = o
    try:
        if kind == OP_CANCEL:
            return ("cancel", book.cancel(oid))
        if kind == OP_REPLACE:
            r = book.replace(oid, qty, price)
        else:
            r = book.add(oid, side, price, qty, tif, owner, market=kind == OP_ADD_MARKET)
    except BookError as exc:
        return ("error", exc.code)
    return (r.status, rows(r.fills), rows(r.stp_cancels))


def total(snapshot) -> int:
    return sum(q for side in snapshot for _px, orders in side for _o, q, _w in orders)


def check_invariants(book: Book, before: int, o, result) -> None:
    snap = book.snapshot()
    bids, asks = snap
    # never rests crossed
    if bids and asks:
        assert bids[0][0] < asks[0][0]
    # every resting order has positive quantity, each id once
    ids = [oid for side in snap for _px, orders in side for oid, q, _w in orders]
    assert len(ids) == len(set(ids)) == len(book)
    assert all(q > 0 for side in snap for _px, orders in side for _o, q, _w in orders)
    # sides sorted best first
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    # l1 / l2 agree with the full book
    l1 = book.l1()
    assert l1[:2] == ((bids[0][0], sum(q for _o, q, _w in bids[0][1])) if bids else (0, 0))
    assert l1[2:] == ((asks[0][0], sum(q for _o, q, _w in asks[0][1])) if asks else (0, 0))
    if result[0] in ("cancel", "error"):
        expected = before - (result[1] if result[0] == "cancel" else 0)
        assert total(snap) == expected
        return
    kind, oid, side, price, qty, tif, _owner = o
    status, fills, stp = result
    # conservation: resting after = before - maker fills - maker decrements/cancels (+ what rested)
    maker_out = sum(f[3] for f in fills) + sum(s[1] for s in stp if s[0] != oid)
    taker_in = qty - sum(f[3] for f in fills) - sum(s[1] for s in stp if s[0] == oid)
    if kind == OP_REPLACE:
        return  # the replaced order left the book first; covered by the reference comparison
    rested = taker_in if status == RESTED else 0
    assert total(snap) == before - maker_out + rested
    if tif == FOK and kind == OP_ADD:
        assert sum(f[3] for f in fills) in (0, qty)  # all or nothing
    if tif in (IOC, FOK) or kind == OP_ADD_MARKET:
        assert book.order(oid) is None  # never rests
    # price priority: fill prices never get better for the taker
    px = [f[2] for f in fills]
    assert px == (sorted(px) if side == BUY else sorted(px, reverse=True))
    if kind == OP_ADD:
        assert all(p <= price if side == BUY else p >= price for p in px)


@pytest.mark.parametrize("stp_mode", STP_MODES)
@given(ops=st.lists(op, max_size=120))
def test_numba_book_equals_reference(stp_mode, ops):
    fast, ref = Book(stp_mode=stp_mode, capacity=4), RefBook(stp_mode=stp_mode)
    for o in ops:
        before = total(fast.snapshot())
        got = apply(fast, o)
        assert got == apply(ref, o), o
        assert fast.snapshot() == ref.snapshot()
        check_invariants(fast, before, o, got)
    assert fast.expire(DAY) == ref.expire(DAY)
    assert fast.snapshot() == ref.snapshot()
    for s in fast.snapshot():
        for _px, orders in s:
            for oid, _q, _w in orders:
                assert fast.order(oid).tif == GTC


@pytest.mark.parametrize("stp_mode", STP_MODES)
@given(ops=st.lists(op, max_size=150))
def test_batch_equals_one_by_one(stp_mode, ops):
    one, many = Book(stp_mode=stp_mode, capacity=4), Book(stp_mode=stp_mode, capacity=4)
    expected = [apply(one, o) for o in ops]
    arr = np.array(ops, dtype=np.int64).reshape(-1, OP_COLUMNS)
    res = many.batch(arr)
    for i, (o, exp) in enumerate(zip(ops, expected)):
        mine = res.rows[res.rows[:, 0] == i]
        fills = [tuple(r[[2, 3, 4, 5, 6, 7]]) for r in mine if r[1] == 0]
        stp = [tuple(r[[2, 5, 6]]) for r in mine if r[1] == 1]
        if exp[0] == "error":
            assert res.status[i] == exp[1]
        elif exp[0] == "cancel":
            assert res.status[i] == (0 if exp[1] else ERR_UNKNOWN)
        else:
            assert (int(res.status[i]), rows(fills), rows(stp)) == exp, o
    assert many.snapshot() == one.snapshot()


def test_price_time_priority_and_maker_price():
    b = Book()
    b.add(1, SELL, 101, 10)
    b.add(2, SELL, 100, 10)
    b.add(3, SELL, 100, 10)
    r = b.add(4, BUY, 101, 25)
    assert rows(r.fills) == [(4, 2, 100, 10, 15, 0), (4, 3, 100, 10, 5, 0), (4, 1, 101, 5, 0, 5)]


def test_replace_down_keeps_priority_up_or_price_loses_it():
    b = Book()
    for oid in (1, 2, 3):
        b.add(oid, BUY, 100, 10)
    b.replace(1, 5, 100)  # down: stays first
    b.replace(2, 20, 100)  # up: goes last
    b.replace(3, 10, 99)
    b.replace(3, 10, 100)  # price away and back: behind 2
    assert b.snapshot()[0] == [(100, [(1, 5, 0), (2, 20, 0), (3, 10, 0)])]
    assert [f[1] for f in b.add(9, SELL, 100, 35).fills] == [1, 2, 3]


def test_replace_that_crosses_trades_at_once():
    b = Book()
    b.add(1, SELL, 101, 10)
    b.add(2, BUY, 99, 10)
    r = b.replace(2, 10, 101)
    assert rows(r.fills) == [(2, 1, 101, 10, 0, 0)] and len(b) == 0


@pytest.mark.parametrize("mode,expected_stp,resting", [
    (STP_CANCEL_NEWEST, [(2, 10, 0)], [(1, 10)]),
    (STP_CANCEL_OLDEST, [(1, 10, 0)], [(2, 10)]),
    (STP_CANCEL_BOTH, [(1, 10, 0), (2, 10, 0)], []),
    (STP_DECREMENT, [(1, 10, 0), (2, 10, 0)], []),
])
def test_self_trade_prevention_modes(mode, expected_stp, resting):
    b = Book(stp_mode=mode)
    b.add(1, BUY, 100, 10, owner=7)
    r = b.add(2, SELL, 100, 10, owner=7)
    assert rows(r.fills) == [] and rows(r.stp_cancels) == expected_stp
    left = [(oid, q) for side in b.snapshot() for _px, orders in side for oid, q, _w in orders]
    assert left == resting
    assert rows(b.add(3, SELL, 100, 10, owner=8).fills) == ([(3, 1, 100, 10, 0, 0)] if resting == [(1, 10)] else [])


def test_fok_is_all_or_nothing_and_ioc_never_rests():
    b = Book()
    b.add(1, SELL, 100, 10)
    r = b.add(2, BUY, 100, 11, tif=FOK)
    assert rows(r.fills) == [] and b.order(1).qty == 10 and b.order(2) is None
    r = b.add(3, BUY, 101, 11, tif=IOC)
    assert rows(r.fills) == [(3, 1, 100, 10, 1, 0)] and b.order(3) is None and len(b) == 0


def test_market_order_sweeps_and_never_rests():
    b = Book()
    b.add(1, SELL, 100, 10)
    b.add(2, SELL, 105, 10)
    r = b.add(3, BUY, 0, 30, market=True)
    assert [f[3] for f in r.fills] == [10, 10] and len(b) == 0 and b.l1() == (0, 0, 0, 0)


def test_typed_rejections_leave_the_book_unchanged():
    b = Book()
    b.add(1, BUY, 100, 10)
    before = b.snapshot()
    with pytest.raises(BookError) as e:
        b.add(1, BUY, 100, 10)
    assert e.value.code == ERR_DUPLICATE
    with pytest.raises(BookError) as e:
        b.add(2, BUY, 100, 0)
    assert e.value.code == ERR_QTY
    with pytest.raises(BookError):
        b.replace(99, 10, 100)
    assert b.cancel(99) == 0
    assert b.snapshot() == before


def test_capacity_grows_without_losing_orders():
    b = Book(capacity=4)
    for oid in range(1000):
        b.add(oid, oid % 2, 1000 - oid if oid % 2 == 0 else 2000 + oid, 1 + oid % 7)
    assert len(b) == 1000 and b.orders.shape[0] >= 1000
    assert b.order(999).qty == 1 + 999 % 7
    assert sum(q for _p, q, _c in b.l2(10_000)[0]) == sum(1 + o % 7 for o in range(0, 1000, 2))


def test_a_full_book_fails_clearly_and_is_not_corrupted():
    b = Book(capacity=4, max_orders=8)
    for oid in range(8):
        b.add(oid, BUY, 100 + oid, 1)
    before = b.snapshot()
    with pytest.raises(BookFullError, match="maximum"):
        b.add(8, BUY, 50, 1)
    assert b.snapshot() == before
    assert b.replace(0, 1, 40).rested  # a replace frees its own slot first
    r = b.add(9, SELL, 107, 1)  # a taker that removes an order still works
    assert len(r.fills) == 1 and len(b) == 7
    b.add(10, BUY, 50, 1)
    ops = np.array([[OP_ADD, 100 + i, BUY, 10, 1, DAY, 0] for i in range(3)], dtype=np.int64)
    with pytest.raises(BookFullError, match="after applying 0"):
        b.batch(ops)
    assert len(b) == 8
