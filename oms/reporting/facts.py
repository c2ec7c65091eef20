"""One pass over the journal: the facts every report is computed from.

The journal is read on a read-only connection (a running OMS keeps writing; WAL lets a
reader see what is committed), in sequence order, decoded in bulk. Everything a report
shows comes from journaled events: orders and children from their events, prices from
`BestPrice` (the consolidated best bid and offer, journaled by the engine on each
change), positions through `oms.positions.Ledger` (the positions stream's own path).
Same journal and range, same facts: nothing depends on the clock or the host.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import struct
import typing
import zoneinfo
from pathlib import Path

import msgspec
import numpy as np

from oms.config import Config
from oms.journal import FORMAT_VERSION, JournalError, check_schema
from oms.model import (
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    BestPrice,
    CancelRejected,
    ChildOrderSent,
    ChildReplaceSent,
    ChildUpdated,
    ComplianceAlert,
    Event,
    ExecType,
    ExecutionReport,
    OrderAccepted,
    OrderRejected,
    OrdStatus,
    RiskChanged,
)
from oms.positions import FILL_TYPES, SCALE, Book, Ledger
from oms.states import TERMINAL

_CHUNK = 20_000
_ONE = msgspec.msgpack.Decoder(Event)
_ACKED = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED})


class ReportError(Exception):
    """Input a report cannot be made from: said plainly, nothing written."""


class Order(msgspec.Struct, gc=False):
    """A parent order as the reports see it: its terms, its arrival and how it went."""

    order_id: str
    session: str
    cl_ord_id: str  # the trader's first ClOrdID
    account: str
    symbol: str
    side: str  # codes as in FIX (Side, OrdStatus, ExecType values)
    ord_type: str
    tif: str
    qty: int
    price: int | None
    route: str  # the venue or routing policy it was accepted for
    arrival_ts: int
    bid: int | None  # consolidated best bid and offer when it arrived
    ask: int | None
    status: str = OrdStatus.PENDING_NEW.value
    cum_qty: int = 0
    cum_value: int = 0
    first_fill_ts: int = 0
    done_ts: int = 0  # when it reached a terminal status
    last_ts: int = 0
    children: int = 0
    text: str = ""


class Child(msgspec.Struct, gc=False):
    child_id: str
    order_id: str
    venue: str
    cl_ord_id: str
    qty: int
    price: int | None
    sent_ts: int
    bid: int | None
    ask: int | None
    status: str = OrdStatus.PENDING_NEW.value
    cum_qty: int = 0
    cum_value: int = 0
    ack_ts: int = 0
    first_fill_ts: int = 0
    last_ts: int = 0


class Fill(msgspec.Struct, gc=False):
    """A trade, bust or correction reported to the trader, with the child and venue ExecID it came from."""

    ts: int
    order_id: str
    exec_id: str
    exec_type: str
    exec_ref_id: str | None
    qty: int  # signed change of the order's CumQty (negative for a bust)
    value: int  # change of its executed value
    last_qty: int
    last_px: int
    child_id: str
    venue: str
    venue_exec_id: str


# ---------------------------------------------------------------- lighter views of the events
# The reports decode each record into a view holding only the fields they use (codes as
# plain text, which compares equal to the model's enums): decoding is most of a pass.
class _NewOrderV(msgspec.Struct, gc=False):
    session: str
    cl_ord_id: str
    account: str
    symbol: str
    side: str
    ord_type: str
    qty: int
    price: int | None = None
    tif: str = "0"


class OrderAcceptedV(msgspec.Struct, tag="OrderAccepted", gc=False):
    ts: int
    order_id: str
    order: _NewOrderV
    venue: str


class ExecutionReportV(msgspec.Struct, tag="ExecutionReport", gc=False):
    ts: int
    order_id: str
    exec_id: str
    exec_type: str
    ord_status: str
    account: str
    symbol: str
    side: str
    order_qty: int
    cum_qty: int
    cum_value: int
    last_qty: int = 0
    last_px: int = 0
    price: int | None = None
    exec_ref_id: str | None = None
    text: str = ""
    restatement_reason: int | None = None


class ChildOrderSentV(msgspec.Struct, tag="ChildOrderSent", gc=False):
    ts: int
    child_id: str
    order_id: str
    venue: str
    cl_ord_id: str
    symbol: str
    qty: int
    price: int | None
    resend: bool = False


class ChildReplaceSentV(msgspec.Struct, tag="ChildReplaceSent", gc=False):
    ts: int
    child_id: str
    qty: int
    price: int | None


class ChildUpdatedV(msgspec.Struct, tag="ChildUpdated", gc=False):
    ts: int
    child_id: str
    status: str
    qty: int
    cum_qty: int
    price: int | None
    venue_exec_id: str | None = None
    fill_exec_id: str | None = None


_AS = {OrderAcceptedV: OrderAccepted, ExecutionReportV: ExecutionReport, ChildOrderSentV: ChildOrderSent,
       ChildReplaceSentV: ChildReplaceSent, ChildUpdatedV: ChildUpdated}
_WHOLE = (BestPrice, OrderRejected, CancelRejected, ComplianceAlert, RiskChanged, AllocationBooked,
          AllocationCanceled, AllocationRejected)
_SEEN = {t.__name__ for t in (*_AS.values(), *_WHOLE)}
# every other event: its time only (new kinds of event are read, and passed over)
_OTHERS = tuple(msgspec.defstruct(f"{t.__name__}V", [("ts", int)], tag=t.__name__, gc=False)
                for t in typing.get_args(Event) if t.__name__ not in _SEEN)
_VIEWS = msgspec.msgpack.Decoder(list[typing.Union[(*_AS, *_WHOLE, *_OTHERS)]])  # type: ignore[misc]


def day_bounds(first: str, last: str | None = None, zone: str = "UTC") -> tuple[int, int]:
    """[start, end) in ns of the trading dates first..last (inclusive): from local midnight to
    local midnight in the calendar's time zone."""
    try:
        a = dt.date.fromisoformat(first)
        b = dt.date.fromisoformat(last or first)
    except ValueError as exc:
        raise ReportError(f"not a date (YYYY-MM-DD): {exc}") from None
    if b < a:
        raise ReportError(f"the range ends ({b}) before it starts ({a})")
    tz = zoneinfo.ZoneInfo(zone)
    return tuple(int(dt.datetime.combine(d, dt.time(), tz).timestamp()) * 10**9  # type: ignore[return-value]
                 for d in (a, b + dt.timedelta(days=1)))


def zone_of(cfg: Config) -> str:
    """Trading dates are the calendar's (UTC without one)."""
    return cfg.calendar.time_zone if cfg.calendar is not None else "UTC"


def date_of(ns: int, zone: str = "UTC") -> str:
    """The date of an instant in the time zone."""
    return dt.datetime.fromtimestamp(ns // 10**9, zoneinfo.ZoneInfo(zone)).date().isoformat()


class Reader:
    """A journal opened for reports: read-only, checked (exists, is a journal, not from a
    newer OMS, not empty)."""

    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise ReportError(f"{path}: no such journal")
        self.path = Path(path)
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            meta = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('format', 'schema')"))
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ReportError(f"{path}: not an OMS journal ({exc})") from None
        try:
            if meta.get("format") != FORMAT_VERSION:
                raise JournalError(f"{path}: journal format {meta.get('format')!r}, expected {FORMAT_VERSION}")
            check_schema(self.path, (meta["schema"],) if "schema" in meta else None)
        except JournalError as exc:
            self.db.close()
            raise ReportError(str(exc)) from None
        self.last_seq = self.db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        if not self.last_seq:
            self.db.close()
            raise ReportError(f"{path}: the journal is empty: nothing to report")

    def span(self) -> tuple[int, int]:
        """The first and last event timestamps (ns)."""
        ts = []
        for seq in (1, self.last_seq):
            row = self.db.execute("SELECT payload FROM records WHERE seq = ?", (seq,)).fetchone()
            ts.append(_ONE.decode(row[0]).ts)
        return ts[0], ts[1]

    def events(self, until: int):
        """Events (as views) in journal order up to record `until`: a chunk of records comes
        from SQLite as one blob and is decoded in one call. (The range is a scan of the
        rowid, seq, in order; the subquery's ORDER BY keeps it so for the aggregate.)"""
        last = 0
        while last < until:
            blob, n = self.db.execute(
                "SELECT CAST(group_concat(payload, x'') AS BLOB), count(*) FROM "
                "(SELECT payload FROM records WHERE seq > ? AND seq <= ? ORDER BY seq)",
                (last, min(until, last + _CHUNK))).fetchone()
            if not n:
                return
            last += _CHUNK
            yield from _VIEWS.decode(b"\xdd" + struct.pack(">I", n) + blob)

    def close(self) -> None:
        self.db.close()


class Facts:
    """What happened in [start, end): orders and children active in it (with their whole
    history), fills, allocations, compliance events, prices (to end + 60 s, for markouts)
    and positions at both ends."""

    MARKOUT_TAIL_NS = 60 * 10**9

    def __init__(self, cfg: Config, start: int, end: int, positions: bool = True) -> None:
        """positions=False: no positions (the blotter and TCA need none, and they are a third of a pass)."""
        self.cfg, self.start, self.end, self.with_positions = cfg, start, end, positions
        self.orders: dict[str, Order] = {}
        self.children: dict[str, Child] = {}
        self.active: set[str] = set()  # orders with an event in range
        self.fills: list[Fill] = []
        self.allocations: list[AllocationBooked | AllocationCanceled | AllocationRejected] = []
        self.compliance: list[OrderRejected | CancelRejected | AllocationRejected | ComplianceAlert | RiskChanged] = []
        self.bbo: dict[str, tuple[int | None, int | None]] = {}
        self.quotes: dict[str, tuple[list[int], list[int], list[int]]] = {}  # symbol -> ts, bid, ask
        self.symbols = [i.symbol for i in cfg.instruments]
        self.accounts = [a.id for a in cfg.accounts]
        self.currency = {i.symbol: i.currency for i in cfg.instruments}
        self.base = {a.id: a.base_currency for a in cfg.accounts}
        self.book = Book(self.accounts, self.symbols, cfg.fx_rates(), marking=False)
        self.ledger = Ledger(self.book)
        for view, event in _AS.items():
            if event in self.ledger.handlers:
                self.ledger.follow(view, event)
        self.opening: tuple[np.ndarray, ...] | None = None
        self.closing_bbo: dict[str, tuple[int | None, int | None]] | None = None
        self.closed_at = 0  # events before the range's end
        self.opening_gross: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self.closing_gross: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self.pnl_curve: list[tuple[int, int]] = []  # (ts, realized P&L of all accounts, base currencies summed)
        self._realized_total = 0
        self._last_realized = self.book.realized
        self._fill_child: dict[str, tuple[str, str]] = {}  # parent ExecID -> (child_id, venue ExecID)
        self.events_read = 0
        self.journal_end = 0
        self._names: dict[str, str] = {}
        self.derived: dict[str, object] = {}  # what several reports compute from the facts, once (tables.once)

    # ------------------------------------------------------------------ the pass
    def read(self, reader: Reader) -> Facts:
        first, last = reader.span()
        self.journal_end = last  # no price is known after it: a markout beyond it is empty
        zone = zone_of(self.cfg)
        nothing = ReportError(f"no events from {date_of(self.start, zone)} to {date_of(self.end - 1, zone)}: the "
                              f"journal {reader.path} covers {date_of(first, zone)} to {date_of(last, zone)}")
        if last < self.start or first >= self.end:
            raise nothing
        handlers = {OrderAcceptedV: self._accepted, ExecutionReportV: self._report, ChildOrderSentV: self._child_sent,
                    ChildReplaceSentV: self._child_replaced, ChildUpdatedV: self._child_updated,
                    BestPrice: self._price, OrderRejected: self._compliance, CancelRejected: self._compliance,
                    ComplianceAlert: self._compliance, RiskChanged: self._compliance,
                    AllocationBooked: self._allocation, AllocationCanceled: self._allocation,
                    AllocationRejected: self._allocation}
        moves = self.ledger.handlers if self.with_positions else {}
        calls = {t: (handlers.get(t), moves.get(t)) for t in (*handlers, *moves)}  # one look-up per event
        start, end, tail = self.start, self.end, self.end + self.MARKOUT_TAIL_NS
        n = before = 0
        opened = False
        for ev in reader.events(reader.last_seq):
            n += 1
            ts, t = ev.ts, type(ev)
            if ts >= start:
                if not opened:
                    self._open()
                    opened = True
                    before = n - 1
                if ts >= end:
                    if self.closing_bbo is None:
                        self._close(n - 1)
                    if ts >= tail:
                        break
                    if t is BestPrice:
                        self._price(ev, False)
                    continue
            hm = calls.get(t)
            if hm is None:
                continue
            h, m = hm
            if h is not None:
                h(ev, ts >= start)
            if m is not None:
                moved = m(ev)
                if moved is not None and ts >= start:
                    self._moved(moved, ts)
        if self.opening is None:
            self._open()
        if self.closing_bbo is None:
            self._close(n)
        if not opened or self.closed_at == before:  # a day inside the journal's span without an event
            raise nothing
        self.events_read = n
        return self

    def _open(self) -> None:
        """The range starts: positions as they stand are the opening ones."""
        b = self.book
        self.opening = (b.qty.copy(), b.cost.copy(), b.realized.copy())
        self.opening_gross = self._gross()
        self._last_realized = b.realized.copy()

    def _close(self, at: int) -> None:
        """The range ends (before event `at`): closing positions, marked at the mid of the
        consolidated best bid and offer as it stood (later prices serve markouts only)."""
        self.closed_at = at
        self.closing_bbo = dict(self.bbo)
        if not self.with_positions:
            return
        self.closing_gross = self._gross()
        b = self.book
        for symbol, (bid, ask) in self.closing_bbo.items():
            if bid and ask and symbol in b.symbols:
                b.marks[b.symbols[symbol]] = (bid + ask) // 2
        b.mark_all()

    def _gross(self) -> dict[tuple[str, str], tuple[int, int, int, int]]:
        """(bought, sold, buy value, sell value) per position, over its venues."""
        out = {}
        for key, venues in self.ledger.book.venues.items():
            v = venues.values()
            out[key] = (sum(x.bought for x in v), sum(x.sold for x in v), sum(x.buy_value for x in v),
                        sum(x.sell_value for x in v))
        return out

    def _moved(self, moved: tuple[list[str], str], ts: int) -> None:
        """Follow the realized P&L of all accounts (each in its base currency, summed) for
        the intraday chart."""
        b, last = self.book, self._last_realized
        i = b.symbols[moved[1]]
        total = self._realized_total
        for account in moved[0]:
            a = b.accounts[account]
            r = int(b.realized[a, i])
            total += (r - int(last[a, i])) * int(b.rates[a, i]) // SCALE
            last[a, i] = r
        self._realized_total = total
        self.pnl_curve.append((ts, total))

    def _price(self, ev: BestPrice, _in_range: bool = True) -> None:
        self.bbo[ev.symbol] = (ev.bid, ev.ask)
        q = self.quotes.get(ev.symbol)
        if q is None:
            q = self.quotes[ev.symbol] = ([], [], [])
        q[0].append(ev.ts)
        q[1].append(ev.bid or 0)
        q[2].append(ev.ask or 0)

    def _accepted(self, ev: OrderAcceptedV, in_range: bool) -> None:
        o = ev.order
        bid, ask = self.bbo.get(o.symbol, (None, None))
        name = self._names.setdefault  # one string per session, account, symbol, route: a million orders share them
        self.orders[ev.order_id] = Order(
            ev.order_id, name(o.session, o.session), o.cl_ord_id, name(o.account, o.account),
            name(o.symbol, o.symbol), o.side, o.ord_type, o.tif, o.qty, o.price, name(ev.venue, ev.venue), ev.ts,
            bid, ask, last_ts=ev.ts)
        if in_range:
            self.active.add(ev.order_id)

    def _report(self, ev: ExecutionReportV, in_range: bool) -> None:
        o = self.orders.get(ev.order_id)
        if o is None:
            return
        if in_range:
            self.active.add(ev.order_id)
        et = ev.exec_type
        if et in FILL_TYPES:
            child_id, venue_exec = self._fill_child.pop(ev.exec_id, ("", ""))
            ch = self.children.get(child_id)
            value = ev.cum_value - o.cum_value
            if ch is not None:
                ch.cum_value += value
            if in_range:  # ids and names shared with the order and child, not held twice
                self.fills.append(Fill(ev.ts, o.order_id, ev.exec_id, et, ev.exec_ref_id, ev.cum_qty - o.cum_qty,
                                       value, ev.last_qty, ev.last_px, ch.child_id if ch is not None else child_id,
                                       ch.venue if ch is not None else "", venue_exec))
            if et == ExecType.TRADE and not o.first_fill_ts:
                o.first_fill_ts = ev.ts
        o.status, o.cum_qty, o.cum_value, o.qty, o.last_ts = ev.ord_status, ev.cum_qty, ev.cum_value, ev.order_qty, ev.ts
        if ev.price is not None:
            o.price = ev.price
        if ev.text:
            o.text = ev.text
        if ev.ord_status in TERMINAL and not o.done_ts:
            o.done_ts = ev.ts

    def _child_sent(self, ev: ChildOrderSentV, in_range: bool) -> None:
        if ev.resend and ev.child_id in self.children:
            return
        bid, ask = self.bbo.get(ev.symbol, (None, None))
        o = self.orders.get(ev.order_id)
        if o is not None:
            o.children += 1
        self.children[ev.child_id] = Child(ev.child_id, o.order_id if o is not None else ev.order_id,
                                           self._names.setdefault(ev.venue, ev.venue), ev.cl_ord_id, ev.qty, ev.price,
                                           ev.ts, bid, ask, last_ts=ev.ts)

    def _child_replaced(self, ev: ChildReplaceSentV, in_range: bool) -> None:
        ch = self.children.get(ev.child_id)
        if ch is not None:
            ch.qty, ch.price = ev.qty, ev.price

    def _child_updated(self, ev: ChildUpdatedV, in_range: bool) -> None:
        ch = self.children.get(ev.child_id)
        if ch is None:
            return
        if ev.fill_exec_id is not None:
            self._fill_child[ev.fill_exec_id] = (ev.child_id, ev.venue_exec_id or "")
            if ev.cum_qty > ch.cum_qty and not ch.first_fill_ts:
                ch.first_fill_ts = ev.ts
        if not ch.ack_ts and ev.status in _ACKED:
            ch.ack_ts = ev.ts
        ch.status, ch.cum_qty, ch.qty, ch.price, ch.last_ts = ev.status, ev.cum_qty, ev.qty, ev.price, ev.ts

    def _compliance(self, ev, in_range: bool) -> None:
        if in_range:
            self.compliance.append(ev)

    def _allocation(self, ev, in_range: bool) -> None:
        if in_range:
            self.allocations.append(ev)
            if type(ev) is AllocationRejected:
                self.compliance.append(ev)


def read_facts(cfg: Config, journal: Path, start: int, end: int, positions: bool = True) -> Facts:
    reader = Reader(journal)
    try:
        return Facts(cfg, start, end, positions).read(reader)
    finally:
        reader.close()
