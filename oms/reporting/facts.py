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
import zoneinfo
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oms.config import Config
from oms.journal import FORMAT_VERSION, JournalError, check_schema, segments
from oms.model import (
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    CancelRejected,
    ComplianceAlert,
    Event,
    ExecType,
    OrderRejected,
    OrdStatus,
    RestatementReason,
    RiskChanged,
    Side,
    SplitApplied,
    TimeInForce,
)
from oms.positions import ALLOCATION_VENUE, FILL_TYPES, Book
from oms.reporting import ledger
from oms.reporting.extract import CHUNK, Extract
from oms.reporting.scan import Chunk, Columns, scan_chunk
from oms.states import TERMINAL

T = TypeVar("T")
_ONE = msgspec.msgpack.Decoder(Event)
_ACKED = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED})


class ReportError(Exception):
    """Input a report cannot be made from: said plainly, nothing written."""


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


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. SQLite reads a journal in WAL mode through a shared-memory file
    beside it, which it must be able to create; in a folder this user cannot write (a backup
    mount) a journal closed cleanly (no WAL left) is opened as immutable instead, and one
    with a WAL is refused saying so."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "unable to open" in str(exc):  # its shared-memory file cannot be made
            db.close()
            wal = Path(f"{path}-wal")
            if wal.exists() and wal.stat().st_size:
                raise ReportError(f"{path}: its folder cannot be written and it has a write-ahead log ({wal.name}) "
                                  "that SQLite must share: copy the journal and that file to a folder you can write "
                                  "and report from there") from None
            return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    except sqlite3.DatabaseError:
        pass  # not a database: the caller says so
    return db


class Reader:
    """A journal opened for reports: read-only, checked (exists, is a journal, not from a
    newer OMS, not empty), over its segments (archives, then the live journal)."""

    def __init__(self, path: Path, extract: bool = True) -> None:
        """extract: read and write the report extract (`oms.reporting.extract`); without, scan every record."""
        if not Path(path).is_file():
            raise ReportError(f"{path}: no such journal")
        self.path = Path(path)
        self.db = _read_only(self.path)
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
        self._segments: dict[Path, sqlite3.Connection] = {}
        self.extract = Extract(self.path) if extract else None
        self.last_seq = max(db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
                            for db in self._files())
        if not self.last_seq:
            self.close()
            raise ReportError(f"{path}: the journal is empty: nothing to report")

    def _files(self) -> list[sqlite3.Connection]:
        """The archive segments as the folder lists them now (each opened once), then the live
        journal: an archiving under way moves records into a new segment, then deletes them."""
        for p in segments(self.path)[:-1]:
            if p not in self._segments:
                self._segments[p] = _read_only(p)
        return [*(self._segments[p] for p in sorted(self._segments)), self.db]

    def _first_holding(self, query: str, seq: int, args: tuple, after: int = 0) -> tuple[int, tuple]:
        """(index among `_files`, row) of `query` on the first file from `after` on whose answer
        starts at record `seq` (its first column); the files listed again once if none does."""
        for again in (False, True):
            files = self._files()
            for k in range(0 if again else after, len(files)):
                row = files[k].execute(query, args).fetchone()
                if row is not None and row[0] == seq:
                    return k, row
        raise ReportError(f"{self.path}: record {seq} is in neither the journal nor its archive")

    def span(self) -> tuple[int, int]:
        """The first and last event timestamps (ns)."""
        ts = []
        for seq in (1, self.last_seq):
            _, (_, payload) = self._first_holding("SELECT seq, payload FROM records WHERE seq = ?", seq, (seq,))
            ts.append(_ONE.decode(payload).ts)
        return ts[0], ts[1]

    def read(self, until_ts: int, skip: frozenset[tuple[str, str]] = frozenset()) -> Columns:
        """The records to `last_seq` in columns (but the fields in `skip`), up to the first
        chunk holding an event at or after `until_ts`."""
        cols = Columns(self.last_seq, skip)
        try:
            for chunk in self._chunks():
                cols.keep(chunk)
                if (np.frombuffer(chunk.ts, np.int64) >= until_ts).any():
                    break
        except ValueError as exc:
            raise ReportError(f"{self.path}: {exc}") from None
        return cols

    def extend(self, after: int = 0) -> None:
        """Store in the extract each whole chunk it lacks after record `after` (nothing else
        read; the chunks up to `after` taken as checked)."""
        try:
            for _ in self._chunks(wanted=False, taken=after):
                pass
        except ValueError as exc:
            raise ReportError(f"{self.path}: {exc}") from None

    def _chunks(self, wanted: bool = True, taken: int = 0) -> Iterator[Chunk]:
        """The chunks in order: from the extract where it has them, else scanned from the
        journal, two at once on threads of their own (the kernels hold no GIL), while the
        next is read on another and the last kept on the caller's. A whole chunk scanned is
        stored in the extract. Not `wanted`: only the chunks to store are scanned."""
        with ThreadPoolExecutor(2) as pool:
            scanning: deque[Future] = deque()
            for item in _ahead(self._sources(wanted, taken)):
                if isinstance(item, Chunk):
                    scanning.append(_done(item))
                else:
                    scanning.append(pool.submit(self._scan, *item))
                if len(scanning) == 2:
                    yield scanning.popleft().result()
            while scanning:
                yield scanning.popleft().result()

    def _scan(self, blob: bytes, n: int, first: int, whole: bool) -> Chunk:
        chunk = scan_chunk(blob, n, first)
        if whole and self.extract is not None:
            self.extract.store(chunk)
        return chunk

    def _sources(self, wanted: bool, taken: int) -> Iterator[Chunk | tuple[bytes, int, int, bool]]:
        """The records to `last_seq` a chunk at a time in journal order: a chunk from the
        extract, or a blob from SQLite (its records' payloads one after another) as (blob,
        records, first seq, whole: the extract keeps it). Each seq once, from the first
        segment holding it. From record `taken` + 1 on."""
        file = 0
        while taken < self.last_seq and (wanted or self.extract is None or self.extract.writable):
            found = self.extract.find(taken + 1) if self.extract is not None else None
            if found is not None and found[0] <= self.last_seq and found[1] == (self._crc(taken + 1),
                                                                               self._crc(found[0])):
                chunk = self.extract.load(taken + 1)  # its body checked too: a damaged one is scanned again
                if chunk is not None:
                    if wanted:
                        yield chunk
                    taken = found[0]
                    continue
            file, (_, blob, n, last) = self._first_holding(
                "SELECT min(seq), CAST(group_concat(payload, x'') AS BLOB), count(*), max(seq) FROM (SELECT seq, "
                "payload FROM records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?)",
                taken + 1, (taken, self.last_seq, CHUNK), file)
            if last != taken + n:
                raise ReportError(f"{self.path}: records {taken + 1} to {last} are not all there")
            whole = n == CHUNK or last < self.last_seq  # or its segment ends there
            if wanted or whole:
                yield blob, n, taken + 1, whole
            taken = last

    def _crc(self, seq: int) -> int:
        """The journal's check of record `seq`."""
        return self._first_holding("SELECT seq, crc FROM records WHERE seq = ?", seq, (seq,))[1][1]

    def close(self) -> None:
        for db in [*self._segments.values(), self.db]:
            db.close()


class Rows:
    """Orders, children or fills in columns: text (Arrow), int64 figures (0 where absent)
    and where the nullable ones are known."""

    def __init__(self, text: dict[str, pa.Array], ints: dict[str, np.ndarray],
                 valid: dict[str, np.ndarray] | None = None) -> None:
        self.text = pa.table(text) if text else pa.table({"_": pa.nulls(len(next(iter(ints.values()))))})
        self.ints, self.valid = ints, valid or {}

    def __len__(self) -> int:
        return self.text.num_rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.ints[name]

    def column(self, name: str) -> pa.ChunkedArray:
        return self.text.column(name)


def _done(value: T) -> Future:
    """A future that already holds `value`."""
    f: Future = Future()
    f.set_result(value)
    return f


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """The items, each next one fetched on a thread while this one is used: SQLite and the
    scan kernel run without the GIL, so stages chained through this take about the time of
    the slowest, not their sum."""
    with ThreadPoolExecutor(1) as pool:
        following = pool.submit(next, items, None)
        while (item := following.result()) is not None:
            following = pool.submit(next, items, None)
            yield item


def _take(cols: dict[str, object], rows: np.ndarray) -> dict[str, object]:
    """The rows of each column (the columns themselves when that is all of them)."""
    if len(rows) == len(cols["seq"]):  # type: ignore[arg-type]
        return cols
    return {k: v.take(pa.array(rows)) if isinstance(v, pa.Array) else v[rows] for k, v in cols.items()}


def _index_in(values: pa.Array, keys: pa.Array) -> np.ndarray:
    """Each value's first row among keys (-1: none); exact (Arrow's hash of the text)."""
    found = pc.index_in(values, value_set=keys)
    return found.fill_null(-1).to_numpy().astype(np.int64)


def _last(group: np.ndarray, n: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Per group 0..n-1: its last row (of `rows`, all when None; rows in order), -1 without one."""
    out = np.full(n, -1, np.int64)
    k = np.arange(len(group)) if rows is None else rows
    out[group[k]] = k  # rows in ascending order: NumPy assigns the repeated groups in order, the last stays
    return out


def _first(group: np.ndarray, n: int, rows: np.ndarray | None = None) -> np.ndarray:
    k = np.arange(len(group)) if rows is None else rows
    return _last(group, n, k[::-1])


def _pick(index: np.ndarray, values: np.ndarray, default: np.ndarray | int) -> np.ndarray:
    """values[index] where index >= 0, default elsewhere."""
    return np.where(index >= 0, values[np.maximum(index, 0)] if len(values) else 0, default)


def _pick_text(index: np.ndarray, values: pa.Array, default: pa.Array | str) -> pa.Array:
    found = values.take(pa.array(np.where(index >= 0, index, 0))) if len(values) else pa.nulls(len(index), pa.string())
    if isinstance(default, str):
        default = pa.repeat(default, len(index)) if len(index) else pa.array([], pa.string())
    return pc.if_else(pa.array(index >= 0), found, default)


def _codes(values: pa.Array, names: list[str]) -> np.ndarray:
    """Each value's number in names (names extended with the unseen values, in order of first appearance)."""
    known = set(names)
    names.extend(v for v in values.unique().to_pylist() if v not in known)
    return _index_in(values, pa.array(names, pa.string()))


class Facts:
    """What happened in [start, end): orders and children active in it (with their whole
    history), fills, allocations, compliance events, prices (to end + 60 s, for markouts)
    and positions at both ends; all in columns."""

    MARKOUT_TAIL_NS = 60 * 10**9

    def __init__(self, cfg: Config, start: int, end: int, positions: bool = True) -> None:
        """positions=False: no positions (the blotter and TCA need none)."""
        self.cfg, self.start, self.end, self.with_positions = cfg, start, end, positions
        self.symbols = [i.symbol for i in cfg.instruments]
        self.accounts = [a.id for a in cfg.accounts]
        self.currency = {i.symbol: i.currency for i in cfg.instruments}
        self.base = {a.id: a.base_currency for a in cfg.accounts}
        self.book = Book(self.accounts, self.symbols, cfg.fx_rates(), marking=False)
        self.allocations: list[AllocationBooked | AllocationCanceled | AllocationRejected] = []
        self.compliance: list[OrderRejected | CancelRejected | AllocationRejected | ComplianceAlert | RiskChanged] = []
        self.quotes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # symbol -> ts, bid, ask
        self.opening: tuple[np.ndarray, ...] | None = None
        self.closing_bbo: dict[str, tuple[int | None, int | None]] = {}
        self.opening_gross = self.closing_gross = np.zeros((4, len(self.accounts), len(self.symbols)), np.int64)
        self.pnl_curve: list[tuple[int, int]] = []  # (ts, realized P&L of all accounts, base currencies summed)
        self.events_read = 0
        self.journal_end = 0
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
        start, end, tail = self.start, self.end, self.end + self.MARKOUT_TAIL_NS
        read = reader.read(tail, frozenset() if self.with_positions else _POSITIONS_ONLY)
        ts, self._whole = read.ts, read.whole
        past = np.flatnonzero(ts >= tail)  # the pass stops at the first event past the markouts' tail
        stop = int(past[0]) if len(past) else len(ts)
        self.events_read = stop + 1 if len(past) else stop
        ts = ts[:stop]
        after = np.flatnonzero(ts >= start)
        closes = np.flatnonzero(ts >= end)
        self.open_at = int(after[0]) if len(after) else stop  # records before the range
        self.closed_at = int(closes[0]) if len(closes) else self.events_read  # records before its end
        if not len(after) or self.closed_at == self.open_at:  # a day inside the journal's span without an event
            raise nothing
        self._handled = ts < end  # what the events in range and before it tell (later ones: prices only)
        self._ts = ts
        cols = {k: _take(c, np.flatnonzero(c["seq"] <= stop)) if c else c for k, c in read.columns().items()}
        self._prices(cols.get("BestPrice") or {})
        self._orders(cols)
        for seq, ev in self._whole:
            if seq <= stop and self._handled[seq - 1] and ev.ts >= start:
                if type(ev) in (AllocationBooked, AllocationCanceled, AllocationRejected):
                    self.allocations.append(ev)
                if type(ev) not in (AllocationBooked, AllocationCanceled, SplitApplied):
                    self.compliance.append(ev)
        if self.with_positions:
            self._positions(cols)
        return self

    def _rows(self, c: dict[str, object]) -> tuple[dict[str, object], np.ndarray]:
        """The events of one kind the facts are built from (before the range's end), and
        which of them are in the range."""
        if not c:
            return c, np.zeros(0, np.bool_)
        kept = _take(c, np.flatnonzero(self._handled[c["seq"] - 1]))
        return kept, kept["ts"] >= self.start

    def _prices(self, bp: dict[str, object]) -> None:
        """Quotes per symbol (to the markouts' tail), and the consolidated best bid and offer
        before any record (`bbo`)."""
        self._names: list[str] = []
        if not bp:
            self._bp_key = np.zeros(0, np.int64)
            return
        code = _codes(bp["symbol"], self._names)
        bid, ask = np.where(bp["bid?"], bp["bid"], 0), np.where(bp["ask?"], bp["ask"], 0)
        for k in np.unique(code).tolist():
            rows = np.flatnonzero(code == k)
            self.quotes[self._names[k]] = (bp["ts"][rows], bid[rows], ask[rows])
        order = np.argsort(code * _SEQS + bp["seq"], kind="stable")
        self._bp_key = (code * _SEQS + bp["seq"])[order]
        self._bp = {k: bp[k][order] for k in ("bid", "ask", "bid?", "ask?")}
        names = list(self._names)
        closing = self.bbo(pa.array(names, pa.string()), np.full(len(names), self.closed_at + 1))
        self.closing_bbo = {s: (int(b), int(a)) for s, b, a, hb, ha in zip(names, *closing) if hb and ha}

    def bbo(self, symbols: pa.Array, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The consolidated best bid and offer of each symbol just before record `seq`:
        (bid, ask, bid known, ask known); 0 and not known without one."""
        code = _codes(symbols, self._names)
        if not len(self._bp_key):
            z = np.zeros(len(seqs), np.int64)
            return z, z, z != 0, z != 0
        i = np.searchsorted(self._bp_key, code * _SEQS + seqs, "left") - 1
        j = np.maximum(i, 0)
        hit = (i >= 0) & (self._bp_key[j] // _SEQS == code)
        hb, ha = hit & self._bp["bid?"][j], hit & self._bp["ask?"][j]
        return np.where(hb, self._bp["bid"][j], 0), np.where(ha, self._bp["ask"][j], 0), hb, ha

    def _orders(self, cols: dict[str, dict]) -> None:
        """Parents, children and fills: each one's whole history to the range's end, as the
        engine's events left it (an event's figures are the order's resulting state)."""
        oa, oa_in = self._rows(cols["OrderAccepted"])
        er, er_in = self._rows(cols["ExecutionReport"])
        cs, _ = self._rows(cols["ChildOrderSent"])
        cr, _ = self._rows(cols["ChildReplaceSent"])
        cu, _ = self._rows(cols["ChildUpdated"])
        n = len(oa.get("seq", ()))
        ids = oa["order_id"] if n else _TEXT
        background = ThreadPoolExecutor(1)  # the children's joins beside the parents' (Arrow's hash joins hold no GIL)
        joined = background.submit(_children, cs, cu, cr, ids)
        background.shutdown(wait=False)
        # parents: the last report of each order sets its state; a few figures keep their first or last known value
        order = _index_in(er["order_id"], ids) if er else _NONE
        known = np.flatnonzero(order >= 0)
        er, er_in, order = _take(er, known) if er else er, er_in[known], order[known]
        last = _last(order, n)
        ts = er.get("ts", _NONE)
        fill = _in(er, "exec_type", _FILL_TYPES)
        cum_qty, cum_value = er.get("cum_qty", _NONE), er.get("cum_value", _NONE)
        prior = _prior(order)
        d_qty, d_value = cum_qty - _pick(prior, cum_qty, 0), cum_value - _pick(prior, cum_value, 0)
        priced = _last(order, n, np.flatnonzero(er.get("price?", _NONE)))
        texted = _last(order, n, np.flatnonzero(pc.not_equal(er["text"], "").fill_null(False).to_numpy(
            zero_copy_only=False))) if er else last
        o_ints = {
            "qty": _pick(last, er.get("order_qty", _NONE), oa.get("order.qty", _NONE)),
            "cum_qty": _pick(last, cum_qty, 0), "cum_value": _pick(last, cum_value, 0),
            "arrival_ts": oa.get("ts", _NONE), "last_ts": _pick(last, ts, oa.get("ts", _NONE)),
            "done_ts": _pick(_first(order, n, np.flatnonzero(_in(er, "ord_status", _TERMINAL))), ts, 0),
            "first_fill_ts": _pick(_first(order, n, np.flatnonzero(_in(er, "exec_type", _TRADE))),
                                   ts, 0),
            "price": _pick(priced, er.get("price", _NONE), oa.get("order.price", _NONE)),
        }
        o_ints["bid"], o_ints["ask"], has_bid, has_ask = self.bbo(oa.get("order.symbol", _TEXT), oa.get("seq", _NONE))
        o_valid = {"price": (priced >= 0) | oa.get("order.price?", _NONE).astype(bool), "bid": has_bid, "ask": has_ask}
        o_text = {"order_id": ids, "cl_ord_id": oa.get("order.cl_ord_id"), "session": oa.get("order.session"),
                  "account": oa.get("order.account"), "symbol": oa.get("order.symbol"),
                  "side": _names(oa.get("order.side"), _SIDE), "ord_type": oa.get("order.ord_type"),
                  "tif": pc.fill_null(oa["order.tif"], TimeInForce.DAY.value) if n else None, "route": oa.get("venue"),
                  "status": _names(_pick_text(last, er.get("ord_status", _TEXT), OrdStatus.PENDING_NEW.value), _STATUS),
                  "text": _pick_text(texted, er.get("text", _TEXT), "")}
        active = np.zeros(n, np.bool_)
        active[np.flatnonzero(oa_in)] = True
        active[order[er_in]] = True
        self.parents = _subset(o_text, o_ints, o_valid, np.flatnonzero(active))
        position = np.full(n, -1, np.int64)
        position[active] = np.arange(int(active.sum()))
        self._all_orders = (ids, oa.get("order.account", _TEXT), oa.get("order.symbol", _TEXT))

        # children: as first sent, then as their venue's reports left them
        cs, child_ids, cu, upd, cr, rep, parent = joined.result()
        m = len(child_ids)
        last_cu = _last(upd, m)
        # qty and price: as the last of its updates and replaces set them
        by_seq = np.argsort(np.concatenate([cu.get("seq", _NONE), cr.get("seq", _NONE)]), kind="stable")
        changed = _last(np.concatenate([upd, rep])[by_seq], m)
        changed = np.where(changed >= 0, by_seq[np.maximum(changed, 0)] if len(by_seq) else 0, -1)
        qty_src = np.concatenate([cu.get("qty", _NONE), cr.get("qty", _NONE)])
        px_src = np.concatenate([cu.get("price", _NONE), cr.get("price", _NONE)])
        px_has = np.concatenate([cu.get("price?", _BOOL), cr.get("price?", _BOOL)])
        cu_cum = cu.get("cum_qty", _NONE)
        first_fill = (cu["fill_exec_id"].is_valid().to_numpy(zero_copy_only=False) if cu else _BOOL) & (
            cu_cum > _pick(_prior(upd), cu_cum, 0))
        acked = _in(cu, "status", _ACKED_CODES)
        # fills: a report of a trade, bust or correction, at the child (and venue ExecID) whose update came with it
        fill_rows = np.flatnonzero(fill)
        via = _index_in(er["exec_id"].take(pa.array(fill_rows)), cu["fill_exec_id"]) if len(fill_rows) and cu \
            else np.full(len(fill_rows), -1, np.int64)
        via = np.where((via >= 0) & (_pick(via, cu.get("seq", _NONE), 0) < er.get("seq", _NONE)[fill_rows]), via, -1)
        fill_child = _pick(via, upd, -1)
        c_value = np.zeros(m, np.int64)
        np.add.at(c_value, fill_child[fill_child >= 0], d_value[fill_rows][fill_child >= 0])
        cu_ts = cu.get("ts", _NONE)
        c_ints = {
            "qty": _pick(changed, qty_src, cs.get("qty", _NONE)), "cum_qty": _pick(last_cu, cu_cum, 0),
            "cum_value": c_value, "sent_ts": cs.get("ts", _NONE),
            "ack_ts": _pick(_first(upd, m, np.flatnonzero(acked)), cu_ts, 0),
            "first_fill_ts": _pick(_first(upd, m, np.flatnonzero(first_fill)), cu_ts, 0),
            "last_ts": _pick(last_cu, cu_ts, cs.get("ts", _NONE)),
            "price": _pick(changed, px_src, cs.get("price", _NONE)),
        }
        c_ints["bid"], c_ints["ask"], c_has_bid, c_has_ask = self.bbo(cs.get("symbol", _TEXT), cs.get("seq", _NONE))
        c_valid = {"price": np.where(changed >= 0, _pick(changed, px_has, False), cs.get("price?", _BOOL)),
                   "bid": c_has_bid, "ask": c_has_ask}
        c_text = {"child_id": child_ids, "cl_ord_id": cs.get("cl_ord_id"), "venue": cs.get("venue"),
                  "status": _names(_pick_text(last_cu, cu.get("status", _TEXT), OrdStatus.PENDING_NEW.value), _STATUS)}
        of_active = np.flatnonzero(_pick(parent, position, -1) >= 0)
        self.children = _subset(c_text, c_ints, c_valid, of_active)
        self.child_parent = position[parent[of_active]]
        # the fills in the range, in journal order
        shown = fill_rows[er_in[fill_rows]]
        child, cu_row = fill_child[er_in[fill_rows]], via[er_in[fill_rows]]
        f_ints = {"ts": ts[shown], "qty": d_qty[shown], "value": d_value[shown],
                  "last_qty": er.get("last_qty", _NONE)[shown], "last_px": er.get("last_px", _NONE)[shown]}
        f_text = {k: er.get(k, _TEXT).take(pa.array(shown, pa.int64())) for k in ("order_id", "exec_id", "exec_type",
                                                                                  "exec_ref_id")}
        f_text["exec_type"] = _names(f_text["exec_type"], _EXEC)
        f_text.update(child_id=_pick_text(child, child_ids, ""), venue=_pick_text(child, cs.get("venue", _TEXT), ""),
                      venue_exec_id=pc.fill_null(_pick_text(cu_row, cu.get("venue_exec_id", _TEXT), ""), ""))
        self.fills = Rows(f_text, f_ints)
        self.fill_parent = position[order[shown]]
        child_position = np.full(m, -1, np.int64)
        child_position[of_active] = np.arange(len(of_active))
        self.fill_child = _pick(child, child_position, -1)
        self.fill_trade = _in(er, "exec_type", _TRADE)[shown]

    def _positions(self, cols: dict[str, dict]) -> None:
        """Positions at the range's start and end, and the realized P&L through it: Ledger's
        moves (the positions stream's), as one kernel over a row per move."""
        b = self.book
        er, _ = self._rows(cols["ExecutionReport"])
        cs, _ = self._rows(cols["ChildOrderSent"])
        cu, _ = self._rows(cols["ChildUpdated"])
        venues = ["", ALLOCATION_VENUE]
        accounts, symbols = pa.array(self.accounts, pa.string()), pa.array(self.symbols, pa.string())
        parts = []  # (seq, kind, account, symbol, q, value, order, venue, ends, ts)
        if er:
            fill = _in(er, "exec_type", _FILL_TYPES)
            a, i = _index_in(er["account"], accounts), _index_in(er["symbol"], symbols)
            restated = ~fill & er["restatement_reason?"] & (er["restatement_reason"] == RestatementReason.CORPORATE_ACTION)
            rows = np.flatnonzero((fill & (a >= 0) & (i >= 0)) | restated)
            via = _index_in(er["exec_id"].take(pa.array(rows, pa.int64())), cu["fill_exec_id"]) if cu and len(rows) \
                else np.full(len(rows), -1, np.int64)
            via = np.where((via >= 0) & (_pick(via, cu.get("seq", _NONE), 0) < er["seq"][rows]), via, -1)
            child = _index_in(cu["child_id"].take(pa.array(np.maximum(via, 0))), cs["child_id"]) if cs and len(rows) \
                else np.full(len(rows), -1, np.int64)
            child = np.where(via >= 0, child, -1)
            venue = _codes(_pick_text(child, cs.get("venue", _TEXT), ""), venues) if len(rows) else _NONE
            buy = pc.equal(er["side"], Side.BUY.value).to_numpy(zero_copy_only=False)[rows]
            order = er["order_id"].take(pa.array(rows, pa.int64())).dictionary_encode().indices.to_numpy().astype(
                np.int64) if len(rows) else _NONE
            parts.append((er["seq"][rows], np.where(fill[rows], ledger.REPORT, ledger.RESTATED), a[rows], i[rows],
                          er["cum_qty"][rows], er["cum_value"][rows], order, venue, 1 + 2 * buy, er["ts"][rows]))
        moves = []
        for seq, ev in self._whole:
            if seq > len(self._handled) or not self._handled[seq - 1]:
                continue
            t = type(ev)
            if t is SplitApplied and ev.symbol in b.symbols:
                moves.append((seq, ledger.SPLIT, -1, b.symbols[ev.symbol], ev.new, ev.old, 0, 0, 1, ev.ts))
            elif t in (AllocationBooked, AllocationCanceled):
                way, bk = (1, ev) if t is AllocationBooked else (-1, ev.booking)
                if bk.symbol not in b.symbols:
                    continue
                sign = way * (1 if bk.side == Side.BUY else -1)
                moves.append((seq, ledger.MOVED, -1, -1, 0, 0, 0, 0, 0, ev.ts))
                for account, q, value, kind in [(bk.account, -sign * bk.qty, bk.value, ledger.TRANSFER)] + [
                        (s.account, sign * s.qty, s.value, ledger.FILL if way > 0 else ledger.TRANSFER)
                        for s in bk.shares]:
                    if account in b.accounts:
                        moves.append((seq, kind, b.accounts[account], b.symbols[bk.symbol], q, value, 0, 1, 0, ev.ts))
                moves[-1] = (*moves[-1][:8], 1, ev.ts)
        if moves:
            parts.append(tuple(np.array(c, np.int64) for c in zip(*moves)))
        cols_ = [np.concatenate([np.asarray(p[k], np.int64) for p in parts]) if parts else _NONE for k in range(10)]
        by = np.argsort(cols_[0], kind="stable")
        seq, kind, a, i, q, value, order, venue, ends, ts = (c[by] for c in cols_)
        gross = np.zeros((len(self.accounts), len(self.symbols), len(venues), 4), np.int64)
        opening = np.zeros((3, len(self.accounts), len(self.symbols)), np.int64)
        self.opening_gross, self.closing_gross = np.zeros((2, len(self.accounts), len(self.symbols), 4), np.int64)
        curve = np.zeros((len(kind), 2), np.int64)
        points = ledger.moves(kind, seq, ts, a, i, q, value, order, venue, ends, self.start, self.open_at,
                              self.closed_at, b.qty, b.cost, b.realized, gross, b.rates, opening, self.opening_gross,
                              self.closing_gross, curve)
        self.opening = (opening[0], opening[1], opening[2])
        self.pnl_curve = [(t, v) for t, v in curve[:points].tolist()]
        for symbol, (bid, ask) in self.closing_bbo.items():
            if bid and ask and symbol in b.symbols:
                b.marks[b.symbols[symbol]] = (bid + ask) // 2
        b.mark_all()

    def order_of(self, order_id: str) -> tuple[str, str] | None:
        """(account, symbol) of any order the journal has accepted, by id."""
        ids, accounts, symbols = self._all_orders
        k = _index_in(pa.array([order_id], pa.string()), ids)[0]
        return None if k < 0 else (accounts[k].as_py(), symbols[k].as_py())


_SEQS = 1 << 40  # above any record's seq: (code, seq) as one int64 key
_NONE = np.zeros(0, np.int64)
_BOOL = np.zeros(0, np.bool_)
_TEXT = pa.array([], pa.string())
_FILL_TYPES = pa.array([e.value for e in FILL_TYPES], pa.string())
_TERMINAL = pa.array([s.value for s in TERMINAL], pa.string())
_ACKED_CODES = pa.array([s.value for s in _ACKED], pa.string())
_TRADE = pa.array([ExecType.TRADE.value], pa.string())
# read only for positions: left out of the scan's columns when no report wants them
_POSITIONS_ONLY = frozenset(("ExecutionReport", f) for f in ("account", "symbol", "side", "restatement_reason"))
_SIDE = {s.value: s.name for s in Side}
_STATUS = {s.value: s.name for s in OrdStatus}
_EXEC = {e.value: e.name for e in ExecType}


def _children(cs: dict, cu: dict, cr: dict, ids: pa.Array) -> tuple:
    """Children as first sent (a resend of one known is the same child), their ids, the
    updates and replaces of known children with the child each is of, and each child's
    parent (its index in `ids`, -1: none)."""
    if cs:
        cs = _take(cs, np.flatnonzero(_index_in(cs["child_id"], cs["child_id"]) == np.arange(len(cs["seq"]))))
    child_ids = cs["child_id"] if cs else _TEXT
    upd = _index_in(cu["child_id"], child_ids) if cu else _NONE
    cu = _take(cu, np.flatnonzero(upd >= 0)) if cu else cu
    rep = _index_in(cr["child_id"], child_ids) if cr else _NONE
    cr = _take(cr, np.flatnonzero(rep >= 0)) if cr else cr
    parent = _index_in(cs["order_id"], ids) if cs else _NONE
    return cs, child_ids, cu, upd[upd >= 0], cr, rep[rep >= 0], parent


def _prior(group: np.ndarray) -> np.ndarray:
    """Each row's previous row of the same group (-1: its first)."""
    prior = np.full(len(group), -1, np.int64)
    by = np.argsort(group, kind="stable")
    same = np.flatnonzero(group[by][1:] == group[by][:-1])
    prior[by[same + 1]] = by[same]
    return prior


def _in(c: dict, name: str, values: pa.Array) -> np.ndarray:
    """Whether each row's text is one of values (empty without rows): Arrow's hash, no str object per row."""
    return pc.is_in(c[name], value_set=values).to_numpy(zero_copy_only=False) if c else _BOOL


def _names(codes: pa.Array | None, names: dict[str, str]) -> pa.Array:
    """FIX codes as their names."""
    if codes is None or not len(codes):
        return _TEXT
    enc = codes.dictionary_encode()
    return pa.array([names[v] for v in enc.dictionary.to_pylist()], pa.string()).take(enc.indices)


def _subset(text: dict, ints: dict, valid: dict, rows: np.ndarray) -> Rows:
    """The rows (ascending) of the columns; the columns themselves when that is all of them (no copy)."""
    every = len(rows) == len(next(iter(ints.values())))
    at, idx = slice(None) if every else rows, pa.array(rows, pa.int64())
    return Rows({k: _TEXT if v is None or not len(rows) else v if every else v.take(idx) for k, v in text.items()},
                {k: np.asarray(v)[at] for k, v in ints.items()},
                {k: np.asarray(v, np.bool_)[at] for k, v in valid.items()})


def read_facts(cfg: Config, journal: Path, start: int, end: int, positions: bool = True,
               extract: bool = True) -> Facts:
    reader = Reader(journal, extract)
    try:
        return Facts(cfg, start, end, positions).read(reader)
    finally:
        reader.close()
