"""The OMS state and the one function that changes it: `OmsState.apply(event)`.

The engine decides events and applies them through here; replay applies the journaled
events through the same function, so a rebuilt state equals the live one by
construction, and `state_hash` proves it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import msgspec

from oms.model import (
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    Anomaly,
    BestPrice,
    CancelRejected,
    ChildCancelSent,
    ChildOrderSent,
    ChildReplaceSent,
    ChildUpdated,
    Event,
    ExecType,
    ExecutionReport,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrdStatus,
    RiskChanged,
    ComplianceAlert,
    ChildStatusRequested,
    ChildInDoubt,
    DayEnded,
    DayStarted,
    HaltChanged,
    OrdType,
    SplitApplied,
    Side,
    TimeInForce,
)
from oms.router import INTERNAL
from oms.states import TERMINAL

_ACK_TYPES = frozenset({ExecType.NEW, ExecType.TRADE, ExecType.STOPPED})
_CHAIN_KEEPING = frozenset({ExecType.PENDING_CANCEL, ExecType.PENDING_REPLACE})


class ParentOrder(msgspec.Struct):
    """A trader's order, with its FIX state as the trader sees it."""

    order_id: str
    session: str
    account: str
    symbol: str
    side: Side
    ord_type: OrdType
    tif: TimeInForce
    expire_time: int | None
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    status: OrdStatus
    acked: bool
    order_qty: int
    price: int | None
    stop_px: int | None
    cum_qty: int = 0
    cum_value: int = 0
    pending_cl_ord_id: str | None = None
    pending_qty: int | None = None
    pending_price: int | None = None
    fills: dict[str, tuple[int, int]] = {}  # parent ExecID -> (qty, px), for busts and corrections
    children: list[str] = []


class ChildOrder(msgspec.Struct):
    """An order we sent to a venue on behalf of a parent."""

    child_id: str
    order_id: str
    venue: str
    cl_ord_id: str
    status: OrdStatus
    acked: bool
    qty: int
    price: int | None
    cum_qty: int = 0
    pending_cl_ord_id: str | None = None
    pending_qty: int | None = None
    pending_price: int | None = None
    venue_fills: dict[str, str] = {}  # venue ExecID -> parent ExecID (each venue ExecID once)
    doubt: str = ""  # why nobody can vouch for its state at the venue; "" once the venue answers
    resent: bool = False  # sent again after its venue said it did not know it: at most once


class _Bulk(msgspec.Struct, array_like=True, gc=False):
    """The tables with an entry per order, as a snapshot holds them: encoded by msgspec, since
    pickle's memo of millions of objects is what made snapshots slow."""

    orders: list[ParentOrder]
    children: list[ChildOrder]
    by_cl_ord_id: list[tuple[str, str, str]]
    child_by_cl_ord_id: list[tuple[str, str, str]]


_BULK_FIELDS = frozenset(_Bulk.__struct_fields__)
_BULK_DECODER = msgspec.msgpack.Decoder(_Bulk)


class OmsState:
    """Orders, children and their lookup indexes."""

    def __init__(self) -> None:
        self.orders: dict[str, ParentOrder] = {}
        self.children: dict[str, ChildOrder] = {}
        self.by_cl_ord_id: dict[tuple[str, str], str] = {}  # (session, ClOrdID) -> order_id
        self.child_by_cl_ord_id: dict[tuple[str, str], str] = {}  # (venue, ClOrdID) -> child_id
        self.gtd: set[str] = set()  # GTD orders the timer has to look at (done ones are pruned by it)
        # the internal crossing book: symbol -> working INTERNAL children, in time priority
        self.internal: dict[str, dict[str, None]] = {}
        self.allocations: dict[str, AllocationBooked] = {}  # alloc_id -> booking
        self.allocated: dict[str, tuple[int, int]] = {}  # order_id -> (qty, value) allocated so far
        self.canceled_allocations: set[str] = set()
        # children waiting for their venue's answer (to an order, cancel, replace or status
        # request) -> since when, oldest first: what the timer looks at for timeouts
        self.awaiting: dict[str, int] = {}
        self.day = ""  # the trading date (YYYY-MM-DD) of the last start of day; "" before the first
        self.day_open = False  # between a start and an end of day
        self.halts: dict[str, set[str]] = {}  # symbol -> venues halting it ("": an operator, everywhere)
        self.last_ts = 0
        self.events_applied = 0
        # called with each event of their type after it is applied (compliance state)
        self._observers: dict[type, tuple] = {}
        self._digests: list[Callable[[], bytes]] = []  # the observers' derived state, for the hash

    def __getstate__(self) -> dict:
        """Pickled (a snapshot) with the per-order tables as one msgspec blob, in their order."""
        state = {k: v for k, v in self.__dict__.items() if k not in _BULK_FIELDS}
        state["bulk"] = msgspec.msgpack.encode(_Bulk(
            list(self.orders.values()), list(self.children.values()),
            [(*key, oid) for key, oid in self.by_cl_ord_id.items()],
            [(*key, cid) for key, cid in self.child_by_cl_ord_id.items()]))
        return state

    def __setstate__(self, state: dict) -> None:
        bulk = _BULK_DECODER.decode(state.pop("bulk"))
        self.__dict__.update(state)
        self.orders = {o.order_id: o for o in bulk.orders}
        self.children = {c.child_id: c for c in bulk.children}
        self.by_cl_ord_id = {(session, cl): oid for session, cl, oid in bulk.by_cl_ord_id}
        self.child_by_cl_ord_id = {(venue, cl): cid for venue, cl, cid in bulk.child_by_cl_ord_id}

    # ------------------------------------------------------------------ apply
    def apply(self, ev: Event) -> None:
        handler = _APPLY[type(ev)]
        handler(self, ev)
        self.events_applied += 1
        self.last_ts = ev.ts
        observers = self._observers.get(type(ev))
        if observers is not None:
            for observe in observers:
                observe(ev)

    def observe(self, handlers: dict[type, object], digest: Callable[[], bytes] | None = None) -> None:
        """Call handlers[type(ev)](ev) after each event of that type is applied; `digest`
        gives what those handlers derived, which the state hash covers too."""
        for kind, handler in handlers.items():
            self._observers[kind] = self._observers.get(kind, ()) + (handler,)
        if digest is not None:
            self._digests.append(digest)

    def _accepted(self, ev: OrderAccepted) -> None:
        o: NewOrder = ev.order
        self.orders[ev.order_id] = ParentOrder(  # positional, in field order (tests/test_model.py)
            ev.order_id, o.session, o.account, o.symbol, o.side, o.ord_type, o.tif, o.expire_time, ev.venue,
            o.cl_ord_id, None, OrdStatus.PENDING_NEW, False, o.qty, o.price, o.stop_px,
        )
        self.by_cl_ord_id[(o.session, o.cl_ord_id)] = ev.order_id
        if o.tif is TimeInForce.GTD:
            self.gtd.add(ev.order_id)

    def _report(self, ev: ExecutionReport) -> None:
        et = ev.exec_type
        if et is ExecType.ORDER_STATUS:
            return
        order = self.orders[ev.order_id]
        if et not in _CHAIN_KEEPING and ev.cl_ord_id != order.cl_ord_id:
            order.orig_cl_ord_id = order.cl_ord_id
            order.cl_ord_id = ev.cl_ord_id
        self.by_cl_ord_id[(order.session, ev.cl_ord_id)] = order.order_id
        order.status = ev.ord_status
        order.acked = order.acked or et in _ACK_TYPES
        order.order_qty = ev.order_qty
        order.cum_qty = ev.cum_qty
        order.cum_value = ev.cum_value
        order.price = ev.price
        order.pending_cl_ord_id = ev.pending_cl_ord_id
        order.pending_qty = ev.pending_qty
        order.pending_price = ev.pending_price
        if et is ExecType.TRADE:
            order.fills[ev.exec_id] = (ev.last_qty, ev.last_px)
        elif et is ExecType.TRADE_CANCEL:
            del order.fills[ev.exec_ref_id]  # type: ignore[arg-type]
        elif et is ExecType.TRADE_CORRECT:
            del order.fills[ev.exec_ref_id]  # type: ignore[arg-type]
            order.fills[ev.exec_id] = (ev.last_qty, ev.last_px)

    def _cancel_rejected(self, ev: CancelRejected) -> None:
        if ev.clears_pending and ev.order_id is not None:
            order = self.orders[ev.order_id]
            order.status = ev.ord_status
            order.pending_cl_ord_id = order.pending_qty = order.pending_price = None

    def _child_sent(self, ev: ChildOrderSent) -> None:
        if ev.resend:
            self.children[ev.child_id].resent = True
            self._await(ev.child_id, ev.ts)
            return
        self.children[ev.child_id] = ChildOrder(
            child_id=ev.child_id,
            order_id=ev.order_id,
            venue=ev.venue,
            cl_ord_id=ev.cl_ord_id,
            status=OrdStatus.PENDING_NEW,
            acked=False,
            qty=ev.qty,
            price=ev.price,
            venue_fills={},
        )
        self.orders[ev.order_id].children.append(ev.child_id)
        if ev.venue == INTERNAL:
            self.internal.setdefault(ev.symbol, {})[ev.child_id] = None
        else:
            self._await(ev.child_id, ev.ts)
        self.child_by_cl_ord_id[(ev.venue, ev.cl_ord_id)] = ev.child_id

    def _await(self, child_id: str, ts: int) -> None:
        self.awaiting.pop(child_id, None)
        self.awaiting[child_id] = ts

    def _child_cancel_sent(self, ev: ChildCancelSent) -> None:
        child = self.children[ev.child_id]
        child.status = OrdStatus.PENDING_CANCEL
        child.pending_cl_ord_id = ev.cl_ord_id
        child.pending_qty = child.pending_price = None
        self.child_by_cl_ord_id[(ev.venue, ev.cl_ord_id)] = ev.child_id
        if ev.venue != INTERNAL:
            self._await(ev.child_id, ev.ts)

    def _child_replace_sent(self, ev: ChildReplaceSent) -> None:
        child = self.children[ev.child_id]
        child.status = OrdStatus.PENDING_REPLACE
        child.pending_cl_ord_id = ev.cl_ord_id
        child.pending_qty = ev.qty
        child.pending_price = ev.price
        self.child_by_cl_ord_id[(ev.venue, ev.cl_ord_id)] = ev.child_id
        if ev.venue != INTERNAL:
            self._await(ev.child_id, ev.ts)

    def _status_requested(self, ev: ChildStatusRequested) -> None:
        self._await(ev.child_id, ev.ts)

    def _in_doubt(self, ev: ChildInDoubt) -> None:
        self.children[ev.child_id].doubt = ev.reason
        self.awaiting.pop(ev.child_id, None)  # visible as in doubt until the venue answers

    def _child_updated(self, ev: ChildUpdated) -> None:
        child = self.children[ev.child_id]
        if child.venue == INTERNAL:
            self._requeue(child, ev)
        child.status = ev.status
        child.cl_ord_id = ev.cl_ord_id
        child.qty = ev.qty
        child.cum_qty = ev.cum_qty
        child.price = ev.price
        child.acked = child.acked or ev.status is not OrdStatus.PENDING_NEW
        child.doubt = ""  # the venue answered
        if ev.status not in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
            child.pending_cl_ord_id = child.pending_qty = child.pending_price = None
            self.awaiting.pop(ev.child_id, None)
        if ev.venue_exec_id is not None and ev.fill_exec_id is not None:
            child.venue_fills[ev.venue_exec_id] = ev.fill_exec_id

    def _requeue(self, child: ChildOrder, ev: ChildUpdated) -> None:
        """Keep the crossing book in time priority: a done child leaves it, a new price or a
        larger quantity goes to the back, as on a venue."""
        queue = self.internal[self.orders[child.order_id].symbol]
        if ev.status in TERMINAL:
            queue.pop(child.child_id, None)
        elif ev.price != child.price or ev.qty > child.qty:
            queue.pop(child.child_id, None)
            queue[child.child_id] = None

    def _allocation_booked(self, ev: AllocationBooked) -> None:
        self.allocations[ev.alloc_id] = ev
        qty, value = self.allocated.get(ev.order_id, (0, 0))
        self.allocated[ev.order_id] = (qty + ev.qty, value + ev.value)

    def _allocation_canceled(self, ev: AllocationCanceled) -> None:
        b = ev.booking
        self.canceled_allocations.add(b.alloc_id)
        qty, value = self.allocated[b.order_id]
        self.allocated[b.order_id] = (qty - b.qty, value - b.value)

    def _day_started(self, ev: DayStarted) -> None:
        self.day, self.day_open = ev.date, True

    def _day_ended(self, ev: DayEnded) -> None:
        self.day_open = False

    def _halt_changed(self, ev: HaltChanged) -> None:
        venues = self.halts.setdefault(ev.symbol, set())
        if ev.halted:
            venues.add(ev.venue)
        else:
            venues.discard(ev.venue)
            if not venues:
                del self.halts[ev.symbol]

    def _no_change(self, ev: Event) -> None:
        pass

    # ------------------------------------------------------------------ queries
    def find(self, session: str, cl_ord_id: str) -> ParentOrder | None:
        oid = self.by_cl_ord_id.get((session, cl_ord_id))
        return None if oid is None else self.orders[oid]

    def find_child(self, venue: str, cl_ord_id: str) -> ChildOrder | None:
        cid = self.child_by_cl_ord_id.get((venue, cl_ord_id))
        return None if cid is None else self.children[cid]

    def state_hash(self) -> str:
        """SHA-256 over all derived state in a canonical order: orders, children, their
        ClOrdID indexes, the crossing book in time priority, the children awaiting an answer,
        the trading day and halts, allocations and what the observers derived (compliance). Equal
        hash, equal state."""
        h = hashlib.sha256()
        enc = msgspec.msgpack.Encoder(order="sorted")
        for oid in sorted(self.orders):
            h.update(enc.encode(self.orders[oid]))
        for cid in sorted(self.children):
            h.update(enc.encode(self.children[cid]))
        h.update(enc.encode(sorted(self.by_cl_ord_id.items())))
        h.update(enc.encode(sorted(self.child_by_cl_ord_id.items())))
        h.update(enc.encode([(symbol, list(queue)) for symbol, queue in sorted(self.internal.items())]))
        h.update(enc.encode(list(self.awaiting.items())))
        h.update(enc.encode((self.day, self.day_open, sorted((s, sorted(v)) for s, v in self.halts.items()))))
        for aid in sorted(self.allocations):
            h.update(enc.encode((self.allocations[aid], aid in self.canceled_allocations)))
        for digest in self._digests:
            h.update(digest())
        return h.hexdigest()


_APPLY = {
    OrderAccepted: OmsState._accepted,
    ExecutionReport: OmsState._report,
    CancelRejected: OmsState._cancel_rejected,
    ChildOrderSent: OmsState._child_sent,
    ChildCancelSent: OmsState._child_cancel_sent,
    ChildReplaceSent: OmsState._child_replace_sent,
    ChildUpdated: OmsState._child_updated,
    OrderRejected: OmsState._no_change,
    Anomaly: OmsState._no_change,
    RiskChanged: OmsState._no_change,
    ChildStatusRequested: OmsState._status_requested,
    ChildInDoubt: OmsState._in_doubt,
    ComplianceAlert: OmsState._no_change,
    AllocationBooked: OmsState._allocation_booked,
    AllocationRejected: OmsState._no_change,
    AllocationCanceled: OmsState._allocation_canceled,
    BestPrice: OmsState._no_change,
    DayStarted: OmsState._day_started,
    DayEnded: OmsState._day_ended,
    HaltChanged: OmsState._halt_changed,
    SplitApplied: OmsState._no_change,  # the orders are restated by the reports that follow it
}
