"""A simulated venue: a quickfix acceptor (FIX.4.2/4.4) over the Numba matching core.

It answers the way exchanges do (FIX 5.0 SP2 Vol. 7): the first report may already be a
fill, IOC and FOK remainders are canceled, no pending acknowledgements. A background
market maker quotes around a random-walk mid, so orders fill realistically and prices
differ across venues. Bad input gets an ExecutionReport Rejected with a reason and the
session stays up. Market data: a MarketDataRequest gets a snapshot (W) per symbol, and
with SubscriptionRequestType 1 a new snapshot at every requote until it is unsubscribed
(2) or the session ends. With `hours`, the venue keeps its own trading session on a clock
it is given (the wall clock unless a test drives one): TradingSessionStatus at its open
and close, no orders and no quotes while closed, DAY orders done for day at the close
and GTC orders kept for the next session. Book changes happen under one lock; messages
are sent after it is released, so quickfix's own locks never nest inside it.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import quickfix as fix

from gateways.fix_session import (
    Endpoint,
    FixSession,
    bound_address,
    business_reject,
    cancel_reject,
    execution_report,
    field,
    msg_type,
    new_message,
    raw_message,
    send,
    write_settings,
)
from oms import matching as mc
from oms.calendar import Calendar
from oms.config import Config, SimConfig, VenueConfig
from oms.fixed import FixedPointError, avg_px, to_price, to_qty
from oms.model import ExecType, Instrument, MarketData, OrdStatus, RestatementReason

log = logging.getLogger("gateways.venue_sim")

_TIF = {"0": mc.DAY, "1": mc.GTC, "3": mc.IOC, "4": mc.FOK, "6": mc.DAY}
_STP = {"none": mc.STP_NONE, "cancel_newest": mc.STP_CANCEL_NEWEST, "cancel_oldest": mc.STP_CANCEL_OLDEST,
        "cancel_both": mc.STP_CANCEL_BOTH, "decrement": mc.STP_DECREMENT}
_MM_OWNER = 1
Outbox = list[tuple[fix.Message, fix.SessionID]]


class SimOrder(msgspec.Struct):
    oid: int
    session: fix.SessionID
    cl_ord_id: str
    symbol: str
    side: str
    qty: int
    price: int | None
    account: str | None
    cum: int = 0
    cum_value: int = 0
    status: OrdStatus = OrdStatus.NEW

    @property
    def leaves(self) -> int:
        done = self.status in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED,
                               OrdStatus.DONE_FOR_DAY)
        return 0 if done else self.qty - self.cum


class VenueSimulator(fix.Application):
    def __init__(self, venue: VenueConfig, instruments: dict[str, Instrument], ref_prices: dict[str, int],
                 calendar: Calendar | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        """`calendar`: where the venue has `hours`, its time zone and trading dates; `clock`: ns since the epoch."""
        super().__init__()
        self.venue = venue
        self.calendar = calendar if venue.hours else None  # None: always open
        self.clock = clock
        self.sim: SimConfig = venue.sim
        self.instruments = instruments
        self.rng = random.Random(self.sim.seed)
        self.lock = threading.Lock()
        stp = _STP[self.sim.self_trade]
        self.books = {s: mc.Book(stp_mode=stp) for s in instruments}
        offset = 1 + self.sim.price_offset_bps / 1e4
        self.mids = {s: self._snap(s, round(ref_prices[s] * offset)) for s in instruments}
        self.last: dict[str, int] = {}
        self.orders: dict[int, SimOrder] = {}
        self.by_cl: dict[tuple[str, str], int] = {}
        self.mm_orders: dict[str, list[int]] = {s: [] for s in instruments}
        self.owners: dict[tuple[str, str | None], int] = {}
        self.sessions: dict[str, fix.SessionID] = {}
        # symbol -> session -> (session id, MDReqID, depth): who gets a snapshot at each requote
        self.md_subs: dict[str, dict[str, tuple[fix.SessionID, str, int]]] = {s: {} for s in instruments}
        self.published_top: dict[str, tuple[int, int]] = {}  # symbol -> (bid, ask) last published
        self.halted: set[str] = set()  # symbols whose trading is halted: no new orders, no quotes
        self._ids = 0
        self._exec_ids = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.endpoint: Endpoint | None = None
        self.open = self._in_session()
        if self.open:
            with self.lock:
                for s in instruments:
                    self._requote(s, [])

    # ------------------------------------------------------------------ lifecycle
    def start(self, run_dir: Path) -> None:
        sessions = [FixSession(self.venue.begin_string, self.venue.venue_comp_id, c) for c in self.venue.clients]
        store = run_dir / f"venue-{self.venue.name}-store"  # sequence numbers survive a restart: resend works
        settings = write_settings(run_dir / f"venue-{self.venue.name}.cfg", "acceptor", self.venue.host,
                                  self.venue.port, sessions, store_dir=store, reset_on_logon=self.venue.reset_on_logon)
        self.endpoint = Endpoint(self, settings, "acceptor", store_dir=store)
        self.endpoint.start()
        loops = [self._clock_loop] if self.sim.depth > 0 or self.calendar else []
        if self.sim.disconnect_every_s > 0:
            loops.append(self._disconnect_loop)
        for loop in loops:
            t = threading.Thread(target=loop, name=f"{self.venue.name}-{loop.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("venue %s listening on %s (%s)", self.venue.name, bound_address(self.endpoint.listener),
                 self.venue.begin_string)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        if self.endpoint is not None:
            self.endpoint.stop()

    def disconnect_all(self) -> None:
        """Drop every logged-on session (fault injection)."""
        for sid in list(self.sessions.values()):
            session = fix.Session.lookupSession(sid)
            if session is not None:
                session.disconnect()

    # ------------------------------------------------------------------ quickfix callbacks
    def onCreate(self, sid: fix.SessionID) -> None:
        pass

    def onLogon(self, sid: fix.SessionID) -> None:
        self.sessions[sid.toString()] = sid
        if self.calendar:  # where the session stands, as venues tell a client at logon
            self._locked(lambda out: out.extend(self._session_status(sid)))

    def onLogout(self, sid: fix.SessionID) -> None:
        self.sessions.pop(sid.toString(), None)
        with self.lock:
            for subs in self.md_subs.values():
                subs.pop(sid.toString(), None)

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        kind = msg_type(msg)
        handler = {"D": self._on_new, "F": self._on_cancel, "G": self._on_replace, "H": self._on_status,
                   "V": self._on_market_data_request}.get(kind)
        out: Outbox = []
        try:
            if handler is None:
                out.append((business_reject(sid.getBeginString().getValue(), kind, 3, f"message type {kind} is not supported",
                                            msg.getHeader().getField(34)), sid))
            else:
                with self.lock:
                    handler(msg, sid, out)
        except Exception as exc:  # the venue never dies from a message
            log.exception("venue %s failed on %s", self.venue.name, kind)
            out.append((business_reject(sid.getBeginString().getValue(), kind, 0, f"cannot process: {exc}"), sid))
        if self.sim.latency_ms:
            time.sleep(self.sim.latency_ms / 1000)
        for m, to in out:
            send(m, to)

    # ------------------------------------------------------------------ helpers
    def _snap(self, symbol: str, px: int) -> int:
        tick = self.instruments[symbol].tick_size
        return max(tick, (px + tick // 2) // tick * tick)

    def _next_exec_id(self) -> str:
        self._exec_ids += 1
        return f"{self.venue.name}-E{self._exec_ids}"

    def _er(self, o: SimOrder, exec_type: ExecType, out: Outbox, *, cl_ord_id: str | None = None,
            orig: str | None = None, last_qty: int = 0, last_px: int = 0, text: str = "",
            reason: int | None = None, restatement_reason: int | None = None) -> None:
        out.append((execution_report(
            o.session.getBeginString().getValue(), order_id=f"{self.venue.name}-{o.oid}",
            exec_id=self._next_exec_id(), exec_type=exec_type, ord_status=o.status, cl_ord_id=cl_ord_id or o.cl_ord_id,
            orig_cl_ord_id=orig, symbol=o.symbol, side=o.side, order_qty=o.qty, cum_qty=o.cum, leaves_qty=o.leaves,
            avg_px=avg_px(o.cum_value, o.cum), last_qty=last_qty, last_px=last_px, price=o.price,
            account=o.account, text=text, ord_rej_reason=reason, restatement_reason=restatement_reason,
        ), o.session))

    def _reject_new(self, msg: fix.Message, sid: fix.SessionID, reason: int, text: str, out: Outbox,
                    exec_type: ExecType = ExecType.REJECTED) -> None:
        qty = field(msg, 38) or "0"
        out.append((execution_report(
            sid.getBeginString().getValue(), order_id="NONE", exec_id=self._next_exec_id(),
            exec_type=exec_type, ord_status=OrdStatus.REJECTED, cl_ord_id=field(msg, 11) or "",
            symbol=field(msg, 55) or "", side=field(msg, 54) or "1", order_qty=_int_or_zero(qty), cum_qty=0,
            leaves_qty=0, avg_px=Decimal(0), text=text, ord_rej_reason=reason,
        ), sid))

    def _owner(self, sid: fix.SessionID, account: str | None) -> int:
        key = (sid.toString(), account)
        if key not in self.owners:
            self.owners[key] = len(self.owners) + 2  # 1 is the market maker
        return self.owners[key]

    def _parse_terms(self, symbol: str, qty_text: str | None, ord_type: str, price_text: str | None
                     ) -> tuple[int, int | None] | tuple[int, str]:
        """(qty, price) or (OrdRejReason, Text)."""
        inst = self.instruments[symbol]
        try:
            qty = to_qty(qty_text or "")
        except FixedPointError as exc:
            return 13, str(exc)
        if qty <= 0 or qty % inst.lot_size:
            return 13, f"quantity {qty} must be a positive multiple of {inst.lot_size}"
        if ord_type == "1":
            return qty, None
        try:
            price = to_price(price_text or "")
        except FixedPointError as exc:
            return 99, f"bad price: {exc}"
        if price <= 0:
            return 99, "price must be positive"
        if price % inst.tick_size:
            return 18, f"price {price_text} is not a multiple of the tick size"
        return qty, price

    # ------------------------------------------------------------------ order entry
    def _on_new(self, msg: fix.Message, sid: fix.SessionID, out: Outbox) -> None:
        cl = field(msg, 11) or ""
        symbol = field(msg, 55) or ""
        side = field(msg, 54) or ""
        ord_type = field(msg, 40) or ""
        tif = field(msg, 59) or "0"
        if (sid.toString(), cl) in self.by_cl:
            return self._reject_new(msg, sid, 6, f"duplicate ClOrdID {cl}", out)
        if symbol not in self.books:
            return self._reject_new(msg, sid, 1, f"unknown symbol {symbol}", out)
        if not self.open:
            return self._reject_new(msg, sid, 2, self._closed_text(), out)
        if symbol in self.halted:
            return self._reject_new(msg, sid, 2, f"trading in {symbol} is halted", out)
        if side not in ("1", "2", "5") or ord_type not in ("1", "2") or tif not in _TIF:
            return self._reject_new(msg, sid, 11, "unsupported side, order type or time in force", out)
        terms = self._parse_terms(symbol, field(msg, 38), ord_type, field(msg, 44))
        if isinstance(terms[1], str):
            return self._reject_new(msg, sid, terms[0], terms[1], out)
        qty, price = terms  # type: ignore[misc]
        if self.sim.reject_rate and self.rng.random() < self.sim.reject_rate:
            return self._reject_new(msg, sid, 0, "simulated venue reject", out)
        self._ids += 1
        account = field(msg, 1)
        o = SimOrder(self._ids, sid, cl, symbol, side, qty, price, account)
        self.orders[o.oid] = o
        self.by_cl[(sid.toString(), cl)] = o.oid
        res = self.books[symbol].add(
            o.oid, mc.BUY if side == "1" else mc.SELL, price or 0, qty, tif=_TIF[tif],
            owner=self._owner(sid, account), market=ord_type == "1",
        )
        self._after(o, res, out, acked=False)

    def _after(self, o: SimOrder, res: object, out: Outbox, acked: bool) -> None:
        """Report what one book operation did: fills to both sides, STP cancels, the remainder."""
        self._report_fills(o.symbol, res.fills, out)  # type: ignore[attr-defined]
        for oid, removed, left in res.stp_cancels:  # type: ignore[attr-defined]
            victim = self.orders.get(int(oid))
            if victim is None:
                continue
            if left:  # decrement mode: the order shrinks and stays
                victim.qty -= int(removed)
                self._er(victim, ExecType.RESTATED, out, text="self-trade prevention: quantity decremented",
                         restatement_reason=RestatementReason.PARTIAL_DECLINE)
            elif victim.oid != o.oid:
                victim.status = OrdStatus.CANCELED
                self._er(victim, ExecType.CANCELED, out, text="self-trade prevention")
        if o.status in (OrdStatus.FILLED, OrdStatus.CANCELED):
            return
        if self.books[o.symbol].order(o.oid) is None:  # not resting: IOC/FOK/market remainder, or STP
            o.status = OrdStatus.CANCELED
            self._er(o, ExecType.CANCELED, out, text="remainder canceled" if o.cum else "not filled")
        elif not acked and o.cum == 0:
            self._er(o, ExecType.NEW, out)
        self._publish(o.symbol, out, moved_only=True)

    def _lookup(self, sid: fix.SessionID, orig: str | None) -> SimOrder | None:
        oid = self.by_cl.get((sid.toString(), orig or ""))
        return None if oid is None else self.orders[oid]

    def _on_cancel(self, msg: fix.Message, sid: fix.SessionID, out: Outbox) -> None:
        cl, orig = field(msg, 11) or "", field(msg, 41) or ""
        o = self._lookup(sid, orig)
        if o is None or o.leaves == 0:
            out.append((cancel_reject(
                sid.getBeginString().getValue(), order_id="NONE" if o is None else f"{self.venue.name}-{o.oid}", cl_ord_id=cl, orig_cl_ord_id=orig,
                ord_status=OrdStatus.REJECTED if o is None else o.status, replace=False,
                reason=1 if o is None else 0, text="unknown order" if o is None else "too late to cancel"), sid))
            return
        self.books[o.symbol].cancel(o.oid)
        o.status = OrdStatus.CANCELED
        prev, o.cl_ord_id = o.cl_ord_id, cl
        self.by_cl[(sid.toString(), cl)] = o.oid
        self._er(o, ExecType.CANCELED, out, orig=prev)
        self._publish(o.symbol, out, moved_only=True)

    def _on_replace(self, msg: fix.Message, sid: fix.SessionID, out: Outbox) -> None:
        cl, orig = field(msg, 11) or "", field(msg, 41) or ""
        o = self._lookup(sid, orig)

        def refuse(reason: int, text: str) -> None:
            out.append((cancel_reject(
                sid.getBeginString().getValue(), order_id="NONE" if o is None else f"{self.venue.name}-{o.oid}", cl_ord_id=cl, orig_cl_ord_id=orig,
                ord_status=OrdStatus.REJECTED if o is None else o.status, replace=True, reason=reason,
                text=text), sid))

        if o is None:
            return refuse(1, "unknown order")
        if o.leaves == 0:  # Filled and Canceled are terminal at an exchange (S2)
            return refuse(0, "too late to replace")
        if not self.open:  # the book does not match while closed; cancels are taken
            return refuse(2, self._closed_text())
        terms = self._parse_terms(o.symbol, field(msg, 38), "2" if o.price is not None else "1",
                                  field(msg, 44) or (None if o.price is None else str(Decimal(o.price) / 10**6)))
        if isinstance(terms[1], str):
            return refuse(99, terms[1])
        qty, price = terms  # type: ignore[misc]
        prev, o.cl_ord_id = o.cl_ord_id, cl
        self.by_cl[(sid.toString(), cl)] = o.oid
        book = self.books[o.symbol]
        o.qty, o.price = max(qty, o.cum), price  # C.3.b/c: never below what is filled
        if qty <= o.cum:
            book.cancel(o.oid)
            o.status = OrdStatus.FILLED
            self._er(o, ExecType.REPLACED, out, orig=prev)
            self._publish(o.symbol, out, moved_only=True)
            return
        o.status = OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW
        res = book.replace(o.oid, qty - o.cum, price or 0)
        self._er(o, ExecType.REPLACED, out, orig=prev)
        self._after(o, res, out, acked=True)

    def _on_status(self, msg: fix.Message, sid: fix.SessionID, out: Outbox) -> None:
        if not self.sim.status_requests:
            out.append((business_reject(sid.getBeginString().getValue(), "H", 3, "Unsupported Message Type",
                                        field(msg.getHeader(), 34)), sid))
            return
        o = self._lookup(sid, field(msg, 11))
        if o is None:  # G.1.a: an order status of Rejected, unknown order
            self._reject_new(msg, sid, 5, "unknown order", out, ExecType.ORDER_STATUS)
            return
        self._er(o, ExecType.ORDER_STATUS, out)

    # ------------------------------------------------------------------ market data
    def top(self, symbol: str) -> MarketData:
        bid, bq, ask, aq = self.books[symbol].l1()
        return MarketData(symbol=symbol, venue=self.venue.name, bid=bid or None, ask=ask or None,
                          last=self.last.get(symbol), bid_size=bq, ask_size=aq)

    def _publish(self, symbol: str, out: Outbox, moved_only: bool = False) -> None:
        """Snapshots to the subscribers: at each requote, and after a client order only if it
        moved the best bid or offer (sizes refresh at the next requote)."""
        top = self.books[symbol].l1()[::2]
        if moved_only and top == self.published_top.get(symbol):
            return
        self.published_top[symbol] = top
        for sid, req_id, depth in self.md_subs[symbol].values():
            out.append((self._snapshot(symbol, req_id, depth, sid), sid))

    def _snapshot(self, symbol: str, req_id: str, depth: int, sid: fix.SessionID) -> fix.Message:
        """MarketDataSnapshotFullRefresh: bids and offers to `depth`, best first, and the last trade."""
        import quickfix42 as fix42
        import quickfix44 as fix44

        mod = fix42 if sid.getBeginString().getValue() == "FIX.4.2" else fix44
        snap = new_message("W")
        snap.setField(262, req_id)
        snap.setField(55, symbol)
        bids, asks = self.books[symbol].l2(depth)
        rows = [("0", px, qty) for px, qty, _n in bids] + [("1", px, qty) for px, qty, _n in asks]
        if symbol in self.last:
            rows.append(("2", self.last[symbol], 0))
        for entry_type, px, qty in rows:
            e = mod.MarketDataSnapshotFullRefresh.NoMDEntries()
            e.setField(269, entry_type)
            e.setField(270, str(Decimal(int(px)) / 10**6))
            if qty:
                e.setField(271, str(int(qty)))
            snap.addGroup(e)
        return snap

    def _on_market_data_request(self, msg: fix.Message, sid: fix.SessionID, out: Outbox) -> None:
        """MarketDataRequest (V): a snapshot (W) per symbol to the requested depth (0 = 5);
        SubscriptionRequestType 1 subscribes to a snapshot at each requote, 2 unsubscribes."""
        import quickfix42 as fix42
        import quickfix44 as fix44

        mod = fix42 if sid.getBeginString().getValue() == "FIX.4.2" else fix44
        req_id, kind, key = field(msg, 262) or "", field(msg, 263) or "0", sid.toString()
        if kind == "2":
            for subs in self.md_subs.values():
                if subs.get(key, (None, None))[1] == req_id:
                    del subs[key]
            return
        group = mod.MarketDataRequest.NoRelatedSym()
        depth = int(field(msg, 264) or "0") or 5
        for i in range(1, int(field(msg, 146) or "0") + 1):
            msg.getGroup(i, group)
            symbol = group.getField(55)
            if symbol not in self.books:
                out.append((business_reject(sid.getBeginString().getValue(), "V", 0, f"unknown symbol {symbol}"), sid))
                continue
            out.append((self._snapshot(symbol, req_id, depth, sid), sid))
            if kind == "1":
                self.md_subs[symbol][key] = (sid, req_id, depth)

    # ------------------------------------------------------------------ the trading day
    def _locked(self, change: Callable[[Outbox], None]) -> None:
        """Apply `change` under the book lock, then send what it produced."""
        out: Outbox = []
        with self.lock:
            change(out)
        for m, to in out:
            send(m, to)

    def _in_session(self) -> bool:
        """Whether the clock is inside the venue's hours on a trading date (always, without hours)."""
        cal = self.calendar
        if cal is None:
            return True
        now = self.clock()
        return cal.trading_date(cal.date_of(now)) and not cal.venue_closed(self.venue.name, now)

    def _closed_text(self) -> str:
        tz = self.calendar.time_zone if self.calendar else ""
        return f"exchange closed: {self.venue.name} trades {self.venue.hours} {tz} on trading days"

    def tick(self) -> None:
        """Open or close the session when the clock has crossed the venue's hours. The
        background loop calls this every `tick_ms`; a test that drives the clock calls it
        itself after moving the clock."""
        self._locked(self._follow_hours)

    def _follow_hours(self, out: Outbox) -> None:
        opened = self._in_session()
        if opened == self.open:
            return
        self.open = opened
        for sid in self.sessions.values():
            out.extend(self._session_status(sid))
        for symbol in self.books:
            if opened and symbol not in self.halted:
                self._requote(symbol, out)
            elif not opened:
                self._pull_quotes(symbol)
                self._publish(symbol, out, moved_only=True)
        if not opened:
            self._end_of_day(out)

    def _session_status(self, sid: fix.SessionID) -> list[tuple[fix.Message, fix.SessionID]]:
        """TradingSessionStatus (h): open (340=2) or closed (3); after an open, a SecurityStatus
        for each symbol still halted, since an open resumes every symbol at a client."""
        begin = sid.getBeginString().getValue()
        tz = self.calendar.time_zone if self.calendar else ""
        msgs = [(raw_message(begin, "h", [(336, self.venue.name), (340, "2" if self.open else "3"),
                                          (58, f"{'open' if self.open else 'closed'}: {self.venue.hours} {tz}")]), sid)]
        if self.open:
            msgs += [(self._security_status(begin, symbol, True), sid) for symbol in sorted(self.halted)]
        return msgs

    def end_of_day(self) -> None:
        """The venue's close: resting DAY orders are done for day (DoneForDay); GTC orders
        stay in the book through the night. A venue with hours does this at its close."""
        self._locked(self._end_of_day)

    def _end_of_day(self, out: Outbox) -> None:
        for book in self.books.values():
            for oid, _qty in book.expire(mc.DAY):
                o = self.orders.get(oid)
                if o is not None:
                    o.status = OrdStatus.DONE_FOR_DAY
                    self._er(o, ExecType.DONE_FOR_DAY, out)

    @staticmethod
    def _security_status(begin_string: str, symbol: str, halted: bool) -> fix.Message:
        return raw_message(begin_string, "f", [(55, symbol), (326, "2" if halted else "17"),
                                               (58, "halted" if halted else "resumed")])

    def halt(self, symbol: str, halted: bool, cancel: bool = False) -> None:
        """Halt trading in `symbol` (SecurityStatus 326=2 to every session; new orders refused,
        no quotes; with `cancel`, resting client orders canceled, ExecRestatementReason 6:
        K.1.b) or resume it (326=17; while the session is closed, its open says so)."""
        def change(out: Outbox) -> None:
            if halted:
                self.halted.add(symbol)
            else:
                self.halted.discard(symbol)
            if halted or self.open:
                for sid in self.sessions.values():
                    out.append((self._security_status(sid.getBeginString().getValue(), symbol, halted), sid))
            if halted and cancel:
                for o in self.orders.values():
                    if o.symbol == symbol and o.leaves and self.books[symbol].order(o.oid) is not None:
                        self.books[symbol].cancel(o.oid)
                        o.status = OrdStatus.CANCELED
                        self._er(o, ExecType.CANCELED, out, text="cancel on trading halt",
                                 restatement_reason=RestatementReason.CANCEL_ON_TRADING_HALT)

        self._locked(change)

    def restate(self, cl_ord_id: str, qty: int | None = None, price: int | None = None,
                reason: RestatementReason = RestatementReason.PARTIAL_DECLINE, text: str = "") -> None:
        """The venue changes a resting order's terms on its own (E.1.c/d): ExecType Restated
        with `reason`. A quantity down keeps time priority; a new price re-enters the book
        and may trade at once. ValueError for an order that is not resting, a quantity that
        leaves nothing open or a price off the tick."""
        def change(out: Outbox) -> None:
            o = next((o for o in self.orders.values() if o.cl_ord_id == cl_ord_id and o.leaves), None)
            if o is None or self.books[o.symbol].order(o.oid) is None:
                raise ValueError(f"no order {cl_ord_id} rests at {self.venue.name}")
            new_qty, new_price = o.qty if qty is None else qty, o.price if price is None else price
            if new_qty <= o.cum or (new_price is None) != (o.price is None) \
                    or (new_price is not None and (new_price <= 0 or new_price % self.instruments[o.symbol].tick_size)):
                raise ValueError(f"cannot restate {cl_ord_id} to {new_qty} at {new_price}")
            o.qty, o.price = new_qty, new_price
            res = self.books[o.symbol].replace(o.oid, new_qty - o.cum, new_price or 0)
            self._er(o, ExecType.RESTATED, out, text=text or "restated by the venue", restatement_reason=reason)
            self._after(o, res, out, acked=True)

        self._locked(change)

    # ------------------------------------------------------------------ synthetic liquidity
    def _pull_quotes(self, symbol: str) -> None:
        for oid in self.mm_orders[symbol]:
            self.books[symbol].cancel(oid)
        self.mm_orders[symbol] = []

    def _requote(self, symbol: str, out: Outbox) -> None:
        book, sim = self.books[symbol], self.sim
        self._pull_quotes(symbol)
        mid, tick = self.mids[symbol], self.instruments[symbol].tick_size
        half = max(tick, self._snap(symbol, round(mid * sim.spread_bps / 2e4)))
        for k in range(sim.depth):
            qty = sim.level_qty * (k + 1)
            for side, px in ((mc.BUY, mid - half - k * sim.level_ticks * tick),
                             (mc.SELL, mid + half + k * sim.level_ticks * tick)):
                if px <= 0:
                    continue
                self._ids += 1
                res = book.add(self._ids, side, px, qty, tif=mc.GTC, owner=_MM_OWNER)
                self.mm_orders[symbol].append(self._ids)
                self._report_fills(symbol, res.fills, out)  # a quote may cross a resting client order
        self._publish(symbol, out)

    def _report_fills(self, symbol: str, fills: object, out: Outbox) -> None:
        """A Trade report to each client side of each fill; the market maker gets none."""
        for taker, maker, px, q, _, _ in fills:  # type: ignore[attr-defined]
            self.last[symbol] = int(px)
            for oid in (int(taker), int(maker)):
                o = self.orders.get(oid)
                if o is None:
                    continue
                o.cum += int(q)
                o.cum_value += int(q) * int(px)
                o.status = OrdStatus.FILLED if o.cum >= o.qty else OrdStatus.PARTIALLY_FILLED
                self._er(o, ExecType.TRADE, out, last_qty=int(q), last_px=int(px))

    def _clock_loop(self) -> None:
        """Every `tick_ms`: the session follows the venue's hours; while open, the mids move and
        the market maker requotes each symbol that is not halted."""
        sim = self.sim
        while not self._stop.wait(sim.tick_ms / 1000):
            self._locked(self._beat)

    def _beat(self, out: Outbox) -> None:
        self._follow_hours(out)
        if not self.open or not self.sim.depth:
            return
        for symbol in self.books:
            if symbol in self.halted:
                continue
            step = self.rng.gauss(self.sim.drift_bps, self.sim.volatility_bps) / 1e4
            self.mids[symbol] = self._snap(symbol, round(self.mids[symbol] * (1 + step)))
            self._requote(symbol, out)

    def _disconnect_loop(self) -> None:
        while not self._stop.wait(self.sim.disconnect_every_s):
            log.warning("venue %s: simulated disconnect", self.venue.name)
            self.disconnect_all()


def _int_or_zero(text: str) -> int:
    try:
        return max(0, to_qty(text))
    except FixedPointError:
        return 0


def start_venues(cfg: Config, run_dir: Path, names: list[str] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> list[VenueSimulator]:
    """Start the simulated venues of a config (all enabled ones, or those named); those with
    hours keep their sessions on `clock`."""
    ref = cfg.reference_data()
    ref_prices = {i.symbol: to_price(i.ref_price) for i in cfg.instruments}
    sims = []
    for v in cfg.venues:
        if (names and v.name not in names) or (not names and not v.sim.enabled):
            continue
        sim = VenueSimulator(v, ref.instruments, ref_prices, ref.calendar, clock)
        sim.start(run_dir)
        sims.append(sim)
    return sims
