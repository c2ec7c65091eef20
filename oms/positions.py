"""Positions and P&L: average cost, realized and unrealized, in the instrument's currency
and the account's base currency, exact in fixed point (1e-6).

Fills update one position at a time (`Book.fill`, plain Python integers). Marking to
market is a Numba kernel over packed arrays (accounts x instruments): in full, or
incrementally for a batch of price updates, which touches only the updated columns.

Average cost: buying into a long (or selling into a short) adds the fill's value to the
cost basis; reducing releases the cost basis pro rata, floor-rounded, and the remainder
leaves with the last share, so a position that goes back to flat has realized exactly
what it paid and received.

Figures beyond the int64 arrays' range (oms.saturating) stop at its edge rather than wrap:
exact below it, visibly out of range above.

Per venue a position keeps its fills gross (bought, sold and their values), not an
average cost: which venue's shares a sale closes is a convention, while gross fills are
facts, add up exactly to the account's position and move exactly on a bust or a correction.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from numba import literally, njit

from oms.fixed import MAX_FIGURE
from oms.model import (
    AllocationBooked,
    AllocationCanceled,
    ChildOrderSent,
    ChildUpdated,
    Event,
    ExecType,
    ExecutionReport,
    RestatementReason,
    Side,
    SplitApplied,
)
from oms.saturating import clamp, fits, largest, plus, sat_add, sat_sum, scaled, times

SCALE = 10**6
ALLOCATION_VENUE = "allocation"  # where a position's allocated shares show in its per-venue fills
FILL_TYPES = frozenset({ExecType.TRADE, ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT})


class VenueFills(msgspec.Struct):
    """One position's fills at one venue; qty = bought - sold."""

    venue: str
    qty: int = 0
    bought: int = 0
    sold: int = 0
    buy_value: int = 0
    sell_value: int = 0


class Book:
    """Positions of accounts x instruments. rates[a, i]: instrument i's currency into
    account a's base currency (fixed point, 1e6 = 1)."""

    def __init__(self, accounts: list[str], symbols: list[str], rates: np.ndarray | None = None,
                 marking: bool = True) -> None:
        """marking=False: fills leave unrealized P&L alone until `mark_all` (a report marks once, at its close)."""
        self.marking = marking
        self.names = list(accounts)
        self.accounts = {a: k for k, a in enumerate(accounts)}
        self.symbols = {s: k for k, s in enumerate(symbols)}
        shape = (len(accounts), len(symbols))
        self.qty = np.zeros(shape, np.int64)
        self.cost = np.zeros(shape, np.int64)  # signed cost basis of the open position
        self.realized = np.zeros(shape, np.int64)
        self.rates = rates if rates is not None else np.full(shape, SCALE, np.int64)
        self.marks = np.zeros(len(symbols), np.int64)
        self.unrealized = np.zeros(shape, np.int64)
        self.account_unrealized = np.zeros(len(accounts), np.int64)  # base currency
        self.venues: dict[tuple[str, str], dict[str, VenueFills]] = {}  # (account, symbol) -> venue -> fills

    def fill(self, account: str, symbol: str, qty: int, value: int) -> None:
        """A fill of signed qty (buy > 0) for value (>= 0); a bust is the opposite fill for the same value."""
        a, i = self.accounts[account], self.symbols[symbol]
        q0, c0 = int(self.qty[a, i]), int(self.cost[a, i])
        q1, c1, realized = apply_fill(q0, c0, qty, value)
        self.qty[a, i], self.cost[a, i] = clamp(q1), clamp(c1)
        self.realized[a, i] = clamp(int(self.realized[a, i]) + realized)
        if self.marking:
            mark_cells(self.qty, self.cost, self.marks, self.rates, self.unrealized, self.account_unrealized,
                       np.array([a], np.int64), i)

    def transfer(self, account: str, symbol: str, qty: int, value: int) -> None:
        """Shares that leave a position at exactly value, not traded: the cost basis drops by
        that value and nothing is realized (what cost is left when the position is flat is),
        so a block's account that gives its shares up keeps the cost of what else it holds.
        Where that cannot hold (more shares than the position, or a cost basis that would
        turn against it) and for shares coming in, it is a fill for value."""
        a, i = self.accounts[account], self.symbols[symbol]
        q0, c0 = int(self.qty[a, i]), int(self.cost[a, i])
        q1, c1 = q0 + qty, c0 + (value if qty > 0 else -value)
        reduces = q0 != 0 and (q0 > 0) != (qty > 0) and abs(qty) <= abs(q0)
        if not reduces or (q1 != 0 and (c1 == 0 or (c1 > 0) != (q1 > 0))):
            self.fill(account, symbol, qty, value)
            return
        if q1 == 0:
            self.realized[a, i] = clamp(int(self.realized[a, i]) - c1)
            c1 = 0
        self.qty[a, i], self.cost[a, i] = clamp(q1), clamp(c1)
        if self.marking:
            mark_cells(self.qty, self.cost, self.marks, self.rates, self.unrealized, self.account_unrealized,
                       np.array([a], np.int64), i)

    def split(self, symbol: str, new: int, old: int) -> list[str]:
        """A stock split: quantities count `new` shares for `old` (a remainder of a share is
        dropped), the cost basis stays, the mark is `old` / `new` of what it was. The accounts moved."""
        i = self.symbols[symbol]
        moved = [self.names[a] for a in np.flatnonzero(self.qty[:, i]).tolist()]
        self.qty[:, i] = self.qty[:, i] * new // old
        self.marks[i] = self.marks[i] * old // new
        for (_account, s), venues in self.venues.items():
            if s == symbol:
                for v in venues.values():
                    v.qty, v.bought, v.sold = v.qty * new // old, v.bought * new // old, v.sold * new // old
        if self.marking:
            self.mark_all()
        return moved

    def at_venue(self, account: str, symbol: str, venue: str, buy: bool, qty: int, value: int) -> None:
        """A change of one side's filled quantity and value at a venue (negative for a bust)."""
        v = self.venues.setdefault((account, symbol), {}).setdefault(venue, VenueFills(venue))
        if buy:
            v.bought += qty
            v.buy_value += value
            v.qty += qty
        else:
            v.sold += qty
            v.sell_value += value
            v.qty -= qty

    def mark_all(self) -> None:
        mark_to_market(self.qty, self.cost, self.marks, self.rates, self.unrealized, self.account_unrealized)

    def prices(self, columns: np.ndarray, marks: np.ndarray) -> None:
        """A batch of price updates: only the updated instruments' columns are re-marked."""
        apply_prices(self.qty, self.cost, self.marks, self.rates, self.unrealized, self.account_unrealized,
                     columns, marks)

    def avg_px(self, account: str, symbol: str) -> int | None:
        a, i = self.accounts[account], self.symbols[symbol]
        q = int(self.qty[a, i])
        return None if q == 0 else abs(int(self.cost[a, i])) // abs(q)


class Ledger:
    """The one path from journaled events to a Book: the positions stream and the P&L
    report both follow it, so they tie out by construction. `follow` lets a reader that
    decodes lighter views of the events (the reports) use the same handlers."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.fills: dict[str, tuple[int, int]] = {}  # order_id -> (cum qty, cum value) already counted
        self.child_venues: dict[str, str] = {}  # child_id -> venue
        self.fill_venues: dict[str, str] = {}  # parent ExecID of a fill -> its venue, until its report
        self.handlers: dict[type, Callable[[Any], tuple[list[str], str] | None]] = {
            ExecutionReport: self._report, ChildOrderSent: self._child_sent, ChildUpdated: self._child_updated,
            AllocationBooked: lambda ev: self._allocated(ev, 1),
            AllocationCanceled: lambda ev: self._allocated(ev.booking, -1), SplitApplied: self._split}

    def follow(self, view: type, event: type) -> None:
        """Handle `view` (a Struct with the fields used here) as `event`."""
        self.handlers[view] = self.handlers[event]

    def apply(self, ev: Event) -> tuple[list[str], str] | None:
        """Move the positions an event moves: (the accounts moved, the symbol), or None."""
        h = self.handlers.get(type(ev))
        return None if h is None else h(ev)

    def _report(self, ev: ExecutionReport) -> tuple[list[str], str] | None:
        if ev.exec_type in FILL_TYPES:
            return self._fill(ev)
        if ev.restatement_reason == RestatementReason.CORPORATE_ACTION and ev.order_id in self.fills:
            self.fills[ev.order_id] = (ev.cum_qty, ev.cum_value)  # counted already, now in post-split shares
        return None

    def _split(self, ev: SplitApplied) -> tuple[list[str], str] | None:
        if ev.symbol not in self.book.symbols:
            return None
        return self.book.split(ev.symbol, ev.new, ev.old), ev.symbol

    def _child_sent(self, ev: ChildOrderSent) -> None:
        self.child_venues[ev.child_id] = ev.venue

    def _child_updated(self, ev: ChildUpdated) -> None:
        if ev.fill_exec_id is not None:
            self.fill_venues[ev.fill_exec_id] = self.child_venues.get(ev.child_id, "")

    def _fill(self, ev: ExecutionReport) -> tuple[list[str], str] | None:
        """A fill, bust or correction moves the position by its change of CumQty and value,
        at the venue of the child the fill came from (its ChildUpdated comes just before)."""
        venue = self.fill_venues.pop(ev.exec_id, "")
        book = self.book
        if ev.account not in book.accounts or ev.symbol not in book.symbols:
            return None
        cum, value = self.fills.get(ev.order_id, (0, 0))
        self.fills[ev.order_id] = (ev.cum_qty, ev.cum_value)
        d_qty, d_value = ev.cum_qty - cum, ev.cum_value - value
        sign = 1 if ev.side == Side.BUY else -1
        if d_qty and (d_qty > 0) == (d_value > 0):  # a fill, or a bust of one: the change itself
            book.fill(ev.account, ev.symbol, sign * d_qty, abs(d_value))
        elif d_qty or d_value:  # a correction: out at the old quantity and value, in at the new ones
            if cum:
                book.fill(ev.account, ev.symbol, -sign * cum, value)
            if ev.cum_qty:
                book.fill(ev.account, ev.symbol, sign * ev.cum_qty, ev.cum_value)
        book.at_venue(ev.account, ev.symbol, venue, sign > 0, d_qty, d_value)
        return [ev.account], ev.symbol

    def _allocated(self, ev: AllocationBooked, way: int) -> tuple[list[str], str] | None:
        """The block's account gives the shares up for their value, the targets take theirs:
        each at the block's average price, so the block's account realizes nothing (way -1:
        a cancel, the same moves the other way)."""
        book = self.book
        if ev.symbol not in book.symbols:
            return None
        sign = way * (1 if ev.side == Side.BUY else -1)
        # the block's account transfers (realizes nothing); the targets trade at the block's
        # price, except on a cancel, which takes back exactly what came in
        moves = [(ev.account, -sign * ev.qty, ev.value, book.transfer)] + [
            (s.account, sign * s.qty, s.value, book.fill if way > 0 else book.transfer) for s in ev.shares]
        moved = [account for account, *_ in moves if account in book.accounts]
        for account, qty, value, move in moves:
            if account in book.accounts:
                move(account, ev.symbol, qty, value)
                book.at_venue(account, ev.symbol, ALLOCATION_VENUE, qty > 0, abs(qty), value)
        return moved, ev.symbol


def rates_for(bases: list[str], currencies: list[str], usd: dict[str, int]) -> np.ndarray:
    """rates[a, i]: one unit of instrument i's currency in account a's base currency, from
    each currency's value in USD (fixed point); a currency without a rate counts at 1. A rate
    under the scale's last digit counts as that digit, not as nothing."""
    def value(ccy: str) -> int:
        return usd.get(ccy, SCALE)

    return np.array([[max(1, value(c) * SCALE // value(b)) for c in currencies] for b in bases], np.int64).reshape(
        len(bases), len(currencies))


def apply_fill(qty: int, cost: int, q: int, value: int) -> tuple[int, int, int]:
    """(new qty, new cost basis, realized) after a signed fill q for value (what it paid or
    received, >= 0: its quantity times its price, or an allocation's exact share of a block,
    which need not be a whole price per share)."""
    sign = 1 if q > 0 else -1
    if qty == 0 or (qty > 0) == (q > 0):
        return qty + q, cost + sign * value, 0
    closing = min(abs(q), abs(qty))
    released = abs(cost) * closing // abs(qty) if closing < abs(qty) else abs(cost)
    closing_value = value * closing // abs(q) if closing < abs(q) else value
    side = -sign  # the position's side
    realized = side * (closing_value - released)
    qty, cost = qty + sign * closing, cost - side * released
    rest = abs(q) - closing
    if rest:  # the fill goes through flat: what is left opens the other way
        qty, cost = sign * rest, sign * (value - closing_value)
    return qty, cost, realized


@njit(cache=True)
def _cell(qty, cost, marks, rates, a, i, plain):
    """Unrealized P&L of one position in the account's base currency (0 without a mark);
    plain: no step can saturate (oms.saturating)."""
    if marks[i] == 0 or qty[a, i] == 0:
        return 0
    return scaled(plus(times(qty[a, i], marks[i], plain), -cost[a, i], plain), rates[a, i], 1_000_000, plain)


@njit(cache=True)
def mark_to_market(qty, cost, marks, rates, unrealized, account_unrealized):
    """Every position at the current marks: each account's row in plain arithmetic, again
    saturating when the largest figures it met show a step could have left the range."""
    m = largest(marks)
    for a in range(qty.shape[0]):
        total, q, c, rate = _mark_row(qty, cost, marks, rates, unrealized, a, True)
        # |qty x mark - cost| <= big; big times the rate, and the row's cells summed, in range
        plain = False
        if fits(1, q, m) and c <= MAX_FIGURE - q * m:
            big = q * m + c
            plain = big <= MAX_FIGURE // max(rate, 1) and fits(qty.shape[1], big * rate // 1_000_000 + 1, 1)
        if not plain:
            total = _mark_row(qty, cost, marks, rates, unrealized, a, False)[0]
        account_unrealized[a] = total


@njit(cache=True)
def _mark_row(qty, cost, marks, rates, unrealized, a, plain):
    """Account a's positions marked: their total, and the largest |qty|, |cost| and rate met."""
    literally(plain)
    total, q, c, rate = 0, 0, 0, 0
    for i in range(qty.shape[1]):
        u = _cell(qty, cost, marks, rates, a, i, plain)
        unrealized[a, i] = u
        total = plus(total, u, plain)
        q, c, rate = max(q, abs(qty[a, i])), max(c, abs(cost[a, i])), max(rate, rates[a, i])
    return total, q, c, rate


@njit(cache=True)
def apply_prices(qty, cost, marks, rates, unrealized, account_unrealized, columns, new_marks):
    """New marks for some instruments: re-mark their columns, move the account totals by the difference."""
    for k in range(columns.shape[0]):
        i = columns[k]
        marks[i] = new_marks[k]
        for a in range(qty.shape[0]):
            u = _cell(qty, cost, marks, rates, a, i, False)
            account_unrealized[a] = sat_add(account_unrealized[a], sat_add(u, -unrealized[a, i]))
            unrealized[a, i] = u


@njit(cache=True)
def mark_cells(qty, cost, marks, rates, unrealized, account_unrealized, rows, i):
    """Re-mark one instrument for some accounts (after their fills)."""
    for k in range(rows.shape[0]):
        a = rows[k]
        u = _cell(qty, cost, marks, rates, a, i, False)
        account_unrealized[a] = sat_add(account_unrealized[a], sat_add(u, -unrealized[a, i]))
        unrealized[a, i] = u


def mark_to_market_ref(qty, cost, marks, rates) -> tuple[list[list[int]], list[int]]:
    """Plain Python: (unrealized per position, per account), base currency."""
    cells = [[0 if int(m) == 0 or int(q) == 0 else clamp(clamp(clamp(int(q) * int(m)) - int(c)) * int(r) // SCALE)
              for q, c, m, r in zip(qrow, crow, marks, rrow)] for qrow, crow, rrow in zip(qty, cost, rates)]
    return cells, [sat_sum(row) for row in cells]
