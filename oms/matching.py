"""Price-time-priority limit order book in Numba over packed numpy arrays.

State is six int64 arrays: an order pool (FIFO linked lists per price level), a level
pool, a ladder per side (level indices sorted by price, best last, so taking the best
level is O(1), with their sort keys alongside for a contiguous binary search), an open-addressing id table, a small meta vector and an output buffer of
fill and self-trade rows. Every operation first checks that it has room (a free order
slot, a free level, table load, output rows for every order it could touch); if not, it
changes nothing and the Python wrapper grows the arrays and retries, or raises
BookFullError at the configured maximum. The semantics are those of `oms.matching_ref`,
which the property tests hold this module to.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from oms.matching_codes import (
    BUY, DAY, DONE, ERR_BAD_ID, ERR_DUPLICATE, ERR_KIND, ERR_PRICE, ERR_QTY, ERR_SIDE, ERR_TIF, ERR_UNKNOWN, FOK,
    GTC, IOC, OP_ADD, OP_ADD_MARKET, OP_CANCEL, OP_REPLACE, RESTED, SELL, STP_CANCEL_BOTH, STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST, STP_DECREMENT, STP_NONE, BookError, BookFullError, Resting, error_text,
)

NEED_ROOM = 2  # internal status: nothing done, grow and retry

# order pool columns
O_OID, O_SIDE, O_PRICE, O_QTY, O_OWNER, O_TIF, O_NEXT, O_PREV, O_LEVEL, O_SEQ = range(10)
# level pool columns (L_HEAD doubles as the free-list link)
L_PRICE, L_QTY, L_COUNT, L_HEAD, L_TAIL = range(5)
# meta vector
M_LIVE, M_SEQ, M_OFREE, M_LFREE, M_NBID, M_NASK, M_HCOUNT, M_STP, M_OUTN, M_ARG, M_OCAP, M_HCAP = range(12)
META = 16
# output rows: (op index, kind, a, b, price, qty, a remaining, b remaining)
ROW_FILL, ROW_STP = 0, 1
R_OP, R_KIND, R_A, R_B, R_PX, R_QTY, R_AREM, R_BREM = range(8)
# batch operation columns
C_KIND, C_OID, C_SIDE, C_PRICE, C_QTY, C_TIF, C_OWNER = range(7)
OP_COLUMNS = 7


# ---------------------------------------------------------------------- id table
@njit(cache=True, inline="always")
def _home(key, mask):
    """Near-identity with a stride of two: the dense, increasing ids a venue assigns land in
    neighbouring even slots (cache-friendly, collision-free) and leave the odd ones free, so
    probe and delete runs stay short at the table's load of at most one half."""
    return ((key ^ (key >> 21) ^ (key >> 42)) << 1) & mask


@njit(cache=True, inline="always")
def _find(table, key):
    mask = table.shape[0] - 1
    i = _home(key, mask)
    while True:
        k = table[i, 0]
        if k == key:
            return table[i, 1]
        if k == -1:
            return -1
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def _put(table, meta, key, val):
    mask = table.shape[0] - 1
    i = _home(key, mask)
    while table[i, 0] != -1:
        i = (i + 1) & mask
    table[i, 0] = key
    table[i, 1] = val
    meta[M_HCOUNT] += 1


@njit(cache=True, inline="always")
def _delete(table, meta, key):
    """Linear-probing delete with backward shift: no tombstones, probes stay short."""
    mask = table.shape[0] - 1
    i = _home(key, mask)
    while table[i, 0] != key:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        k = table[j, 0]
        if k == -1:
            break
        h = _home(k, mask)
        if (j > i and (h <= i or h > j)) or (j < i and h <= i and h > j):
            table[i, 0] = k
            table[i, 1] = table[j, 1]
            i = j
    table[i, 0] = -1
    meta[M_HCOUNT] -= 1


@njit(cache=True)
def _rehash(old, new):
    mask = new.shape[0] - 1
    for r in range(old.shape[0]):
        k = old[r, 0]
        if k != -1:
            i = _home(k, mask)
            while new[i, 0] != -1:
                i = (i + 1) & mask
            new[i, 0] = k
            new[i, 1] = old[r, 1]


# ---------------------------------------------------------------------- levels
@njit(cache=True, inline="always")
def _key(side, px):
    return px if side == 0 else -px


@njit(cache=True, inline="always")
def _lower_bound(ladder, side, n, key):
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if ladder[2 + side, mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _level_for(levels, ladder, meta, side, price):
    n = meta[M_NBID + side]
    key = _key(side, price)
    if n > 0 and ladder[2 + side, n - 1] == key:
        return ladder[side, n - 1]
    pos = _lower_bound(ladder, side, n, key)
    if pos < n and ladder[2 + side, pos] == key:
        return ladder[side, pos]
    lv = meta[M_LFREE]
    meta[M_LFREE] = levels[lv, L_HEAD]
    levels[lv, L_PRICE] = price
    levels[lv, L_QTY] = 0
    levels[lv, L_COUNT] = 0
    levels[lv, L_HEAD] = -1
    levels[lv, L_TAIL] = -1
    for j in range(n, pos, -1):
        ladder[side, j] = ladder[side, j - 1]
        ladder[2 + side, j] = ladder[2 + side, j - 1]
    ladder[side, pos] = lv
    ladder[2 + side, pos] = key
    meta[M_NBID + side] = n + 1
    return lv


@njit(cache=True, inline="always")
def _drop_level(levels, ladder, meta, side, lv):
    n = meta[M_NBID + side]
    pos = n - 1
    if ladder[side, pos] != lv:
        pos = _lower_bound(ladder, side, n, _key(side, levels[lv, L_PRICE]))
    for j in range(pos, n - 1):
        ladder[side, j] = ladder[side, j + 1]
        ladder[2 + side, j] = ladder[2 + side, j + 1]
    meta[M_NBID + side] = n - 1
    levels[lv, L_HEAD] = meta[M_LFREE]
    meta[M_LFREE] = lv


# ---------------------------------------------------------------------- orders
@njit(cache=True, inline="always")
def _rest(orders, levels, ladder, table, meta, oid, side, price, qty, owner, tif):
    s = meta[M_OFREE]
    meta[M_OFREE] = orders[s, O_NEXT]
    lv = _level_for(levels, ladder, meta, side, price)
    tail = levels[lv, L_TAIL]
    meta[M_SEQ] += 1
    orders[s, O_OID] = oid
    orders[s, O_SIDE] = side
    orders[s, O_PRICE] = price
    orders[s, O_QTY] = qty
    orders[s, O_OWNER] = owner
    orders[s, O_TIF] = tif
    orders[s, O_NEXT] = -1
    orders[s, O_PREV] = tail
    orders[s, O_LEVEL] = lv
    orders[s, O_SEQ] = meta[M_SEQ]
    if tail == -1:
        levels[lv, L_HEAD] = s
    else:
        orders[tail, O_NEXT] = s
    levels[lv, L_TAIL] = s
    levels[lv, L_QTY] += qty
    levels[lv, L_COUNT] += 1
    _put(table, meta, oid, s)
    meta[M_LIVE] += 1


@njit(cache=True, inline="always")
def _unlink(orders, levels, ladder, table, meta, s):
    lv = orders[s, O_LEVEL]
    p = orders[s, O_PREV]
    nx = orders[s, O_NEXT]
    if p == -1:
        levels[lv, L_HEAD] = nx
    else:
        orders[p, O_NEXT] = nx
    if nx == -1:
        levels[lv, L_TAIL] = p
    else:
        orders[nx, O_PREV] = p
    levels[lv, L_QTY] -= orders[s, O_QTY]
    levels[lv, L_COUNT] -= 1
    if levels[lv, L_COUNT] == 0:
        _drop_level(levels, ladder, meta, orders[s, O_SIDE], lv)
    _delete(table, meta, orders[s, O_OID])
    orders[s, O_OID] = -1
    orders[s, O_NEXT] = meta[M_OFREE]
    meta[M_OFREE] = s
    meta[M_LIVE] -= 1


@njit(cache=True, inline="always")
def _emit(out, meta, op, kind, a, b, px, qty, arem, brem):
    n = meta[M_OUTN]
    out[n, R_OP] = op
    out[n, R_KIND] = kind
    out[n, R_A] = a
    out[n, R_B] = b
    out[n, R_PX] = px
    out[n, R_QTY] = qty
    out[n, R_AREM] = arem
    out[n, R_BREM] = brem
    meta[M_OUTN] = n + 1


@njit(cache=True, inline="always")
def _crosses(side, price, market, level_px):
    return market or (level_px <= price if side == 0 else level_px >= price)


@njit(cache=True, inline="always")
def _reachable(levels, ladder, meta, side, price, market):
    """Resting orders (count, quantity) an incoming order could meet: bounds what it may need."""
    other = 1 - side
    count = 0
    qty = 0
    for p in range(meta[M_NBID + other] - 1, -1, -1):
        lv = ladder[other, p]
        if not _crosses(side, price, market, levels[lv, L_PRICE]):
            break
        count += levels[lv, L_COUNT]
        qty += levels[lv, L_QTY]
    return count, qty


@njit(cache=True, inline="always")
def _fok_fillable(orders, levels, ladder, meta, side, price, qty, owner, market):
    stp = meta[M_STP]
    other = 1 - side
    check_self = stp != STP_NONE and owner != 0
    got = 0
    for p in range(meta[M_NBID + other] - 1, -1, -1):
        lv = ladder[other, p]
        if not _crosses(side, price, market, levels[lv, L_PRICE]):
            return False
        if not check_self:
            got += levels[lv, L_QTY]
            if got >= qty:
                return True
            continue
        m = levels[lv, L_HEAD]
        while m != -1:
            if orders[m, O_OWNER] == owner:
                if stp != STP_CANCEL_OLDEST:
                    return False
            else:
                got += orders[m, O_QTY]
                if got >= qty:
                    return True
            m = orders[m, O_NEXT]
    return False


@njit(cache=True, inline="always")
def _enter(orders, levels, ladder, table, meta, out, op, oid, side, price, qty, tif, owner, market):
    """Match an incoming order against the other side, then rest what a Day/GTC limit leaves."""
    if tif == FOK and not _fok_fillable(orders, levels, ladder, meta, side, price, qty, owner, market):
        return DONE
    stp = meta[M_STP]
    other = 1 - side
    rem = qty
    killed = False
    while rem > 0 and not killed:
        n = meta[M_NBID + other]
        if n == 0:
            break
        lv = ladder[other, n - 1]
        lpx = levels[lv, L_PRICE]
        if not _crosses(side, price, market, lpx):
            break
        m = levels[lv, L_HEAD]
        while m != -1 and rem > 0:
            nxt = orders[m, O_NEXT]
            mq = orders[m, O_QTY]
            moid = orders[m, O_OID]
            taken = 0  # what leaves the maker: traded, decremented or canceled
            if stp != STP_NONE and owner != 0 and orders[m, O_OWNER] == owner:
                if stp == STP_CANCEL_NEWEST:
                    _emit(out, meta, op, ROW_STP, oid, moid, lpx, rem, 0, mq)
                    rem = 0
                    killed = True
                elif stp == STP_CANCEL_OLDEST:
                    _emit(out, meta, op, ROW_STP, moid, oid, lpx, mq, 0, rem)
                    taken = mq
                elif stp == STP_CANCEL_BOTH:
                    _emit(out, meta, op, ROW_STP, moid, oid, lpx, mq, 0, rem)
                    _emit(out, meta, op, ROW_STP, oid, moid, lpx, rem, 0, 0)
                    taken = mq
                    rem = 0
                    killed = True
                else:  # decrement both by the smaller quantity
                    taken = min(rem, mq)
                    rem -= taken
                    _emit(out, meta, op, ROW_STP, moid, oid, lpx, taken, mq - taken, rem)
                    _emit(out, meta, op, ROW_STP, oid, moid, lpx, taken, rem, mq - taken)
            else:
                taken = min(rem, mq)
                rem -= taken
                _emit(out, meta, op, ROW_FILL, oid, moid, lpx, taken, rem, mq - taken)
            if taken == mq:
                _unlink(orders, levels, ladder, table, meta, m)
            else:
                orders[m, O_QTY] = mq - taken
                levels[lv, L_QTY] -= taken
            if killed:
                break
            m = nxt
    if rem > 0 and not killed and not market and (tif == DAY or tif == GTC):
        _rest(orders, levels, ladder, table, meta, oid, side, price, rem, owner, tif)
        return RESTED
    return DONE


@njit(cache=True, inline="always")
def _has_room(levels, ladder, table, meta, out, side, price, qty, owner, market, may_rest):
    """Nothing is touched unless every resource the operation could need is there. An order
    that cannot rest, or that the reachable quantity surely fills, needs no slot (a replace
    frees its own first)."""
    count, reach = _reachable(levels, ladder, meta, side, price, market)
    rows = 2 * count + 2
    meta[M_ARG] = rows
    if out.shape[0] - meta[M_OUTN] < rows:
        return False
    if may_rest and reach >= qty and (meta[M_STP] == STP_NONE or owner == 0):
        may_rest = False
    return not may_rest or (meta[M_OFREE] != -1 and meta[M_LFREE] != -1 and 2 * (meta[M_HCOUNT] + 1) <= table.shape[0])


@njit(cache=True)
def _apply(orders, levels, ladder, table, meta, out, op, kind, oid, side, price, qty, tif, owner):
    if kind == OP_CANCEL:
        s = _find(table, oid) if oid >= 0 else -1
        if s < 0:
            meta[M_ARG] = 0
            return ERR_UNKNOWN
        meta[M_ARG] = orders[s, O_QTY]
        _unlink(orders, levels, ladder, table, meta, s)
        return DONE
    if kind == OP_REPLACE:
        s = _find(table, oid) if oid >= 0 else -1
        if s < 0:
            return ERR_UNKNOWN
        if qty <= 0:
            return ERR_QTY
        if price <= 0:
            return ERR_PRICE
        if price == orders[s, O_PRICE] and qty <= orders[s, O_QTY]:
            levels[orders[s, O_LEVEL], L_QTY] -= orders[s, O_QTY] - qty
            orders[s, O_QTY] = qty
            return RESTED
        side = orders[s, O_SIDE]
        tif = orders[s, O_TIF]
        owner = orders[s, O_OWNER]
        if not _has_room(levels, ladder, table, meta, out, side, price, qty, owner, False, False):
            return NEED_ROOM
        _unlink(orders, levels, ladder, table, meta, s)
        return _enter(orders, levels, ladder, table, meta, out, op, oid, side, price, qty, tif, owner, False)
    if kind != OP_ADD and kind != OP_ADD_MARKET:
        return ERR_KIND
    market = kind == OP_ADD_MARKET
    if oid < 0:
        return ERR_BAD_ID
    if side != BUY and side != SELL:
        return ERR_SIDE
    if tif < DAY or tif > FOK:
        return ERR_TIF
    if qty <= 0:
        return ERR_QTY
    if not market and price <= 0:
        return ERR_PRICE
    if _find(table, oid) >= 0:
        return ERR_DUPLICATE
    if not _has_room(levels, ladder, table, meta, out, side, price, qty, owner, market,
                     not market and (tif == DAY or tif == GTC)):
        return NEED_ROOM
    return _enter(orders, levels, ladder, table, meta, out, op, oid, side, price, qty, tif, owner, market)


@njit(cache=True, inline="always")
def _views(arena):
    """The state arrays, carved out of the one arena (no copies)."""
    meta = arena[:META]
    ocap, hcap = meta[M_OCAP], meta[M_HCAP]
    a = META
    orders = arena[a:a + ocap * 10].reshape((ocap, 10))
    a += ocap * 10
    levels = arena[a:a + ocap * 5].reshape((ocap, 5))
    a += ocap * 5
    ladder = arena[a:a + ocap * 4].reshape((4, ocap))
    a += ocap * 4
    table = arena[a:a + hcap * 2].reshape((hcap, 2))
    return orders, levels, ladder, table, meta


@njit(cache=True)
def _one(arena, out, kind, oid, side, price, qty, tif, owner):
    orders, levels, ladder, table, meta = _views(arena)
    meta[M_OUTN] = 0
    return _apply(orders, levels, ladder, table, meta, out, 0, kind, oid, side, price, qty, tif, owner)


@njit(cache=True)
def _batch(arena, out, ops, status, start):
    """Apply ops[start:] in order; stop at the first that needs room and return its index."""
    orders, levels, ladder, table, meta = _views(arena)
    for i in range(start, ops.shape[0]):
        st = _apply(orders, levels, ladder, table, meta, out, i, ops[i, C_KIND], ops[i, C_OID], ops[i, C_SIDE],
                    ops[i, C_PRICE], ops[i, C_QTY], ops[i, C_TIF], ops[i, C_OWNER])
        if st == NEED_ROOM:
            return i
        status[i] = st
    return ops.shape[0]


@njit(cache=True)
def _expire(arena, tif):
    orders, levels, ladder, table, meta = _views(arena)
    slots = np.empty(meta[M_LIVE], np.int64)
    n = 0
    for s in range(orders.shape[0]):
        if orders[s, O_OID] != -1 and orders[s, O_TIF] == tif:
            slots[n] = s
            n += 1
    slots = slots[:n]
    slots = slots[np.argsort(orders[slots, O_SEQ])]
    gone = np.empty((n, 2), np.int64)
    for r in range(n):
        s = slots[r]
        gone[r, 0] = orders[s, O_OID]
        gone[r, 1] = orders[s, O_QTY]
        _unlink(orders, levels, ladder, table, meta, s)
    return gone


@njit(cache=True)
def _depth(orders, levels, ladder, meta, side, depth, with_orders):
    """Best-first levels (price, qty, count) and, when asked, their orders (level, oid, qty, owner)."""
    n = meta[M_NBID + side]
    k = min(depth, n)
    rows = np.empty((k, 3), np.int64)
    total = 0
    for r in range(k):
        lv = ladder[side, n - 1 - r]
        rows[r, 0] = levels[lv, L_PRICE]
        rows[r, 1] = levels[lv, L_QTY]
        rows[r, 2] = levels[lv, L_COUNT]
        total += levels[lv, L_COUNT]
    members = np.empty((total if with_orders else 0, 4), np.int64)
    if with_orders:
        i = 0
        for r in range(k):
            m = levels[ladder[side, n - 1 - r], L_HEAD]
            while m != -1:
                members[i, 0] = r
                members[i, 1] = orders[m, O_OID]
                members[i, 2] = orders[m, O_QTY]
                members[i, 3] = orders[m, O_OWNER]
                i += 1
                m = orders[m, O_NEXT]
    return rows, members


# ---------------------------------------------------------------------- Python API
class Result(NamedTuple):
    """One operation: its status, fills (taker, maker, px, qty, taker left, maker left) and
    self-trade rows (oid canceled or decremented, qty removed, qty left)."""

    status: int
    rows: np.ndarray

    @property
    def rested(self) -> bool:
        return self.status == RESTED

    @property
    def fills(self) -> np.ndarray:
        r = self.rows[self.rows[:, R_KIND] == ROW_FILL]
        return r[:, [R_A, R_B, R_PX, R_QTY, R_AREM, R_BREM]]

    @property
    def stp_cancels(self) -> np.ndarray:
        r = self.rows[self.rows[:, R_KIND] == ROW_STP]
        return r[:, [R_A, R_QTY, R_AREM]]


class BatchResult(NamedTuple):
    status: np.ndarray  # per operation
    rows: np.ndarray  # output rows, R_OP naming the operation


class Book:
    """One instrument's book. Prices and quantities are fixed-point integers.

    All state lives in one int64 arena, so a call from Python unboxes a single array."""

    def __init__(self, stp_mode: int = STP_NONE, capacity: int = 1024, max_orders: int = 50_000_000) -> None:
        if stp_mode not in (STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT):
            raise ValueError(f"unknown self-trade prevention mode {stp_mode}")
        self.max_orders = max_orders
        self.arena = np.zeros(0, np.int64)
        cap = max(4, min(capacity, max_orders))
        self.out = np.zeros((256, 8), np.int64)  # output rows of the last call; not state
        self._allocate(cap, _pow2(2 * cap), previous=None)
        self.meta[M_STP] = stp_mode

    def _allocate(self, ocap: int, hcap: int, previous: tuple | None) -> None:
        """A new arena of the given capacities, carrying over the previous state if any."""
        arena = np.full(META + ocap * 19 + hcap * 2, -1, np.int64)
        arena[:META] = 0
        arena[M_OCAP], arena[M_HCAP] = ocap, hcap
        orders, levels, ladder, table, meta = _views(arena)
        old_cap = 0
        if previous is not None:
            p_orders, p_levels, p_ladder, p_table, p_meta = previous
            old_cap = p_orders.shape[0]
            meta[:M_OCAP] = p_meta[:M_OCAP]
            orders[:old_cap] = p_orders
            levels[:old_cap] = p_levels
            ladder[:, :old_cap] = p_ladder
            _rehash(p_table, table)
        for pool, link, head in ((orders, O_NEXT, M_OFREE), (levels, L_HEAD, M_LFREE)):
            if ocap > old_cap:  # chain the new slots in front of the free list
                pool[old_cap:, link] = np.arange(old_cap + 1, ocap + 1)
                pool[ocap - 1, link] = meta[head] if previous is not None else -1
                meta[head] = old_cap
        self.arena = arena
        self.orders, self.levels, self.ladder, self.table, self.meta = orders, levels, ladder, table, meta

    def __len__(self) -> int:
        return int(self.meta[M_LIVE])

    @property
    def stp_mode(self) -> int:
        return int(self.meta[M_STP])

    # ------------------------------------------------------------------ single operations
    def _one(self, kind: int, oid: int, side: int, price: int, qty: int, tif: int, owner: int) -> int:
        while True:
            st = _one(self.arena, self.out, kind, oid, side, price, qty, tif, owner)
            if st != NEED_ROOM:
                if st < 0 and kind != OP_CANCEL:
                    raise BookError(st, error_text(st, oid))
                return st
            self._grow()

    def add(self, oid: int, side: int, price: int, qty: int, tif: int = DAY, owner: int = 0,
            market: bool = False) -> Result:
        st = _one(self.arena, self.out, OP_ADD_MARKET if market else OP_ADD, oid, side, price, qty, tif, owner)
        if st < 0 or st == NEED_ROOM:
            st = self._one(OP_ADD_MARKET if market else OP_ADD, oid, side, price, qty, tif, owner)
        n = self.meta[M_OUTN]
        return Result(st, self.out[:n].copy() if n else _NO_ROWS)

    def cancel(self, oid: int) -> int:
        """Remove a resting order; returns its open quantity, 0 if it was not resting."""
        _one(self.arena, self.out, OP_CANCEL, oid, 0, 0, 0, 0, 0)
        return int(self.meta[M_ARG])

    def replace(self, oid: int, new_qty: int, new_price: int) -> Result:
        """New open quantity and price. Same price and quantity not up keeps time priority."""
        st = self._one(OP_REPLACE, oid, 0, new_price, new_qty, 0, 0)
        n = self.meta[M_OUTN]
        return Result(st, self.out[:n].copy() if n else _NO_ROWS)

    # ------------------------------------------------------------------ batch
    def batch(self, ops: np.ndarray) -> BatchResult:
        """Apply N operations (rows of OP_COLUMNS int64) in one call, in order."""
        ops = np.ascontiguousarray(ops, dtype=np.int64)
        if ops.ndim != 2 or ops.shape[1] != OP_COLUMNS:
            raise ValueError(f"ops must be an (N, {OP_COLUMNS}) array")
        status = np.zeros(ops.shape[0], np.int64)
        self.meta[M_OUTN] = 0
        i = 0
        while True:
            i = _batch(self.arena, self.out, ops, status, i)
            if i == ops.shape[0]:
                return BatchResult(status, self.out[: self.meta[M_OUTN]].copy())
            self._grow(applied=i)

    # ------------------------------------------------------------------ growth
    def _grow(self, applied: int | None = None) -> None:
        m = self.meta
        ocap = self.orders.shape[0]
        if m[M_OFREE] == -1 or m[M_LFREE] == -1:
            if ocap >= self.max_orders:
                done = "" if applied is None else f" after applying {applied} operations of the batch"
                raise BookFullError(f"book full: {ocap} resting orders is the configured maximum{done}")
            ocap = min(2 * ocap, self.max_orders)
        need = int(m[M_OUTN] + m[M_ARG])
        if need > self.out.shape[0]:
            out = np.zeros((_pow2(need), 8), np.int64)
            out[: m[M_OUTN]] = self.out[: m[M_OUTN]]
            self.out = out
        if ocap > self.orders.shape[0] or 2 * (m[M_HCOUNT] + 1) > self.table.shape[0]:
            self._allocate(ocap, max(self.table.shape[0], _pow2(2 * ocap)),
                           previous=(self.orders, self.levels, self.ladder, self.table, self.meta))

    # ------------------------------------------------------------------ views
    def order(self, oid: int) -> Resting | None:
        s = _find(self.table, oid) if oid >= 0 else -1
        if s < 0:
            return None
        r = self.orders[s]
        return Resting(int(r[O_OID]), int(r[O_SIDE]), int(r[O_PRICE]), int(r[O_QTY]), int(r[O_OWNER]),
                       int(r[O_TIF]))

    def l1(self) -> tuple[int, int, int, int]:
        """(bid, bid qty, ask, ask qty); 0 for an empty side."""
        top = []
        for side in (BUY, SELL):
            n = self.meta[M_NBID + side]
            lv = self.ladder[side, n - 1] if n else -1
            top += [int(self.levels[lv, L_PRICE]), int(self.levels[lv, L_QTY])] if n else [0, 0]
        return tuple(top)  # type: ignore[return-value]

    def l2(self, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Best-first (price, qty, order count) rows per side, up to depth levels."""
        return tuple(_depth(self.orders, self.levels, self.ladder, self.meta, s, depth, False)[0]
                     for s in (BUY, SELL))  # type: ignore[return-value]

    def snapshot(self) -> tuple[list, list]:
        """Each side best first: (price, [(oid, qty, owner), ...] in time priority)."""
        sides = []
        for s in (BUY, SELL):
            rows, members = _depth(self.orders, self.levels, self.ladder, self.meta, s, 1 << 62, True)
            sides.append([(int(px), [(int(o), int(q), int(w)) for lv, o, q, w in members if lv == r])
                          for r, (px, _q, _c) in enumerate(rows)])
        return tuple(sides)  # type: ignore[return-value]

    def expire(self, tif: int = DAY) -> list[tuple[int, int]]:
        """Remove every resting order with this time in force (end of day): [(oid, qty)] in time order."""
        gone = _expire(self.arena, tif)
        return [(int(o), int(q)) for o, q in gone]


_NO_ROWS = np.zeros((0, 8), np.int64)
_NO_ROWS.flags.writeable = False


def _pow2(n: int) -> int:
    return 1 << max(3, (int(n) - 1).bit_length())


__all__ = ["Book", "Result", "BatchResult", "BookError", "BookFullError", "Resting", "BUY", "SELL", "DAY", "GTC",
           "IOC", "FOK", "STP_NONE", "STP_CANCEL_NEWEST", "STP_CANCEL_OLDEST", "STP_CANCEL_BOTH", "STP_DECREMENT",
           "OP_ADD", "OP_ADD_MARKET", "OP_CANCEL", "OP_REPLACE", "OP_COLUMNS", "DONE", "RESTED"]
