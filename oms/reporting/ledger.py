"""Positions for the reports: `oms.positions.Ledger`'s moves as one Numba kernel over
packed rows (a row per fill report, restatement, allocation move or split, in journal
order), exact in int64 fixed point for figures within MAX_MONEY.

The positions stream follows `Ledger` event by event; a report over a million orders
cannot afford a Python call per fill. `Ledger` is this kernel's plain-Python reference:
a property test holds the kernel's book, gross fills per venue and realized P&L curve
equal to what `Ledger` gives for the same events, so the report ties out with the stream.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from oms.fixed import MAX_FIGURE
from oms.saturating import mul_div

REPORT, RESTATED, FILL, TRANSFER, SPLIT, MOVED = 0, 1, 2, 3, 4, 5  # kinds of row
SCALE = 1_000_000


@njit(cache=True, inline="always")
def clamp_nb(x):
    return max(-MAX_FIGURE, min(MAX_FIGURE, x))


@njit(cache=True)
def _fill(qty, cost, realized, a, i, q, value):
    """Book.fill: apply_fill, each figure then kept in range."""
    q0, c0 = qty[a, i], cost[a, i]
    sign = 1 if q > 0 else -1
    if q0 == 0 or (q0 > 0) == (q > 0):
        q1, c1, r = q0 + q, c0 + sign * value, 0
    else:
        closing = min(abs(q), abs(q0))
        released = mul_div(abs(c0), closing, abs(q0)) if closing < abs(q0) else abs(c0)
        closing_value = mul_div(value, closing, abs(q)) if closing < abs(q) else value
        side = -sign
        r = side * (closing_value - released)
        q1, c1 = q0 + sign * closing, c0 - side * released
        rest = abs(q) - closing
        if rest:
            q1, c1 = sign * rest, sign * (value - closing_value)
    qty[a, i], cost[a, i] = clamp_nb(q1), clamp_nb(c1)
    realized[a, i] = clamp_nb(realized[a, i] + r)


@njit(cache=True)
def _transfer(qty, cost, realized, a, i, q, value):
    """Book.transfer: shares leaving at exactly value, realizing nothing (else a fill)."""
    q0, c0 = qty[a, i], cost[a, i]
    q1, c1 = q0 + q, c0 + (value if q > 0 else -value)
    reduces = q0 != 0 and (q0 > 0) != (q > 0) and abs(q) <= abs(q0)
    if not reduces or (q1 != 0 and (c1 == 0 or (c1 > 0) != (q1 > 0))):
        _fill(qty, cost, realized, a, i, q, value)
        return
    if q1 == 0:
        realized[a, i] = clamp_nb(realized[a, i] - c1)
        c1 = 0
    qty[a, i], cost[a, i] = clamp_nb(q1), clamp_nb(c1)


@njit(cache=True)
def _at_venue(gross, a, i, v, buy, q, value):
    """Book.at_venue: (bought, sold, buy value, sell value) of a position at a venue."""
    if buy:
        gross[a, i, v, 0] += q
        gross[a, i, v, 2] += value
    else:
        gross[a, i, v, 1] += q
        gross[a, i, v, 3] += value


@njit(cache=True)
def moves(kind, seq, ts, a, i, q, value, order, venue, ends, start_ts, open_at, close_at, qty, cost, realized, gross,
          rates, opening, opening_gross, closing_gross, curve):
    """Apply the rows in order to the book (qty, cost, realized: accounts x instruments;
    gross: x venues x 4). REPORT: a fill report, q and value its CumQty and value, order
    the order's number (its change since the last one counted moves the position); RESTATED:
    a corporate action restating an order's figures; FILL/TRANSFER: an allocation's move
    (q signed); SPLIT: q new for value old; MOVED: an allocation's marker. `ends`: the last
    row of an event. Opening and closing copies are taken before the first row past
    open_at / close_at; each event from start_ts on that moved positions adds a point
    (ts, realized P&L of all accounts in base currency) to curve; their number is returned."""
    n_orders = 1 + (order.max() if order.shape[0] else 0)
    counted = np.zeros(n_orders, np.bool_)
    cum = np.zeros(n_orders, np.int64)
    val = np.zeros(n_orders, np.int64)
    last = realized.copy()
    total, points, first, opened, closed, moved = 0, 0, 0, False, False, False
    for r in range(kind.shape[0] + 1):
        if not opened and (r == kind.shape[0] or seq[r] > open_at):
            opening[0], opening[1], opening[2] = qty, cost, realized
            opening_gross[:] = gross.sum(axis=2)
            last[:] = realized
            opened = True
        if not closed and (r == kind.shape[0] or seq[r] > close_at):
            closing_gross[:] = gross.sum(axis=2)
            closed = True
        if r == kind.shape[0]:
            break
        k = kind[r]
        if k == REPORT:
            o = order[r]
            d_qty, d_value = q[r] - cum[o], value[r] - val[o]
            c_qty, c_value = cum[o], val[o]
            counted[o], cum[o], val[o] = True, q[r], value[r]
            sign = 1 if ends[r] & 2 else -1  # bit 1 of ends: a buy
            if d_qty and (d_qty > 0) == (d_value > 0):
                _fill(qty, cost, realized, a[r], i[r], sign * d_qty, abs(d_value))
            elif d_qty or d_value:
                if c_qty:
                    _fill(qty, cost, realized, a[r], i[r], -sign * c_qty, c_value)
                if q[r]:
                    _fill(qty, cost, realized, a[r], i[r], sign * q[r], value[r])
            _at_venue(gross, a[r], i[r], venue[r], sign > 0, d_qty, d_value)
            moved = True
        elif k == RESTATED:
            o = order[r]
            if counted[o]:
                cum[o], val[o] = q[r], value[r]
        elif k == FILL or k == TRANSFER:
            if k == FILL:
                _fill(qty, cost, realized, a[r], i[r], q[r], value[r])
            else:
                _transfer(qty, cost, realized, a[r], i[r], q[r], value[r])
            _at_venue(gross, a[r], i[r], venue[r], q[r] > 0, abs(q[r]), value[r])
            moved = True
        elif k == SPLIT:
            c = i[r]
            qty[:, c] = qty[:, c] * q[r] // value[r]
            gross[:, c, :, :2] = gross[:, c, :, :2] * q[r] // value[r]
            moved = True
        else:
            moved = True
        if ends[r] & 1:
            if moved and ts[r] >= start_ts:
                for e in range(first, r + 1):
                    if kind[e] == REPORT or kind[e] == FILL or kind[e] == TRANSFER:
                        x, y = a[e], i[e]
                        total += mul_div(realized[x, y] - last[x, y], rates[x, y], SCALE)
                        last[x, y] = realized[x, y]
                curve[points, 0], curve[points, 1] = ts[r], total
                points += 1
            first, moved = r + 1, False
    return points
