"""The reports, as Arrow tables computed from `Facts`.

Money and prices are exact: decimal columns built from the fixed-point integers (scale 6;
average prices scale 10, rounded half-even once). Only ratios, basis points and
percentiles of latencies are floats or derived figures, for reading. Basis points are
computed from exact integers with one correctly rounded division (Python's int / int),
so a figure worked out by hand from the same prices is equal to the last bit.

Signs: slippage is a cost (positive: bought above, or sold below, the benchmark);
a markout is a gain (positive: the mid moved the fill's way after it, e.g. up after a buy).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oms.fixed import AVGPX_DECIMALS, PRICE_DECIMALS
from oms.model import (
    AllocationBooked,
    AllocationRejected,
    CancelRejected,
    ComplianceAlert,
    ExecType,
    OrderRejected,
    OrdStatus,
    RiskChanged,
    SetKillSwitch,
    SetLimit,
    SetOverride,
    Side,
)
from oms.positions import SCALE
from oms.reporting.facts import Facts, Rows

MARKOUTS_S = (1, 5, 60)
T = TypeVar("T")
_TS = pa.timestamp("ns")
_FITS = float(2**62)  # a float estimate of a magnitude below it: int64 arithmetic on it cannot overflow
_NS_PER_US = 1000


# ---------------------------------------------------------------- columns
def fixed(values: list[int | None] | np.ndarray, scale: int = PRICE_DECIMALS, valid: np.ndarray | None = None) -> pa.Array:
    """Fixed-point integers as an exact decimal column (None, or not `valid`: null)."""
    if isinstance(values, np.ndarray):
        ints = values.astype(np.int64)
    else:
        valid = np.fromiter((v is not None for v in values), np.bool_, len(values))
        ints = np.fromiter((v or 0 for v in values), np.int64, len(values))
    n = len(ints)
    words = np.empty(2 * n, np.int64)
    words[0::2], words[1::2] = ints, ints >> 63  # 128-bit little-endian two's complement
    validity = None if valid is None or valid.all() else pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.decimal128(28, scale), n, [validity, pa.py_buffer(words)])


def times(values: Iterable[int] | np.ndarray) -> pa.Array:
    """ns timestamps (UTC: every time in the reports is; the column carries no zone, which
    CSV writes ten times faster); 0 (never) is null."""
    ns = values if isinstance(values, np.ndarray) else np.fromiter(values, np.int64)
    return pa.array(ns, _TS, mask=ns == 0)


def avg_px(values: list[int] | np.ndarray, qtys: list[int] | np.ndarray) -> pa.Array:
    """value / qty at scale 10, rounded half-even once (as the FIX AvgPx); null without a quantity."""
    shift = 10 ** (AVGPX_DECIMALS - PRICE_DECIMALS)
    v, q = np.asarray(values), np.asarray(qtys, np.int64)
    known = q > 0
    fast = known & (np.abs(v.astype(float)) * shift < _FITS)
    scaled, qq = np.where(fast, v, 0).astype(np.int64) * shift, np.where(fast, q, 1)
    d = scaled // qq
    r = scaled - d * qq
    out = d + ((2 * r > qq) | ((2 * r == qq) & (d % 2 == 1)))
    for k in np.flatnonzero(known & ~fast).tolist():  # too large for int64 before the division
        dk, rk = divmod(int(v[k]) * shift, int(q[k]))
        out[k] = dk + 1 if 2 * rk > q[k] or (2 * rk == q[k] and dk % 2) else dk
    return fixed(out, AVGPX_DECIMALS, valid=known)


def bps(num: int, den: int) -> float | None:
    """num / den in basis points, one correctly rounded division of exact integers."""
    return None if not den else num * 10_000 / den


def percentile(sorted_values: list[int] | np.ndarray, q: float) -> int | None:
    """Nearest-rank percentile: an observed value, exact and deterministic."""
    if not len(sorted_values):
        return None
    return int(sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)])


_SIDE = {s.value: s.name for s in Side}
_STATUS = {s.value: s.name for s in OrdStatus}
_EXEC = {e.value: e.name for e in ExecType}


def _table(columns: dict[str, pa.Array | pa.ChunkedArray | list]) -> pa.Table:
    return pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v) for k, v in columns.items()})


def once(f: Facts, fn: Callable[[Facts], T]) -> T:
    """fn(f), computed once per facts (several reports use the same derived figures)."""
    if fn.__name__ not in f.derived:
        f.derived[fn.__name__] = fn(f)
    return f.derived[fn.__name__]  # type: ignore[return-value]


def _parents(f: Facts) -> Rows:
    """The parents active in the range, their symbols numbered and their sides as signs."""
    p = f.parents
    p.symbols, p.ints["symbol"] = _codes(p.column("symbol"))
    p.ints["sign"] = np.where(pc.equal(p.column("side"), Side.BUY.name).to_numpy(zero_copy_only=False), 1, -1)
    return p


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """A text column as its distinct values and each row's number among them."""
    encoded = column.combine_chunks().dictionary_encode()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy().astype(np.int64)


# ---------------------------------------------------------------- blotter
def orders(f: Facts) -> pa.Table:
    """Every parent order active in the range, each followed by its child orders."""
    p = once(f, _parents)
    n = len(p)
    parents = _table({
        "kind": pa.repeat("parent", n), "order_id": p.column("order_id"),
        "child_id": pa.nulls(n, pa.string()), "cl_ord_id": p.column("cl_ord_id"),
        **{name: p.column(name) for name in ("session", "account", "symbol", "side", "ord_type", "tif", "route")},
        "qty": p["qty"], "price": fixed(p["price"], valid=p.valid["price"]),
        "status": p.column("status"), "cum_qty": p["cum_qty"], "cum_value": fixed(p["cum_value"]),
        "avg_px": avg_px(p["cum_value"], p["cum_qty"]), "created": times(p["arrival_ts"]),
        "acked": times(np.zeros(n, np.int64)), "first_fill": times(p["first_fill_ts"]), "done": times(p["done_ts"]),
        "last_update": times(p["last_ts"]), "text": p.column("text"),
    })
    c, parent_of = f.children, f.child_parent
    inherited = p.text.select(["session", "account", "symbol", "side", "ord_type", "tif"]).take(parent_of)
    children = _table({
        "kind": pa.repeat("child", len(c)), "order_id": p.column("order_id").take(parent_of),
        "child_id": c.column("child_id"), "cl_ord_id": c.column("cl_ord_id"),
        **{name: inherited.column(name) for name in inherited.column_names},
        "route": c.column("venue"), "qty": c["qty"], "price": fixed(c["price"], valid=c.valid["price"]),
        "status": c.column("status"), "cum_qty": c["cum_qty"], "cum_value": fixed(c["cum_value"]),
        "avg_px": avg_px(c["cum_value"], c["cum_qty"]), "created": times(c["sent_ts"]), "acked": times(c["ack_ts"]),
        "first_fill": times(c["first_fill_ts"]), "done": times(np.zeros(len(c), np.int64)),
        "last_update": times(c["last_ts"]), "text": pa.repeat("", len(c)),
    })
    # parent k, then its children in the order they were sent
    key = np.concatenate([np.arange(n, dtype=np.int64) * 2, parent_of * 2 + 1])
    both, order = pa.concat_tables([parents, children.cast(parents.schema)]), pa.array(np.argsort(key, kind="stable"))
    with ThreadPoolExecutor(2) as pool:  # Arrow's take holds no GIL: the columns taken on both cores
        return pa.table(dict(zip(both.column_names, pool.map(lambda c: c.take(order), both.columns))))


def later_mids(f: Facts) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per horizon, per fill: the consolidated mid that long after the fill and whether it
    is known (not: no two-sided price then, a bust or correction, or past the journal's end)."""
    n = len(f.fills)
    out = {h: (np.zeros(n, np.int64), np.zeros(n, np.bool_)) for h in MARKOUTS_S}
    p = once(f, _parents)
    symbol = p["symbol"][f.fill_parent]
    priced = f.fill_trade & (f.fills["last_px"] != 0)
    fts = f.fills["ts"]
    for k, name in enumerate(p.symbols):
        q = f.quotes.get(name)
        ks = np.flatnonzero(priced & (symbol == k))
        if q is None or not len(ks):
            continue
        qts, bid, ask = q
        two_sided = (bid != 0) & (ask != 0)
        mids = (bid + ask) // 2
        for h in MARKOUTS_S:
            at = fts[ks] + h * 10**9
            i = np.searchsorted(qts, at, side="right") - 1
            known = (i >= 0) & (at <= f.journal_end) & two_sided[i]
            out[h][0][ks], out[h][1][ks] = np.where(known, mids[i], 0), known
    return out


def _markout_bps(later: tuple[np.ndarray, np.ndarray], signs: np.ndarray, prices: np.ndarray) -> pa.Array:
    """sign x (later mid - price) / price in bps."""
    mids, known = later  # only fills with a price
    return _bps_column(signs * (mids - prices), prices, known, True,
                       lambda k: int(signs[k]) * (int(mids[k]) - int(prices[k])) * 10_000 / int(prices[k]))


def executions(f: Facts) -> pa.Table:
    """Every trade, bust and correction, with the child, venue and venue ExecID, and its markouts."""
    x, p, parent = f.fills, once(f, _parents), f.fill_parent
    later = once(f, later_mids)
    signs = p["sign"][parent]
    prices = x["last_px"]
    return _table({
        "ts": times(x["ts"]),
        "order_id": x.column("order_id"),
        **{name: p.column(name).take(parent) for name in ("cl_ord_id", "account", "symbol", "side")},
        **{name: x.column(name) for name in ("exec_id", "exec_type", "exec_ref_id")},
        "last_qty": x["last_qty"],
        "last_px": fixed(prices),
        "qty_change": x["qty"],
        "value_change": fixed(x["value"]),
        **{name: x.column(name) for name in ("child_id", "venue", "venue_exec_id")},
        **{f"markout_{h}s_bps": _markout_bps(later[h], signs, prices) for h in MARKOUTS_S},
    })


# ---------------------------------------------------------------- allocations
def allocations(f: Facts) -> pa.Table:
    """One row per target of each booking, its cancel, and each refusal."""
    rows = []
    for ev in f.allocations:
        if type(ev) is AllocationRejected:
            rows.append((ev.ts, "rejected", ev.alloc_id, ev.user, ev.order_id, "", "", "", ev.account, None, None,
                         f"{ev.reason}: {ev.text}"))
            continue
        booking = ev if type(ev) is AllocationBooked else ev.booking
        status = "booked" if type(ev) is AllocationBooked else "canceled"
        for s in booking.shares:
            rows.append((ev.ts, status, booking.alloc_id, ev.user, booking.order_id, booking.account, booking.symbol,
                         booking.side.name, s.account, s.qty, s.value, ""))
    cols = list(zip(*rows)) if rows else [[] for _ in range(12)]
    return _table({
        "ts": times(cols[0]), "status": list(cols[1]), "alloc_id": list(cols[2]), "user": list(cols[3]),
        "order_id": list(cols[4]), "block_account": list(cols[5]), "symbol": list(cols[6]), "side": list(cols[7]),
        "account": list(cols[8]), "qty": pa.array(cols[9], pa.int64()), "value": fixed(list(cols[10])),
        "avg_px": avg_px([v or 0 for v in cols[10]], [q or 0 for q in cols[9]]), "text": list(cols[11]),
    })


# ---------------------------------------------------------------- positions and P&L
def positions(f: Facts) -> pa.Table:
    """Per account and symbol with a position or a trade: opening, bought, sold, closing,
    realized (in the range) and unrealized (at the closing mark), in the instrument's
    currency and the account's base currency; then a total per account in its base currency."""
    b = f.book
    assert f.opening is not None and f.with_positions, "facts read without positions"
    q0, c0, r0 = f.opening
    rows = []
    for acc, a in b.accounts.items():
        total_r = total_u = 0
        lines = []
        for sym, i in b.symbols.items():
            g0, g1 = tuple(f.opening_gross[a, i].tolist()), tuple(f.closing_gross[a, i].tolist())
            qty0, qty1 = int(q0[a, i]), int(b.qty[a, i])
            if not (qty0 or qty1 or g1 != g0):
                continue
            cost0, cost1, rate = int(c0[a, i]), int(b.cost[a, i]), int(b.rates[a, i])
            realized = int(b.realized[a, i]) - int(r0[a, i])
            mark = int(b.marks[i]) or None
            unrealized = qty1 * mark - cost1 if mark and qty1 else 0
            unrealized_base = int(b.unrealized[a, i])
            realized_base = realized * rate // SCALE
            total_r += realized_base
            total_u += unrealized_base
            lines.append((acc, sym, f.currency[sym], qty0, abs(cost0) // abs(qty0) if qty0 else None,
                          g1[0] - g0[0], g1[2] - g0[2], g1[1] - g0[1], g1[3] - g0[3],
                          qty1, abs(cost1) // abs(qty1) if qty1 else None, mark, realized, unrealized,
                          f.base[acc], realized_base, unrealized_base))
        if lines:
            rows += lines
            rows.append((acc, None, None, None, None, None, None, None, None, None, None, None, None, None,
                         f.base[acc], total_r, total_u))
    cols = list(zip(*rows)) if rows else [[] for _ in range(17)]
    ints = lambda k: pa.array(cols[k], pa.int64())  # noqa: E731
    return _table({
        "account": list(cols[0]), "symbol": list(cols[1]), "currency": list(cols[2]),
        "opening_qty": ints(3), "opening_avg_px": fixed(list(cols[4])),
        "bought": ints(5), "bought_value": fixed(list(cols[6])), "sold": ints(7), "sold_value": fixed(list(cols[8])),
        "closing_qty": ints(9), "closing_avg_px": fixed(list(cols[10])), "mark": fixed(list(cols[11])),
        "realized": fixed(list(cols[12])), "unrealized": fixed(list(cols[13])),
        "base_currency": list(cols[14]), "realized_base": fixed(list(cols[15])),
        "unrealized_base": fixed(list(cols[16])),
    })


# ---------------------------------------------------------------- compliance
def _change(c: RiskChanged) -> tuple[str, str, str, str]:
    """(control, level, account, symbol) of an authorised change."""
    ch = c.change
    if type(ch) is SetKillSwitch:
        mode = "reduce_only" if ch.reduce_only else "allow_reducing" if ch.allow_reducing else "on"
        return "kill_switch", mode if ch.on else "off", ch.key if ch.scope == "account" else "", \
            ch.key if ch.scope == "instrument" else ""
    if type(ch) is SetLimit:
        return ch.control, f"limit {ch.scope} {ch.value}", ch.account, ch.symbol
    if type(ch) is SetOverride:
        return ch.control, "override", ch.account, ""
    return "reenable_executions", "reenable", "", ch.symbol


def compliance(f: Facts) -> pa.Table:
    """Every reject (by control for compliance refusals, by reason otherwise), every alert
    (soft, post-trade warn/hard/clear) and every authorised change with its user and reason."""
    import msgspec

    rows = []
    for ev in f.compliance:
        t = type(ev)
        if t is OrderRejected:
            o = ev.order
            rows.append((ev.ts, "reject", _control(ev.reason), "", o.account, o.symbol, o.session, o.cl_ord_id,
                         ev.reason, ev.text))
        elif t is CancelRejected:
            account, symbol = f.order_of(ev.order_id or "") or ("", "")
            rows.append((ev.ts, "cancel_reject" if not ev.replace else "replace_reject", _control(ev.reason), "",
                         account, symbol, ev.session, ev.cl_ord_id, ev.reason, ev.text))
        elif t is AllocationRejected:
            rows.append((ev.ts, "allocation_reject", _control(ev.reason), "", ev.account, "", ev.user, ev.alloc_id,
                         ev.reason, ev.text))
        elif t is ComplianceAlert:
            rows.append((ev.ts, "alert", ev.control, ev.level, ev.account, ev.symbol, "", ev.order_id or "", "",
                         ev.text))
        else:
            control, level, account, symbol = _change(ev)
            rows.append((ev.ts, "change", control, level, account, symbol, ev.user, "", ev.reason,
                         msgspec.json.encode(ev.change).decode()))
    cols = list(zip(*rows)) if rows else [[] for _ in range(10)]
    names = ("ts", "kind", "control", "level", "account", "symbol", "who", "ref", "reason", "text")
    return _table({n: times(c) if n == "ts" else list(c) for n, c in zip(names, cols)})


def _control(reason: str) -> str:
    """The compliance control a RISK_* reason names; other reasons stand as themselves."""
    return reason[5:].lower() if reason.startswith("RISK_") else reason.lower()


# ---------------------------------------------------------------- execution quality
def _vwap_index(f: Facts) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per symbol: the times of its fills (all orders) in order and running sums of their
    quantity and value, for the VWAP of any interval."""
    p = once(f, _parents)
    trade, symbol = f.fill_trade, p["symbol"][f.fill_parent]
    ts, qs, ps = f.fills["ts"], f.fills["last_qty"], f.fills["last_px"]
    out = {}
    for k, sym in enumerate(p.symbols):
        sel = np.flatnonzero(trade & (symbol == k))
        if len(sel):
            order = sel[np.argsort(ts[sel], kind="stable")]
            out[sym] = (ts[order], np.concatenate([[0], np.cumsum(qs[order])]),
                        _exact_cumsum(_exact_product(qs[order], ps[order])))
    return out


def _exact_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b, in int64 where it cannot overflow, else as Python ints (object)."""
    if len(a) and float(np.max(np.abs(a.astype(float) * b))) >= _FITS:
        return a.astype(object) * b.astype(object)
    return a * b


def _exact_sum(values: np.ndarray) -> int:
    if values.dtype == object or float(np.sum(np.abs(values.astype(float)))) >= _FITS:
        return sum(values.tolist())
    return int(values.sum())


def _exact_cumsum(values: np.ndarray) -> np.ndarray:
    """0 then the running sums, exact (Python ints when int64 could overflow)."""
    if values.dtype != object and float(np.sum(np.abs(values.astype(float)))) >= _FITS:
        values = values.astype(object)
    return np.concatenate([np.zeros(1, values.dtype), np.cumsum(values)])


def _bps_column(num: np.ndarray, den: np.ndarray, valid: np.ndarray, fits: np.ndarray | bool,
                exact: Callable[[int], float]) -> pa.Array:
    """num x 10,000 / den where valid (null elsewhere), as Python's correctly rounded int / int
    gives it: one IEEE division where both are exact doubles (num and den computed in int64
    without overflow where `fits`, and small enough), exact(k) from Python ints otherwise."""
    fast = valid & fits & (np.abs(num) <= (2**53 - 1) // 10_000) & (np.abs(den) <= 2**53)
    out = np.divide(np.where(fast, num, 0).astype(np.int64) * 10_000, np.where(fast, den, 1).astype(np.int64),
                    out=np.zeros(len(num)), where=fast)
    for k in np.flatnonzero(valid & ~fast).tolist():
        out[k] = exact(k)
    return pa.array(out, pa.float64(), mask=~valid)


class _Measures:
    """Execution quality of a set of orders (parents, or children at their venues), in
    columns: arrival mid, interval VWAP (its value and quantity), slippage against both,
    fill rate, times to first fill and completion."""

    def __init__(self, vwap_index: dict, symbols: list[str], symbol: np.ndarray, sign: np.ndarray, qty: np.ndarray, cum_qty: np.ndarray,
                 cum_value: np.ndarray, bid: np.ndarray, ask: np.ndarray, arrival: np.ndarray,
                 first_fill: np.ndarray, last_fill: np.ndarray, done: np.ndarray) -> None:
        n = len(symbol)
        self.sign, self.qty, self.cq, self.cv = sign, qty, cum_qty, cum_value
        self.has_bbo = (bid != 0) & (ask != 0)
        self.m = np.where(self.has_bbo, (bid + ask) // 2, 0)
        self.vq = np.zeros(n, np.int64)
        vv: np.ndarray = np.zeros(n, np.int64)
        for k, sym in enumerate(symbols):
            ts, cq, cv = vwap_index.get(sym, (np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64)))
            idx = np.flatnonzero((symbol == k) & (cum_qty != 0))
            i, j = np.searchsorted(ts, arrival[idx], "left"), np.searchsorted(ts, last_fill[idx], "right")
            self.vq[idx] = cq[j] - cq[i]
            if cv.dtype == object and vv.dtype != object:
                vv = vv.astype(object)
            vv[idx] = cv[j] - cv[i]
        self.vv = vv
        self.has_m = (self.m != 0) & (cum_qty != 0)
        self.has_vwap = (self.vq != 0) & (cum_qty != 0)
        self.first_us, self.done_us = _us_column(first_fill, arrival), _us_column(done, arrival)

    def columns(self) -> dict[str, pa.Array]:
        s, cq, cv, m, vq, vv = self.sign, self.cq, self.cv, self.m, self.vq, self.vv
        fm, fcq, fcv, fvq, fvv = (np.abs(a.astype(float)) for a in (m, cq, cv, vq, vv))
        mcq = _exact_product(m, cq)
        py = lambda a, k: int(a[k])  # noqa: E731
        arrival = _bps_column(s * (cv - mcq), mcq, self.has_m, (fm * fcq < _FITS) & (fcv < _FITS),
                              lambda k: py(s, k) * (py(cv, k) - py(m, k) * py(cq, k)) * 10_000 / (py(m, k) * py(cq, k)))
        vwap = _bps_column(s * (cv * vq - vv * cq), vv * cq, self.has_vwap, (fcv * fvq < _FITS) & (fvv * fcq < _FITS),
                           lambda k: (py(s, k) * (py(cv, k) * py(vq, k) - py(vv, k) * py(cq, k)) * 10_000
                                      / (py(vv, k) * py(cq, k))))
        qty = self.qty
        return {
            "arrival_mid": fixed(m, valid=self.has_bbo),
            "arrival_slippage_bps": arrival,
            "interval_vwap": avg_px(vv, vq),
            "vwap_slippage_bps": vwap,
            "fill_rate": pa.array(np.divide(cq, qty, out=np.zeros(len(qty)), where=qty != 0), pa.float64(),
                                  mask=qty == 0),
            "first_fill_us": pa.array(self.first_us[0], pa.int64(), mask=~self.first_us[1]),
            "complete_us": pa.array(self.done_us[0], pa.int64(), mask=~self.done_us[1]),
        }

    @functools.cached_property
    def costs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per order: cost and benchmark value against the arrival mid and the interval VWAP (0 without one)."""
        s, cq, cv, m, vq, vv = self.sign, self.cq, self.cv, self.m, self.vq, self.vv
        mcq = _exact_product(m, cq)
        # the order's fills at the interval's VWAP: cq * vv / vq, kept exact over a common scale
        vcost = np.zeros(len(cq), object)
        vbench = np.zeros(len(cq), object)
        have = self.has_vwap
        rows = list(zip(*(a[have].tolist() for a in (s, cv, cq, vq, vv))))
        vcost[have] = [sk * (value * q - w * filled) * 10**6 // q for sk, value, filled, q, w in rows]
        vbench[have] = [w * filled * 10**6 // q for _, _, filled, q, w in rows]
        return np.where(self.has_m, s * (cv - mcq), 0), np.where(self.has_m, mcq, 0), vcost, vbench

    def groups(self, keys: tuple[list[str], np.ndarray]) -> list[tuple[str, dict[str, int | None | float]]]:
        """Per key (its values and each order's number among them): orders, quantities, value,
        slippage as total cost over total benchmark value (exact sums), median times."""
        cq, cv = self.cq, self.cv
        cost, bench, vcost, vbench = self.costs
        names, codes = keys
        members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes, minlength=len(names)))[:-1])
        out = []
        for key, ks in zip(names, members):
            total = lambda a: _exact_sum(a[ks])  # noqa: E731
            qty, filled = total(self.qty), total(cq)
            first = np.sort(self.first_us[0][ks][self.first_us[1][ks]])
            done = np.sort(self.done_us[0][ks][self.done_us[1][ks]])
            out.append((key, {"orders": len(ks), "qty": qty, "cum_qty": filled,
                              "fill_rate": filled / qty if qty else None, "value": total(cv),
                              "arrival_slippage_bps": bps(total(cost), total(bench)),
                              "vwap_slippage_bps": bps(total(vcost), total(vbench)),
                              "first_fill_p50_us": percentile(first, 0.5), "complete_p50_us": percentile(done, 0.5)}))
        return out


def _us_column(later: np.ndarray, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later - earlier) in µs and where both are known."""
    known = (later != 0) & (earlier != 0)
    return np.where(known, (later - earlier) // _NS_PER_US, 0), known


def _last_fills(f: Facts) -> tuple[np.ndarray, np.ndarray]:
    """The time of each parent's and each child's last trade in the range (0: none)."""
    trades = np.flatnonzero(f.fill_trade)
    out = []
    for n, at in ((len(f.parents), f.fill_parent[trades]), (len(f.children), f.fill_child[trades])):
        last = np.zeros(n, np.int64)
        last[at[at >= 0]] = f.fills["ts"][trades[at >= 0]]  # in journal order: the last assignment stays
        out.append(last)
    return out[0], out[1]


def _tca_rows(f: Facts) -> tuple[_Measures, _Measures]:
    index = _vwap_index(f)
    last_parent, last_child = _last_fills(f)
    p = once(f, _parents)
    c, parent_of = f.children, f.child_parent
    parents = _Measures(index, p.symbols, p["symbol"], p["sign"], p["qty"], p["cum_qty"], p["cum_value"], p["bid"],
                        p["ask"], p["arrival_ts"], p["first_fill_ts"], last_parent, p["done_ts"])
    children = _Measures(index, p.symbols, p["symbol"][parent_of], p["sign"][parent_of], c["qty"],
                         c["cum_qty"], c["cum_value"], c["bid"], c["ask"], c["sent_ts"], c["first_fill_ts"],
                         last_child, np.where(pc.is_in(c.column("status"), _DONE).to_numpy(zero_copy_only=False),
                                              c["last_ts"], 0))
    return parents, children


_DONE = pa.array([s.name for s in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED,
                                   OrdStatus.DONE_FOR_DAY)])


def tca_orders(f: Facts) -> pa.Table:
    """Execution quality per parent order."""
    p, (measures, _) = once(f, _parents), once(f, _tca_rows)
    return _table({
        **{name: p.column(name) for name in ("order_id", "cl_ord_id", "account", "symbol", "side", "route")},
        "qty": p["qty"], "cum_qty": p["cum_qty"], "avg_px": avg_px(p["cum_value"], p["cum_qty"]),
        "arrival": times(p["arrival_ts"]),
        "arrival_bid": fixed(p["bid"], valid=p.valid["bid"]), "arrival_ask": fixed(p["ask"], valid=p.valid["ask"]),
        **measures.columns(),
        "status": p.column("status"),
    })


def tca_children(f: Facts) -> pa.Table:
    """Execution quality per child order (at its venue), priced from when it was sent."""
    p, c, parent_of, (_, measures) = once(f, _parents), f.children, f.child_parent, once(f, _tca_rows)
    return _table({
        "child_id": c.column("child_id"), "order_id": p.column("order_id").take(parent_of),
        "venue": c.column("venue"),
        **{name: p.column(name).take(parent_of) for name in ("account", "symbol", "side")},
        "qty": c["qty"], "cum_qty": c["cum_qty"], "avg_px": avg_px(c["cum_value"], c["cum_qty"]),
        "sent": times(c["sent_ts"]), "acked": times(c["ack_ts"]),
        "arrival_bid": fixed(c["bid"], valid=c.valid["bid"]), "arrival_ask": fixed(c["ask"], valid=c.valid["ask"]),
        **measures.columns(),
        "status": c.column("status"),
    })


def tca_summary(f: Facts) -> pa.Table:
    """Rolled up per account, symbol, routing policy (parents) and venue (children): the
    slippage of a group is its total cost over its total benchmark value (exact sums)."""
    p, c, (pm, cm) = once(f, _parents), f.children, once(f, _tca_rows)
    groups = [(dim, key, row) for dim, measures, keys in (
        ("account", pm, _codes(p.column("account"))), ("symbol", pm, (p.symbols, p["symbol"])),
        ("policy", pm, _codes(p.column("route"))), ("venue", cm, _codes(c.column("venue"))))
        for key, row in measures.groups(keys)]
    groups.sort(key=lambda g: (g[0], g[1]))
    names = {"orders": pa.int64(), "qty": pa.int64(), "cum_qty": pa.int64(), "fill_rate": pa.float64(),
             "value": None, "arrival_slippage_bps": pa.float64(), "vwap_slippage_bps": pa.float64(),
             "first_fill_p50_us": pa.int64(), "complete_p50_us": pa.int64()}
    return _table({
        "dimension": [g[0] for g in groups], "key": [g[1] for g in groups],
        **{n: fixed([g[2][n] for g in groups]) if t is None else pa.array([g[2][n] for g in groups], t)
           for n, t in names.items()},
    })


def venues(f: Facts) -> pa.Table:
    """Per venue: fill ratio (filled over sent quantity), reject rate, acknowledgement and
    first-fill latency percentiles from the child being sent, and markouts after its fills
    (the fills' gain at the later mid over their value, exact sums)."""
    c = f.children
    names, at_child = _codes(c.column("venue"))
    code = {v: k for k, v in enumerate(names)}
    rejected = pc.equal(c.column("status"), OrdStatus.REJECTED.name).to_numpy(zero_copy_only=False)
    ack, acked = _us_column(c["ack_ts"], c["sent_ts"])
    fill, filled = _us_column(c["first_fill_ts"], c["sent_ts"])
    stats: dict[str, dict] = {}
    for v, k in code.items():
        sel = at_child == k
        stats[v] = {"n": int(sel.sum()), "qty": _exact_sum(c["qty"][sel]), "filled": _exact_sum(c["cum_qty"][sel]),
                    "rejected": int(rejected[sel].sum()), "ack": ack[sel & acked], "fill": fill[sel & filled]}
    later = once(f, later_mids)
    at = np.where(f.fill_trade, pc.index_in(f.fills.column("venue"), value_set=pa.array(names, pa.string()))
                  .fill_null(-1).to_numpy(), -1).astype(np.int64)
    for v, n in zip(code, np.bincount(at[at >= 0], minlength=len(code)).tolist()):
        if n:
            stats[v]["fills"] = n
    signs = once(f, _parents)["sign"][f.fill_parent]
    px, qty = f.fills["last_px"], f.fills["last_qty"]
    value = _exact_product(px, qty)
    gains: dict[tuple[str, int], list[int]] = {}
    for h in MARKOUTS_S:
        mids, known = later[h]
        gain = _exact_product(signs * (mids - px), qty)
        for v, k in code.items():
            sel = known & (at == k)
            if sel.any():
                gains[(v, h)] = [_exact_sum(gain[sel]), _exact_sum(value[sel])]
    rows = []
    for v in sorted(stats):
        s = stats[v]
        ack, fill = np.sort(s["ack"]), np.sort(s["fill"])
        rows.append((v, s["n"], s.get("fills", 0), s["qty"], s["filled"], s["filled"] / s["qty"] if s["qty"] else None,
                     s["rejected"], s["rejected"] / s["n"], *(percentile(ack, q) for q in (0.5, 0.9, 0.99)),
                     *(percentile(fill, q) for q in (0.5, 0.9, 0.99)),
                     *(bps(*gains[(v, h)]) if (v, h) in gains else None for h in MARKOUTS_S)))
    names = ["venue", "children", "fills", "qty", "cum_qty", "fill_ratio", "rejected", "reject_rate",
             "ack_p50_us", "ack_p90_us", "ack_p99_us", "first_fill_p50_us", "first_fill_p90_us", "first_fill_p99_us",
             *(f"markout_{h}s_bps" for h in MARKOUTS_S)]
    types = [pa.string(), pa.int64(), pa.int64(), pa.int64(), pa.int64(), pa.float64(), pa.int64(), pa.float64(),
             *[pa.int64()] * 6, *[pa.float64()] * 3]
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, cols, types)})
