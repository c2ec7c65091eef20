"""Pre-trade check kernel (Numba) over packed exposure and limit arrays, and its
plain-Python reference. A basket is checked in one call, each order consuming limits
for the ones after it; one order is checked on its own without building a batch.

All arrays live in one int64 arena (so a call unboxes one array), as views
(A accounts, I instruments, C = KERNEL_CONTROLS):
  orders  (N, 7)   account, instrument, side (+1 buy, -1 sell), short (0/1), qty,
                   price (limit, or the reference for a market order), market (0/1)
  lim     (C, A, I) hard limits, UNLIMITED where none
  soft    (C,)     soft level in bps of the hard limit, 0 for none
  book    (5, A, I) position, working buys, working sells, locate used, cash (what fills
                   paid and received: post-trade P&L, no pre-trade control reads it)
  acct    (4, A)   open order notional, executed notional, open order count, signed open
                   notional (buys less sells)
  inst    (2, I)   reference price (0: none), average daily volume (0: unknown)
Money is fixed point (1e-6), as prices are. Figures saturate at +-MAX_FIGURE
(oms.saturating), above every limit, and so do the exposure sums. Result rows: control
that rejected (-1: pass), soft-alert bit mask, the figure that breached and the limit it
breached.
"""
from __future__ import annotations

import numpy as np
from numba import literally, njit

from oms.saturating import ceil_bps, clamp, fits, largest, plus, sat_add, sat_mul, sat_sum, times
from risk.controls import KERNEL_CONTROLS, UNLIMITED, Control

R_REASON, R_ALERTS, R_OBSERVED, R_LIMIT = range(4)
HEADER = 2  # the arena starts with (accounts, instruments)
B_POS, B_BUYS, B_SELLS, B_LOCATE, B_CASH = range(5)
BOOK_PLANES = 5
A_OPEN, A_EXEC, A_COUNT, A_NET_OPEN = range(4)
I_REF, I_ADV = range(2)

_ORDER = np.array([Control.RESTRICTED, Control.LOCATE, Control.PRICE_MIN, Control.PRICE_MAX, Control.PRICE_COLLAR,
                   Control.MAX_QTY, Control.MAX_NOTIONAL, Control.MAX_ADV, Control.MAX_OPEN_ORDERS,
                   Control.POSITION_LONG, Control.POSITION_SHORT, Control.CREDIT, Control.GROSS_EXPOSURE,
                   Control.NET_EXPOSURE, Control.FIRM_GROSS], dtype=np.int64)
assert len(_ORDER) == KERNEL_CONTROLS


@njit(cache=True)
def _exposure(book, acct, inst, a, gross):
    """Account a's open orders plus its positions at reference prices: gross (|position|) or net."""
    start = acct[A_OPEN if gross else A_NET_OPEN, a]
    if fits(book.shape[2] + 1, max(largest(book[B_POS, a]), abs(start)), largest(inst[I_REF]) + 1):
        return _positions_value(book, inst, a, gross, start, True)
    return _positions_value(book, inst, a, gross, start, False)


@njit(cache=True)
def _positions_value(book, inst, a, gross, start, plain):
    literally(plain)
    e = start
    for i in range(book.shape[2]):
        p = book[B_POS, a, i]
        e = plus(e, times(abs(p) if gross else p, inst[I_REF, i], plain), plain)
    return e


@njit(cache=True)
def _observe(book, acct, inst, a, i, side, short, qty, px, market, c):
    """(applies, figure) of control c for the order, the order included."""
    if c == 0:
        return True, 1  # compared with 0 when restricted
    if c == 1:
        return short != 0, sat_add(book[B_LOCATE, a, i], qty)
    if c == 2 or c == 3:
        return market == 0, px
    if c == 4:
        ref = inst[I_REF, i]
        return market == 0 and ref > 0, ceil_bps(abs(px - ref), max(ref, 1))
    if c == 5:
        return True, qty
    if c == 6:
        return True, sat_mul(qty, px)
    if c == 7:
        adv = inst[I_ADV, i]
        return adv > 0, ceil_bps(qty, max(adv, 1))
    if c == 8:
        return True, acct[A_COUNT, a] + 1
    if c == 9:
        return True, sat_add(sat_add(book[B_POS, a, i], book[B_BUYS, a, i]), qty if side > 0 else 0)
    if c == 10:
        return True, sat_add(sat_add(-book[B_POS, a, i], book[B_SELLS, a, i]), qty if side < 0 else 0)
    if c == 11:
        return True, sat_add(sat_add(acct[A_OPEN, a], acct[A_EXEC, a]), sat_mul(qty, px))
    if c == 12:
        return True, sat_add(_exposure(book, acct, inst, a, True), sat_mul(qty, px))
    if c == 13:
        return True, abs(sat_add(_exposure(book, acct, inst, a, False), side * sat_mul(qty, px)))
    g = sat_mul(qty, px)  # c == 14
    for b in range(book.shape[1]):
        g = sat_add(g, _exposure(book, acct, inst, b, True))
    return True, g


@njit(cache=True)
def _check_one(lim, soft, book, acct, inst, a, i, side, short, qty, px, market, skip):
    alerts = 0
    for k in range(_ORDER.shape[0]):
        c = _ORDER[k]
        hard = lim[c, a, i]
        if hard == UNLIMITED or skip >> c & 1:
            continue  # an unset limit (no figure can pass it, so none is computed), or one not asked for
        applies, seen = _observe(book, acct, inst, a, i, side, short, qty, px, market, c)
        if not applies:
            continue
        if (seen < hard) if c == 2 else (seen > hard):
            return c, alerts, seen, hard
        if soft[c] > 0 and c != 2 and seen > hard // 10000 * soft[c] + hard % 10000 * soft[c] // 10000:
            alerts |= 1 << c
    return -1, alerts, 0, 0


@njit(cache=True)
def views(arena):
    """The arrays of the module docstring, carved out of one arena (no copies)."""
    n_a, n_i = arena[0], arena[1]
    k = HEADER
    lim = arena[k:k + KERNEL_CONTROLS * n_a * n_i].reshape((KERNEL_CONTROLS, n_a, n_i))
    k += KERNEL_CONTROLS * n_a * n_i
    soft = arena[k:k + KERNEL_CONTROLS]
    k += KERNEL_CONTROLS
    book = arena[k:k + BOOK_PLANES * n_a * n_i].reshape((BOOK_PLANES, n_a, n_i))
    k += BOOK_PLANES * n_a * n_i
    acct = arena[k:k + 4 * n_a].reshape((4, n_a))
    k += 4 * n_a
    inst = arena[k:k + 2 * n_i].reshape((2, n_i))
    return lim, soft, book, acct, inst


def new_arena(accounts: int, instruments: int) -> np.ndarray:
    size = (HEADER + (KERNEL_CONTROLS + BOOK_PLANES) * accounts * instruments + KERNEL_CONTROLS + 4 * accounts
            + 2 * instruments)
    arena = np.zeros(size, np.int64)
    arena[0], arena[1] = accounts, instruments
    return arena


@njit(cache=True)
def check_one(arena, a, i, side, short, qty, px, market):
    """One order: (control that rejected or -1, soft-alert mask, figure, limit)."""
    lim, soft, book, acct, inst = views(arena)
    return _check_one(lim, soft, book, acct, inst, a, i, side, short, qty, px, market, 0)


@njit(cache=True)
def check_orders(arena, orders, out, skip, restore):
    """Check orders in sequence; each passing order consumes its limits (working
    quantity, open notional, open orders, locate) for the ones after it, in the arena.
    skip: a bit mask of controls not to check. restore: put back what the orders moved
    once all are checked (the values found, not a subtraction: a saturated sum does not
    come back by one), so the arena is left as it was: a what-if with no copy of it."""
    lim, soft, book, acct, inst = views(arena)
    n = orders.shape[0]
    saved = np.empty((n if restore else 0, 7), np.int64)
    for j in range(n):
        reason, alerts, seen, hard = _check_one(lim, soft, book, acct, inst, orders[j, 0], orders[j, 1], orders[j, 2],
                                                orders[j, 3], orders[j, 4], orders[j, 5], orders[j, 6], skip)
        out[j, R_REASON] = reason
        out[j, R_ALERTS] = alerts
        out[j, R_OBSERVED] = seen
        out[j, R_LIMIT] = hard
        if reason == -1 and (restore or j < n - 1):
            a, i = orders[j, 0], orders[j, 1]
            if restore:
                saved[j, 0], saved[j, 1], saved[j, 2] = book[B_BUYS, a, i], book[B_SELLS, a, i], book[B_LOCATE, a, i]
                saved[j, 3:] = acct[:, a]
            qty = orders[j, 4]
            _moved(book, acct, a, i, orders[j, 2], orders[j, 3], qty, sat_mul(qty, orders[j, 5]), 0, 0, 1)
    for j in range(saved.shape[0] - 1, -1, -1):
        if out[j, R_REASON] == -1:
            a, i = orders[j, 0], orders[j, 1]
            book[B_BUYS, a, i], book[B_SELLS, a, i], book[B_LOCATE, a, i] = saved[j, 0], saved[j, 1], saved[j, 2]
            acct[:, a] = saved[j, 3:]
    return out


@njit(cache=True)
def order_moved(arena, a, i, side, short, d_working, d_open, d_cum, d_value, d_count):
    """An order's working quantity, open notional, CumQty, cum value and liveness changed
    by these amounts: move what it counts in."""
    _lim, _soft, book, acct, _inst = views(arena)
    _moved(book, acct, a, i, side, short, d_working, d_open, d_cum, d_value, d_count)


@njit(cache=True)
def _moved(book, acct, a, i, side, short, d_working, d_open, d_cum, d_value, d_count):
    w = B_BUYS if side > 0 else B_SELLS
    book[w, a, i] = sat_add(book[w, a, i], d_working)
    book[B_POS, a, i] = sat_add(book[B_POS, a, i], side * d_cum)
    book[B_CASH, a, i] = sat_add(book[B_CASH, a, i], -side * d_value)  # buys pay, sells receive
    acct[A_OPEN, a] = sat_add(acct[A_OPEN, a], d_open)
    acct[A_NET_OPEN, a] = sat_add(acct[A_NET_OPEN, a], side * d_open)
    acct[A_EXEC, a] = sat_add(acct[A_EXEC, a], d_value)
    acct[A_COUNT, a] += d_count
    if short:
        book[B_LOCATE, a, i] = sat_add(book[B_LOCATE, a, i], sat_add(d_working, d_cum))


# ---------------------------------------------------------------------- reference
def check_orders_ref(orders, lim, soft, book, acct, inst, skip: int = 0) -> list[tuple[int, int, int, int]]:
    """Plain Python ints: list each applicable control's (figure, limit), first breach wins;
    each sum and product saturated at the step the kernel saturates it."""
    pos, buys, sells, located, _cash = ([[int(x) for x in row] for row in plane] for plane in book)
    open_notional, executed, count, net_open = ([int(x) for x in row] for row in acct)
    ref, adv = [int(x) for x in inst[0]], [int(x) for x in inst[1]]
    results = []
    for a, i, side, short, qty, px, market in (tuple(int(x) for x in r) for r in orders):
        def gross(b: int) -> int:
            return sat_sum([open_notional[b]] + [clamp(abs(p) * r) for p, r in zip(pos[b], ref)])

        def bps(x: int, base: int) -> int:
            return clamp(-(-x * 10000 // base))

        notional = clamp(qty * px)
        net = sat_sum([net_open[a]] + [clamp(p * r) for p, r in zip(pos[a], ref)])
        figures = [
            (Control.RESTRICTED, 1),
            (Control.LOCATE, clamp(located[a][i] + qty) if short else None),
            (Control.PRICE_MIN, None if market else px),
            (Control.PRICE_MAX, None if market else px),
            (Control.PRICE_COLLAR, None if market or ref[i] <= 0 else bps(abs(px - ref[i]), ref[i])),
            (Control.MAX_QTY, qty),
            (Control.MAX_NOTIONAL, notional),
            (Control.MAX_ADV, bps(qty, adv[i]) if adv[i] > 0 else None),
            (Control.MAX_OPEN_ORDERS, count[a] + 1),
            (Control.POSITION_LONG, sat_sum([pos[a][i], buys[a][i], qty if side > 0 else 0])),
            (Control.POSITION_SHORT, sat_sum([-pos[a][i], sells[a][i], qty if side < 0 else 0])),
            (Control.CREDIT, sat_sum([open_notional[a], executed[a], notional])),
            (Control.GROSS_EXPOSURE, clamp(gross(a) + notional)),
            (Control.NET_EXPOSURE, abs(clamp(net + side * notional))),
            (Control.FIRM_GROSS, sat_sum([notional] + [gross(b) for b in range(len(open_notional))])),
        ]
        verdict, alerts = (-1, 0, 0), 0
        for c, seen in figures:
            hard = int(lim[c, a, i])
            if seen is None or skip >> c & 1 or hard == UNLIMITED:
                continue
            if (seen < hard) if c is Control.PRICE_MIN else (seen > hard):
                verdict = (int(c), seen, hard)
                break
            level = int(soft[c])
            if level and c is not Control.PRICE_MIN and seen > hard * level // 10000:
                alerts |= 1 << c
        if verdict[0] == -1:
            working = buys if side > 0 else sells
            working[a][i] = clamp(working[a][i] + qty)
            if short:
                located[a][i] = clamp(located[a][i] + qty)
            open_notional[a] = clamp(open_notional[a] + notional)
            count[a] += 1
            net_open[a] = clamp(net_open[a] + side * notional)
        results.append((verdict[0], alerts, verdict[1], verdict[2]))
    return results
