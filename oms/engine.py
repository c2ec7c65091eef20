"""The engine: the single writer. `handle(command) -> events`, no I/O.

The clock and the id generator are injected, so the same commands give the same
events. Each handler decides its transitions through `oms.states` first and then
emits events, applying each through `OmsState.apply` as it goes; a command that
cannot be applied yields a typed reject or an `Anomaly`, never an exception.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from oms.fixed import MAX_NOTIONAL, MAX_PRICE, MAX_QTY, price_str
from oms.model import (
    Account,
    Allocate,
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    CancelAllocation,
    Anomaly,
    BestPrice,
    CancelRejected,
    CancelRequest,
    ChildStatusRequested,
    ComplianceAlert,
    EvaluatePostTrade,
    ChildCancelSent,
    ChildOrderSent,
    ChildReplaceSent,
    ChildUpdated,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Instrument,
    MarketData,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrdStatus,
    OrdType,
    ReenableExecutions,
    ReplaceRequest,
    RiskChanged,
    SessionLost,
    SetKillSwitch,
    SetLimit,
    SetOverride,
    StatusRequest,
    TimeInForce,
    Timer,
    VenueCancelReject,
    VenueExecReport,
    VenueReject,
    VenueStatus,
    VenueNotice,
    ChildInDoubt,
)
from oms.reasons import Reason
from oms import allocation
from oms.crossing import cross, resting
from oms.router import CROSS, INTERNAL, POLICIES, plan
from risk.compliance import Compliance
from risk.config import RiskConfig
from oms.state import ChildOrder, OmsState, ParentOrder
from oms.states import (
    PENDING,
    TERMINAL,
    IllegalTransition,
    Trigger,
    allowed,
    leaves_qty,
    next_status,
)

log = logging.getLogger("oms.engine")

S = OrdStatus
T = Trigger
_PRICED = frozenset({OrdType.LIMIT, OrdType.STOP_LIMIT})
_STOPPED = frozenset({OrdType.STOP, OrdType.STOP_LIMIT})
_CROSSABLE = frozenset({OrdType.LIMIT, OrdType.MARKET})  # stops wait for their trigger at the venue
_KEEP: Any = object()


class ReferenceData(msgspec.Struct, frozen=True):
    """What the engine validates against: instruments, accounts, venues, entitlements."""

    instruments: dict[str, Instrument]
    accounts: dict[str, Account]
    venues: tuple[str, ...]
    default_venue: str
    entitlements: dict[str, frozenset[str]]  # session -> accounts it may trade
    ref_prices: dict[str, int] = {}  # configured reference prices, the fallback for valuing orders
    default_route: str = ""  # a venue or a router policy for orders without ExDestination; "": default_venue
    reroute_on_reject: bool = True  # a venue reject of a policy-routed child tries the venues not yet tried
    internal_cross: bool = False  # BEST/SWEEP orders cross resting CROSS orders first; CROSS is accepted
    venue_policies: dict[str, VenuePolicy] = {}  # by venue; a venue not named gets the defaults


class VenuePolicy(msgspec.Struct, frozen=True):
    """How the OMS treats a venue that does not answer, or does not know a child."""

    ack_timeout_ns: int = 5_000_000_000  # no answer to an order, cancel, replace or status request: in doubt
    on_timeout: str = "status"  # "status": ask and alert; "cancel": also cancel the order
    unknown_child: str = "resend"  # a child the venue never received: "resend" (same ClOrdID) or "reject"


class SequentialIds:
    """Ids `<prefix><n>`; the prefix keeps ids unique across restarts of one journal."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


_VENUE_DONE = frozenset({OrdStatus.CANCELED, OrdStatus.EXPIRED, OrdStatus.REJECTED, OrdStatus.DONE_FOR_DAY})
_AT_VENUE = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED, OrdStatus.PENDING_CANCEL,
                       OrdStatus.PENDING_REPLACE})
_FILLS = frozenset({ExecType.TRADE, ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT})
_DEFAULT_POLICY = VenuePolicy()


class Engine:
    def __init__(
        self,
        ref: ReferenceData,
        clock: Callable[[], int],
        ids: Callable[[], str],
        on_anomaly: Callable[[Anomaly], None] | None = None,
        risk: RiskConfig | None = None,
        history: Callable[[], Iterable[Event]] | None = None,
    ) -> None:
        self.ref = ref
        self.clock = clock
        self.ids = ids
        self.risk_cfg = risk or RiskConfig()
        self.state, self.compliance = self._fresh_state()
        # where an undo rebuilds state from: every event applied before the current command.
        # Without a source (a standalone engine) the engine keeps its own log of them.
        self._log: list[Event] | None = [] if history is None else None
        self._history: Callable[[], Iterable[Event]] = history or (lambda: self._log or ())
        self.quotes: dict[str, dict[str, MarketData]] = {}  # symbol -> venue -> latest quote
        self.bbo: dict[str, tuple[int | None, int | None]] = {}  # symbol -> last journaled BestPrice
        self.venues_down: set[str] = set()  # live session status, for the router (not order state)
        self.duplicate_venue_execs = 0
        self._on_anomaly = on_anomaly
        self._min_timeout = min([p.ack_timeout_ns for p in ref.venue_policies.values()]
                                + [_DEFAULT_POLICY.ack_timeout_ns])
        self._out: list[Event] = []
        self._now = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            NewOrder: self._new_order,
            CancelRequest: self._cancel_request,
            ReplaceRequest: self._replace_request,
            StatusRequest: self._status_request,
            VenueExecReport: self._venue_report,
            VenueCancelReject: self._venue_cancel_reject,
            VenueReject: self._venue_reject,
            MarketData: self._market_data,
            SessionLost: self._session_lost,
            Timer: self._timer,
            SetLimit: self._risk_change,
            SetKillSwitch: self._risk_change,
            SetOverride: self._risk_change,
            ReenableExecutions: self._risk_change,
            EvaluatePostTrade: self._evaluate_post_trade,
            VenueStatus: self._venue_status,
            Allocate: self._allocate,
            CancelAllocation: self._cancel_allocation,
            VenueNotice: self._venue_notice,
        }

    # ------------------------------------------------------------------ core
    def handle(self, cmd: Command) -> list[Event]:
        """The command's events, applied; all of them or none. A handler that fails (an
        illegal transition, a bug) is undone whole: the state is rebuilt from what came
        before, and the command gets only a journaled `Anomaly` and its refusal."""
        out: list[Event] = []
        self._out = out
        self._now = self.clock()
        compliance = self.compliance
        if compliance.findings or compliance.touched:  # left over from a replay
            compliance.findings, compliance.touched = [], set()
        try:
            self._handlers[type(cmd)](cmd)
            if compliance.findings or compliance.touched:
                self._compliance_findings()
        except Exception as exc:  # the engine never dies from a message, nor keeps half of one
            kind = "illegal_transition" if isinstance(exc, IllegalTransition) else "internal_error"
            if kind == "internal_error":
                log.exception("command failed, undone: %r", cmd)
            self._undo(len(out))
            out.clear()
            self._refuse_failed(cmd, kind, exc)
        if self._log is not None:
            self._log.extend(out)
        return out

    def bind_history(self, history: Callable[[], Iterable[Event]]) -> None:
        """Undo from `history` (every event applied before the current command, e.g. the
        journal's) instead of a log of the engine's own."""
        self._history, self._log = history, None

    def _fresh_state(self) -> tuple[OmsState, Compliance]:
        state = OmsState()
        compliance = Compliance(list(self.ref.accounts), list(self.ref.instruments), self.risk_cfg,
                                self.ref.ref_prices)
        state.observe(compliance.handlers, compliance.digest)  # replayed events rebuild it too
        return state, compliance

    def _undo(self, applied: int) -> None:
        """Forget the failed command's events: rebuild state and compliance from the events
        before it. Market inputs that are not events (reference prices) are carried over."""
        if not applied and not self.compliance.findings and not self.compliance.touched:
            return  # it failed before changing anything
        t0 = time.perf_counter()
        old = self.compliance
        self.state, self.compliance = self._fresh_state()
        self.compliance.carry_market(old)
        apply = self.state.apply
        for ev in self._history():
            apply(ev)
        log.warning("state rebuilt from %d events in %.3f s", self.state.events_applied, time.perf_counter() - t0)

    def _refuse_failed(self, cmd: Command, kind: str, exc: Exception) -> None:
        """What a failed command leaves: an Anomaly naming it (so nothing it carried is lost)
        and, where someone waits for an answer, its refusal."""
        self._anomaly(kind, f"{type(cmd).__name__} not applied: {exc!r}; command {msgspec.json.encode(cmd).decode()}")
        r, text = Reason.INTERNAL_ERROR, f"{Reason.INTERNAL_ERROR.text} ({kind})"
        if isinstance(cmd, NewOrder):
            self._reject_new(cmd, r, text)
        elif isinstance(cmd, (CancelRequest, ReplaceRequest)):
            o = self.state.find(cmd.session, cmd.orig_cl_ord_id)
            self._cxl_reject(cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, o, r, text,
                             isinstance(cmd, ReplaceRequest))
        elif isinstance(cmd, Allocate):
            self._emit(AllocationRejected(ts=self._now, alloc_id=cmd.alloc_id, user=cmd.user, order_id=cmd.order_id,
                                          reason=r.name, text=text))

    def _compliance_findings(self) -> None:
        """Alerts for what the last command's events set off: throttles, wash trades, and the
        post-trade rules of every account that traded."""
        found, self.compliance.findings = self.compliance.findings, []
        for control, level, text, account, symbol in found:
            self._emit(ComplianceAlert(ts=self._now, control=control, level=level, text=text, account=account,
                                       symbol=symbol))
        touched, self.compliance.touched = self.compliance.touched, set()
        for a in sorted(touched):
            self._post_trade(a)

    def _post_trade(self, account: int = -1) -> None:
        for rule, level, text, acc in self.compliance.post_trade(account, self._now):
            self._emit(ComplianceAlert(ts=self._now, control=rule, level=level, text=text, account=acc))

    def _evaluate_post_trade(self, c: EvaluatePostTrade) -> None:
        self._post_trade()

    def _allocate(self, c: Allocate) -> None:
        """Book a block's executed shares to accounts (oms.allocation), each target checked
        against the holding controls; all or nothing."""
        def refuse(reason: Reason, text: str, account: str = "") -> None:
            self._emit(AllocationRejected(ts=self._now, alloc_id=c.alloc_id, user=c.user, order_id=c.order_id,
                                          reason=reason.name, text=text, account=account))

        o = self.state.orders.get(c.order_id) if c.order_id else self.state.find(c.session, c.cl_ord_id)
        unknown = [t.account for t in c.targets if t.account not in self.ref.accounts]
        if c.alloc_id in self.state.allocations:
            return refuse(Reason.DUPLICATE_ALLOC_ID, f"allocation {c.alloc_id} is already booked")
        if o is None:
            return refuse(Reason.UNKNOWN_ORDER, f"unknown order {c.order_id or c.cl_ord_id}")
        if unknown:
            return refuse(Reason.UNKNOWN_ACCOUNT, f"unknown account {unknown[0]}", unknown[0])
        barred = self._not_entitled(c.session, [o.account, *(t.account for t in c.targets)])
        if barred:
            return refuse(Reason.NOT_ENTITLED, f"{c.session} may not act for account {barred}", barred)
        if (c.symbol and c.symbol != o.symbol) or (c.side is not None and c.side is not o.side):
            return refuse(Reason.BAD_ALLOCATION, f"the block {o.order_id} is {o.side.name} {o.symbol}, not "
                                                 f"{c.side.name if c.side else o.side.name} {c.symbol or o.symbol}")
        if any(t.account == o.account for t in c.targets):
            return refuse(Reason.BAD_ALLOCATION, f"{o.account} holds the block: it cannot be a target")
        c = msgspec.structs.replace(c, order_id=o.order_id)  # the events name the block by its OrderID
        shares = allocation.plan(c, o.cum_qty, o.cum_value, self.state.allocated.get(o.order_id, (0, 0)),
                                 self.ref.instruments[o.symbol].lot_size)
        if isinstance(shares, tuple):
            return refuse(*shares)
        verdicts = self.compliance.check_allocation(o.account, o.symbol, o.side, shares, self._now)
        for share, verdict in zip(shares, verdicts):
            if verdict.control is not None:
                return refuse(Reason[f"RISK_{verdict.control.name}"], f"{share.account}: {verdict.text}",
                              share.account)
        self._emit(AllocationBooked(ts=self._now, alloc_id=c.alloc_id, user=c.user, order_id=o.order_id,
                                    account=o.account, symbol=o.symbol, side=o.side, qty=sum(s.qty for s in shares),
                                    value=sum(s.value for s in shares), shares=tuple(shares)))
        for share, verdict in zip(shares, verdicts):
            for control, text in verdict.alerts:
                self._emit(ComplianceAlert(ts=self._now, control=control.label, text=f"allocation {c.alloc_id}: {text}",
                                           account=share.account, symbol=o.symbol, order_id=o.order_id))

    def _not_entitled(self, session: str, accounts: list[str]) -> str | None:
        """The first account the session may not act for (none when no session is named)."""
        if not session:
            return None
        entitled = self.ref.entitlements.get(session, frozenset())
        return next((a for a in accounts if a not in entitled), None)

    def _cancel_allocation(self, c: CancelAllocation) -> None:
        booking = self.state.allocations.get(c.alloc_id)
        barred = booking and self._not_entitled(c.session, [booking.account, *(s.account for s in booking.shares)])
        refused = (Reason.UNKNOWN_ALLOCATION if booking is None else
                   Reason.ALLOCATION_CANCELED if c.alloc_id in self.state.canceled_allocations else
                   Reason.NOT_ENTITLED if barred else None)
        if refused is not None:
            barred = barred if refused is Reason.NOT_ENTITLED else None
            text = f"{c.session} may not act for account {barred}" if barred else f"{refused.text}: {c.alloc_id}"
            self._emit(AllocationRejected(ts=self._now, alloc_id=c.alloc_id, user=c.user,
                                          order_id=booking.order_id if booking else "", reason=refused.name,
                                          text=text, account=barred or ""))
            return
        self._emit(AllocationCanceled(ts=self._now, alloc_id=c.alloc_id, user=c.user, booking=booking))

    def _emit(self, ev: Event) -> None:
        self.state.apply(ev)
        self._out.append(ev)

    def _anomaly(self, kind: str, detail: str, alert: bool = False) -> None:
        """Journal and count what the OMS could not apply; `alert`: also on the compliance feed,
        for what an operator must look at."""
        ev = Anomaly(ts=self._now, kind=kind, detail=detail)
        log.warning("anomaly %s: %s", kind, detail)
        self._emit(ev)
        if alert:
            self._emit(ComplianceAlert(ts=self._now, control=kind, level="warn", text=detail))
        if self._on_anomaly is not None:
            self._on_anomaly(ev)

    def _er(
        self,
        o: ParentOrder,
        exec_type: ExecType,
        status: OrdStatus,
        *,
        exec_id: str | None = None,
        cl_ord_id: str | None = None,
        orig_cl_ord_id: str | None = _KEEP,
        order_qty: int | None = None,
        cum_qty: int | None = None,
        cum_value: int | None = None,
        price: int | None = _KEEP,
        last_qty: int = 0,
        last_px: int = 0,
        exec_ref_id: str | None = None,
        reject_reason: int | None = None,
        text: str = "",
        pending: tuple[str | None, int | None, int | None] | None = _KEEP,
    ) -> None:
        """Emit one ExecutionReport for parent `o`; unspecified fields keep the order's values."""
        qty = o.order_qty if order_qty is None else order_qty
        cum = o.cum_qty if cum_qty is None else cum_qty
        if status is not S.PENDING_CANCEL and status is not S.PENDING_REPLACE or pending is None:
            pending = (None, None, None)
        elif pending is _KEEP:
            pending = (o.pending_cl_ord_id, o.pending_qty, o.pending_price)
        # positional, in field order (tests/test_model.py holds it): three times faster than keywords
        self._emit(ExecutionReport(
            self._now, o.order_id, exec_id or self.ids(), exec_type, status, o.session, o.account, o.symbol, o.side,
            cl_ord_id or o.cl_ord_id, o.orig_cl_ord_id if orig_cl_ord_id is _KEEP else orig_cl_ord_id, qty, cum,
            leaves_qty(status, qty, cum), o.cum_value if cum_value is None else cum_value, last_qty, last_px,
            o.price if price is _KEEP else price, exec_ref_id, reject_reason, text, *pending,
        ))

    def _child_update(
        self,
        ch: ChildOrder,
        status: OrdStatus,
        *,
        cl_ord_id: str | None = None,
        qty: int | None = None,
        cum_qty: int | None = None,
        price: int | None = _KEEP,
        venue_exec_id: str | None = None,
        fill_exec_id: str | None = None,
    ) -> None:
        self._emit(ChildUpdated(  # positional, in field order (tests/test_model.py)
            self._now, ch.child_id, status, cl_ord_id or ch.cl_ord_id, ch.qty if qty is None else qty,
            ch.cum_qty if cum_qty is None else cum_qty, ch.price if price is _KEEP else price, venue_exec_id,
            fill_exec_id,
        ))

    # ------------------------------------------------------------------ validation
    def _check_terms(
        self, symbol: str, ord_type: OrdType, qty: Any, price: Any, stop_px: Any
    ) -> tuple[Reason, str] | None:
        inst = self.ref.instruments.get(symbol)
        if inst is None:
            return Reason.UNKNOWN_SYMBOL, f"Symbol (55): unknown symbol {symbol!r}"
        if type(qty) is not int or qty <= 0 or qty % inst.lot_size:
            return (Reason.BAD_QUANTITY,
                    f"OrderQty (38): quantity {qty!r} must be a positive multiple of lot size {inst.lot_size}")
        if qty > MAX_QTY:
            return Reason.QUANTITY_TOO_LARGE, f"OrderQty (38): quantity {qty} exceeds {MAX_QTY}"
        bad = ord_type in _PRICED and self._check_price("Price (44)", price, inst, symbol)
        bad = bad or (ord_type in _STOPPED and self._check_price("StopPx (99)", stop_px, inst, symbol))
        if bad:
            return bad
        px = max(price if ord_type in _PRICED else 0, stop_px if ord_type in _STOPPED else 0)
        if qty * px > MAX_NOTIONAL:  # a market order's, at the reference price, is the kernel's max_notional
            return (Reason.NOTIONAL_TOO_LARGE,
                    f"notional {qty} x {price_str(px)} = {price_str(qty * px)} exceeds {price_str(MAX_NOTIONAL)}")
        return None

    @staticmethod
    def _check_price(name: str, value: Any, inst: Instrument, symbol: str) -> tuple[Reason, str] | None:
        if value is None:
            return Reason.BAD_PRICE, f"{name} is required for this OrdType (40)"
        if type(value) is not int or value <= 0 or value > MAX_PRICE:
            shown = price_str(value) if type(value) is int else repr(value)
            return Reason.BAD_PRICE, f"{name} {shown} must be positive and at most {price_str(MAX_PRICE)}"
        if value % inst.tick_size:
            return (
                Reason.PRICE_OFF_TICK,
                f"{name} {price_str(value)} is not a multiple of tick {price_str(inst.tick_size)} for {symbol}",
            )
        return None

    def _check_new(self, c: NewOrder) -> tuple[Reason, str] | None:
        if c.account not in self.ref.accounts:
            return Reason.UNKNOWN_ACCOUNT, f"unknown account {c.account!r}"
        if c.account not in self.ref.entitlements.get(c.session, ()):
            return Reason.NOT_ENTITLED, f"session {c.session} may not trade account {c.account}"
        bad = self._check_terms(c.symbol, c.ord_type, c.qty, c.price, c.stop_px)
        if bad is not None:
            return bad
        if c.tif is TimeInForce.GTD and (c.expire_time is None or c.expire_time <= self._now):
            return Reason.BAD_EXPIRE_TIME, "GTD order needs an ExpireTime in the future"
        if c.ex_destination == CROSS and self.ref.internal_cross:
            if c.ord_type not in (OrdType.LIMIT, OrdType.MARKET):
                return Reason.UNSUPPORTED, "a CROSS order is a limit or market order"
        elif c.ex_destination is not None and c.ex_destination not in self.ref.venues + POLICIES:
            return Reason.NO_VENUE, f"unknown ExDestination {c.ex_destination!r}"
        return None

    # ------------------------------------------------------------------ trader commands
    def _new_order(self, c: NewOrder) -> None:
        existing = self.state.find(c.session, c.cl_ord_id)
        if existing is not None:
            if c.poss_resend:  # F.1.b: already received -> echo its status
                self._status_report(existing)
            else:  # F.1.a: reject, carrying the existing order's status
                self._reject_new(c, Reason.DUPLICATE_CL_ORD_ID, f"duplicate ClOrdID {c.cl_ord_id}", existing)
            return
        bad = self._check_new(c)
        if bad is not None:
            self._reject_new(c, bad[0], bad[1])
            return
        if c.ord_type not in _PRICED and c.price is not None:
            c = msgspec.structs.replace(c, price=None)  # a market or stop order carries no limit
        venue = c.ex_destination or self.ref.default_route or self.ref.default_venue
        verdict = self.compliance.check_new(c, venue, self._now)
        if verdict.control is not None:
            self._reject_new(c, Reason[f"RISK_{verdict.control.name}"], verdict.text)
            return
        order_id = self.ids()
        self._emit(OrderAccepted(ts=self._now, order_id=order_id, exec_id=self.ids(), order=c, venue=venue,
                                 risk_px=verdict.risk_px))
        for control, text in verdict.alerts:
            self._emit(ComplianceAlert(ts=self._now, control=control.label, text=text, account=c.account,
                                       symbol=c.symbol, order_id=order_id))
        o = self.state.orders[order_id]
        left = c.qty
        if self.ref.internal_cross and (venue in POLICIES or venue == CROSS) and c.ord_type in _CROSSABLE:
            left -= self._cross(o, c.qty)
        if left and venue == CROSS and (o.price is None or o.tif is TimeInForce.IOC or o.tif is TimeInForce.FOK):
            status = next_status(o.status, T.UNSOLICITED_CANCEL, o.acked, o.order_qty, o.cum_qty)
            self._er(o, ExecType.CANCELED, status, text="nothing more to cross internally")  # cannot rest
        elif left:
            self._route(o, left)

    def _cross(self, o: ParentOrder, qty: int) -> int:
        """Trade `qty` of a new order against the resting CROSS orders of other accounts
        (oms.crossing); each side gets its fills through an INTERNAL child. The quantity crossed."""
        trades = cross(o, qty, resting(self.state, o))
        if not trades:
            return 0
        taker = self._send_child(o, INTERNAL, sum(q for _ch, _px, q in trades))
        for maker, px, q in trades:
            for ch, parent in ((maker, self.state.orders[maker.order_id]), (taker, o)):
                self._venue_fill(ch, parent, VenueExecReport(venue=INTERNAL, cl_ord_id=ch.cl_ord_id,
                                                             exec_id=f"X{self.ids()}", exec_type=ExecType.TRADE,
                                                             last_qty=q, last_px=px))
        return taker.qty

    def _reject_new(self, c: NewOrder, reason: Reason, text: str, existing: ParentOrder | None = None) -> None:
        snapshot = None
        if existing is not None:
            snapshot = self._status_event(existing)
        self._emit(
            OrderRejected(ts=self._now, exec_id=self.ids(), order=c, reason=reason.name, text=text, existing=snapshot)
        )

    def _route(self, o: ParentOrder, qty: int, avoid: frozenset[str] = frozenset()) -> None:
        """Children for `qty`: one at the order's venue, or where its policy sends them
        (oms.router); a CROSS order's rests in the internal crossing book, acknowledged at once."""
        if o.venue == CROSS:
            self._venue_ack(self._send_child(o, INTERNAL, qty), o)
            return
        legs = plan(o.venue, o.side, qty, o.price, self.quotes.get(o.symbol, {}), self.ref.venues,
                    self.venues_down | avoid if avoid else self.venues_down, self.ref.default_venue)
        for venue, leg in legs:
            self._send_child(o, venue, leg)

    def _send_child(self, o: ParentOrder, venue: str, qty: int) -> ChildOrder:
        child_id = self.ids()
        self._emit(ChildOrderSent(ts=self._now, child_id=child_id, order_id=o.order_id, venue=venue,
                                  cl_ord_id=self.ids(), symbol=o.symbol, side=o.side, ord_type=o.ord_type, qty=qty,
                                  price=o.price, stop_px=o.stop_px, tif=o.tif))
        return self.state.children[child_id]

    def _venue_status(self, c: VenueStatus) -> None:
        """Down: route around the venue; its working children are in doubt until it is back.
        Up (at start-up and at every logon): ask the venue for the status of each open child,
        and reconcile on the answers (`_reconcile`); no answer in time puts it in doubt."""
        working = [ch for ch in self.state.children.values()
                   if ch.venue == c.venue and ch.status not in TERMINAL]
        if not c.up:
            self.venues_down.add(c.venue)
            if working:
                self._anomaly("venue_down", f"venue {c.venue} down: {len(working)} working child orders in doubt")
            return
        self.venues_down.discard(c.venue)
        for ch in working:
            o = self.state.orders[ch.order_id]
            self._emit(ChildStatusRequested(ts=self._now, child_id=ch.child_id, venue=ch.venue,
                                            cl_ord_id=ch.cl_ord_id, symbol=o.symbol, side=o.side))

    def _policy(self, venue: str) -> VenuePolicy:
        return self.ref.venue_policies.get(venue, _DEFAULT_POLICY)

    def _reconcile(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        """A venue's status of a child: acknowledge what it has, send again what never reached
        it, book the fills we missed, end it if the venue has."""
        if r.ord_status is S.REJECTED and not ch.acked:  # the venue never had it (or refused it unseen)
            if self._policy(ch.venue).unknown_child == "resend" and ch.status is S.PENDING_NEW:
                self._emit(ChildOrderSent(ts=self._now, child_id=ch.child_id, order_id=o.order_id, venue=ch.venue,
                                          cl_ord_id=ch.cl_ord_id, symbol=o.symbol, side=o.side, ord_type=o.ord_type,
                                          qty=ch.qty, price=ch.price, stop_px=o.stop_px, tif=o.tif, resend=True))
                return
            self._venue_rejected(ch, o, ch.cl_ord_id, f"{ch.venue} does not know the order: {r.text}".rstrip(": "))
            return
        if not ch.acked and r.ord_status in _AT_VENUE:
            self._venue_ack(ch, o)
        missing = (r.cum_qty or 0) - ch.cum_qty
        if missing > 0 and r.avg_px:
            known = sum(o.fills[f][0] * o.fills[f][1] for f in ch.venue_fills.values() if f in o.fills)
            px = (r.avg_px * (r.cum_qty or 0) - known) // missing
            self._venue_fill(ch, o, VenueExecReport(
                venue=r.venue, cl_ord_id=r.cl_ord_id, exec_id=f"{r.exec_id}/reconciled", exec_type=ExecType.TRADE,
                last_qty=missing, last_px=px, text="reconciled from the venue's order status"))
        if r.ord_status in _VENUE_DONE and ch.status not in TERMINAL:
            self._venue_canceled(ch, o, f"reconciled: the venue reports the order {r.ord_status.name.lower()}")
        elif ch.status in (S.PENDING_CANCEL, S.PENDING_REPLACE) and r.cl_ord_id == ch.cl_ord_id \
                and r.ord_status in (S.NEW, S.PARTIALLY_FILLED):
            self._resend_request(ch, o)  # the venue still has it on its old terms: our request never arrived
        elif ch.doubt or ch.child_id in self.state.awaiting and ch.status not in (S.PENDING_CANCEL, S.PENDING_REPLACE):
            self._child_update(ch, ch.status)  # answered: no longer waiting, nor in doubt

    def _resend_request(self, ch: ChildOrder, o: ParentOrder) -> None:
        """A cancel or replace its venue never received, sent again under the same ClOrdID."""
        assert ch.pending_cl_ord_id is not None
        if ch.status is S.PENDING_CANCEL:
            self._emit(ChildCancelSent(ts=self._now, child_id=ch.child_id, venue=ch.venue,
                                       cl_ord_id=ch.pending_cl_ord_id, orig_cl_ord_id=ch.cl_ord_id, symbol=o.symbol,
                                       side=o.side, qty=ch.qty))
        else:
            self._emit(ChildReplaceSent(ts=self._now, child_id=ch.child_id, venue=ch.venue,
                                        cl_ord_id=ch.pending_cl_ord_id, orig_cl_ord_id=ch.cl_ord_id, symbol=o.symbol,
                                        side=o.side, ord_type=o.ord_type, qty=ch.pending_qty or ch.qty,
                                        price=ch.pending_price))

    def _venue_notice(self, c: VenueNotice) -> None:
        """What a venue said that is no order event. A refused status request leaves the
        children that were asked in doubt: visible, alerted, the trader told."""
        if c.kind != "status_refused":
            self._anomaly(f"venue_{c.kind}", f"{c.venue}: {c.text}", alert=True)
            return
        asked = [self.state.children[cid] for cid in self.state.awaiting]
        named = self.state.find_child(c.venue, c.cl_ord_id) if c.cl_ord_id else None
        for ch in [named] if named is not None else [a for a in asked if a.venue == c.venue]:
            if not ch.doubt.startswith(f"{c.venue} refuses"):
                self._doubt(ch, f"{c.venue} refuses status requests ({c.text or 'BusinessMessageReject'})", ask=False)

    def _doubt(self, ch: ChildOrder, reason: str, ask: bool) -> None:
        """Nobody can vouch for this child: say so in the journal, on the alert feed and to the trader."""
        o = self.state.orders[ch.order_id]
        self._emit(ChildInDoubt(ts=self._now, child_id=ch.child_id, venue=ch.venue, cl_ord_id=ch.cl_ord_id,
                                symbol=o.symbol, side=o.side, reason=reason, ask=ask))
        self._anomaly("child_in_doubt", f"order {o.order_id} child {ch.cl_ord_id}: {reason}", alert=True)
        self._er(o, ExecType.ORDER_STATUS, o.status, text=f"in doubt at {ch.venue}: {reason}")

    def _timeouts(self) -> None:
        """Children whose venue has not answered within its time are in doubt (and, by the
        venue's policy, their order is canceled): the parent never waits for ever."""
        awaiting, children = self.state.awaiting, self.state.children
        late = []
        for cid, since in awaiting.items():  # oldest first
            ch = children[cid]
            if self._now - since <= self._policy(ch.venue).ack_timeout_ns:
                if self._now - since <= self._min_timeout:
                    break
                continue
            late.append(ch)
        for ch in late:
            if ch.doubt:  # asked again (a venue logon) and still no answer: stays in doubt, quietly
                o = self.state.orders[ch.order_id]
                self._emit(ChildInDoubt(ts=self._now, child_id=ch.child_id, venue=ch.venue, cl_ord_id=ch.cl_ord_id,
                                        symbol=o.symbol, side=o.side, reason=ch.doubt, ask=False))
                continue
            policy = self._policy(ch.venue)
            self._doubt(ch, f"no answer from {ch.venue} within {policy.ack_timeout_ns / 1e9:g} s "
                            f"({ch.status.name.lower()})", ask=True)
            o = self.state.orders[ch.order_id]
            if policy.on_timeout == "cancel" and allowed(o.status, T.CANCEL_REQUEST):
                self._force_cancel(o, f"{ch.venue} did not answer within {policy.ack_timeout_ns / 1e9:g} s")

    def _status_event(self, o: ParentOrder) -> ExecutionReport:
        return ExecutionReport(
            ts=self._now,
            order_id=o.order_id,
            exec_id=self.ids(),
            exec_type=ExecType.ORDER_STATUS,
            ord_status=o.status,
            session=o.session,
            account=o.account,
            symbol=o.symbol,
            side=o.side,
            cl_ord_id=o.cl_ord_id,
            orig_cl_ord_id=o.orig_cl_ord_id,
            order_qty=o.order_qty,
            cum_qty=o.cum_qty,
            leaves_qty=leaves_qty(o.status, o.order_qty, o.cum_qty),
            cum_value=o.cum_value,
            price=o.price,
        )

    def _status_report(self, o: ParentOrder) -> None:
        self._emit(self._status_event(o))

    def _status_request(self, c: StatusRequest) -> None:
        o = self.state.find(c.session, c.cl_ord_id)
        if o is not None:
            self._status_report(o)
            return
        self._emit(  # G.1.a: unknown order
            ExecutionReport(
                ts=self._now,
                order_id="NONE",
                exec_id=self.ids(),
                exec_type=ExecType.ORDER_STATUS,
                ord_status=S.REJECTED,
                session=c.session,
                account="",
                symbol=c.symbol,
                side=c.side,
                cl_ord_id=c.cl_ord_id,
                orig_cl_ord_id=None,
                order_qty=0,
                cum_qty=0,
                leaves_qty=0,
                cum_value=0,
                reject_reason=Reason.UNKNOWN_ORDER.ord_rej_reason,
                text=Reason.UNKNOWN_ORDER.text,
            )
        )

    def _cxl_reject(
        self,
        session: str,
        cl_ord_id: str,
        orig_cl_ord_id: str,
        o: ParentOrder | None,
        reason: Reason,
        text: str,
        replace: bool,
        status: OrdStatus | None = None,
        clears_pending: bool = False,
    ) -> None:
        self._emit(
            CancelRejected(
                ts=self._now,
                session=session,
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=orig_cl_ord_id if o is None else o.cl_ord_id,
                order_id=None if o is None else o.order_id,
                ord_status=status or (S.REJECTED if o is None else o.status),
                reason=reason.name,
                text=text,
                replace=replace,
                clears_pending=clears_pending,
            )
        )

    def _amend_target(
        self, session: str, cl_ord_id: str, orig: str, trigger: Trigger, new_qty: int = 0
    ) -> ParentOrder | None:
        """The order a cancel/replace names, or None after emitting the cancel reject."""
        replace = trigger is T.REPLACE_REQUEST
        o = self.state.find(session, orig)
        if o is None:  # B.1.f: neither ClOrdID is consumed
            self._cxl_reject(session, cl_ord_id, orig, None, Reason.UNKNOWN_ORDER, f"unknown order {orig}", replace)
            return None
        if self.state.find(session, cl_ord_id) is not None:
            self._cxl_reject(session, cl_ord_id, orig, o, Reason.DUPLICATE_CL_ORD_ID, f"duplicate ClOrdID {cl_ord_id}", replace)
            return None
        # a filled order may only be raised (C.1.c); any other change is too late (C.2.a)
        if not allowed(o.status, trigger) or (o.status is S.FILLED and new_qty <= o.cum_qty):
            if o.status in PENDING:
                reason = Reason.PENDING  # D.2.d
            elif o.status is S.PENDING_NEW:
                reason = Reason.PENDING_NEW
            else:
                reason = Reason.TOO_LATE  # B.1.c, C.2.a
            self._cxl_reject(session, cl_ord_id, orig, o, reason, f"{reason.text} ({o.status.name})", replace)
            return None
        return o

    def _working_children(self, o: ParentOrder) -> list[ChildOrder]:
        return [ch for cid in o.children if (ch := self.state.children[cid]).status not in TERMINAL]

    def _cancel_request(self, c: CancelRequest) -> None:
        o = self._amend_target(c.session, c.cl_ord_id, c.orig_cl_ord_id, T.CANCEL_REQUEST)
        if o is None:
            return
        refused = self._risk_refusal(c.session, "cancel", o.order_id, 0, None)
        if refused is not None:
            self._cxl_reject(c.session, c.cl_ord_id, c.orig_cl_ord_id, o, refused[0], refused[1], False)
            return
        status = next_status(o.status, T.CANCEL_REQUEST, o.acked, o.order_qty, o.cum_qty)
        self._er(
            o, ExecType.PENDING_CANCEL, status,
            cl_ord_id=c.cl_ord_id, orig_cl_ord_id=o.cl_ord_id, pending=(c.cl_ord_id, None, None),
        )
        self._cancel_children(o)

    def _force_cancel(self, o: ParentOrder, text: str) -> None:
        """The OMS's own cancel (kill switch, cancel-on-disconnect): no throttle, and no new
        ClOrdID the trader never sent. The reports carry the order's own ClOrdID and the why."""
        status = next_status(o.status, T.CANCEL_REQUEST, o.acked, o.order_qty, o.cum_qty)
        self._er(o, ExecType.PENDING_CANCEL, status, orig_cl_ord_id=None, pending=(o.cl_ord_id, None, None),
                 text=text)
        self._cancel_children(o)

    def _session_lost(self, c: SessionLost) -> None:
        """Cancel-on-disconnect: every cancellable order of the session."""
        for o in list(self.state.orders.values()):
            if o.session == c.session and allowed(o.status, T.CANCEL_REQUEST):
                self._force_cancel(o, "cancel on disconnect")

    def _risk_refusal(self, session: str, kind: str, order_id: str, qty: int, price: int | None
                      ) -> tuple[Reason, str] | None:
        """A cancel or replace over its throttle, or a replace that breaches a limit."""
        text = self.compliance.rate_refused(session, kind, self._now)
        if text is not None:
            return Reason.RISK_THROTTLE, text
        if kind == "modify":
            verdict = self.compliance.check_replace(order_id, qty, price, self._now)
            if verdict.control is not None:
                return Reason[f"RISK_{verdict.control.name}"], verdict.text
        return None

    def _risk_change(self, c: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions) -> None:
        """Authorised users change limits, kill switches, overrides; each change is journaled."""
        if c.user not in self.risk_cfg.admins:
            self._emit(ComplianceAlert(ts=self._now, control="authorisation", level="hard",
                                       text=f"{type(c).__name__} refused: user {c.user!r} is not authorised"))
            return
        why = self.compliance.validate_change(c)
        if why is not None:
            self._emit(ComplianceAlert(ts=self._now, control="authorisation", level="hard",
                                       text=f"{type(c).__name__} refused: {why}"))
            return
        self._emit(RiskChanged(ts=self._now, user=c.user, change=c, reason=c.reason))
        if isinstance(c, SetKillSwitch) and c.on and not c.reduce_only:
            for o in list(self.state.orders.values()):
                venues = {o.venue} | {ch.venue for ch in self._working_children(o)}
                if allowed(o.status, T.CANCEL_REQUEST) and any(
                        self.compliance.in_scope(c, o.account, o.session, o.symbol, v) for v in venues):
                    self._force_cancel(o, f"kill switch [{c.scope} {c.key}] by {c.user}")

    def _cancel_children(self, o: ParentOrder) -> None:
        working = self._working_children(o)
        for ch in working:
            if allowed(ch.status, T.CANCEL_REQUEST):
                self._emit(
                    ChildCancelSent(
                        ts=self._now, child_id=ch.child_id, venue=ch.venue, cl_ord_id=self.ids(),
                        orig_cl_ord_id=ch.cl_ord_id, symbol=o.symbol, side=o.side, qty=ch.qty,
                    )
                )
                if ch.venue == INTERNAL:  # the crossing book is ours: canceled at once
                    self._venue_canceled(ch, o, "")
        if not working and o.status is S.PENDING_CANCEL:
            self._finish_cancel(o)

    def _finish_cancel(self, o: ParentOrder, text: str = "") -> None:
        status = next_status(o.status, T.CANCEL_DONE, o.acked, o.order_qty, o.cum_qty)
        self._er(
            o, ExecType.CANCELED, status,
            cl_ord_id=o.pending_cl_ord_id,
            orig_cl_ord_id=None if o.pending_cl_ord_id == o.cl_ord_id else o.cl_ord_id,  # forced: no chain
            pending=None, text=text,
        )

    def _replace_request(self, c: ReplaceRequest) -> None:
        o = self._amend_target(c.session, c.cl_ord_id, c.orig_cl_ord_id, T.REPLACE_REQUEST, c.qty)
        if o is None:
            return
        price = o.price if c.price is None else c.price
        stop_px = o.stop_px if c.stop_px is None else c.stop_px
        bad = self._check_terms(o.symbol, o.ord_type, c.qty, price, stop_px)
        if o.ord_type not in _PRICED:
            price = None
        if bad is None:
            bad = self._risk_refusal(c.session, "modify", o.order_id, c.qty, price)
        if bad is not None:
            self._cxl_reject(c.session, c.cl_ord_id, c.orig_cl_ord_id, o, bad[0], bad[1], True)
            return
        status = next_status(o.status, T.REPLACE_REQUEST, o.acked, o.order_qty, o.cum_qty)
        self._er(
            o, ExecType.PENDING_REPLACE, status,
            cl_ord_id=c.cl_ord_id, orig_cl_ord_id=o.cl_ord_id, pending=(c.cl_ord_id, c.qty, price),
        )
        working = self._working_children(o)
        if not working:
            self._finish_replace(o)
        elif len(working) == 1:  # resize the one child to the parent's new leaves, keeping its venue
            ch = working[0]
            self._replace_child(o, ch, ch.cum_qty + max(0, c.qty - o.cum_qty), price)
        else:  # split across venues: cancel the children, then route the new terms afresh
            self._cancel_children(o)

    def _replace_child(self, o: ParentOrder, ch: ChildOrder, qty: int, price: int | None) -> None:
        self._emit(
            ChildReplaceSent(
                ts=self._now, child_id=ch.child_id, venue=ch.venue, cl_ord_id=self.ids(),
                orig_cl_ord_id=ch.cl_ord_id, symbol=o.symbol, side=o.side, ord_type=o.ord_type,
                qty=qty, price=price,
            )
        )
        if ch.venue == INTERNAL:  # resized and repriced in the crossing book at once (priority as a venue's)
            self._venue_replaced(ch, o, VenueExecReport(venue=INTERNAL, cl_ord_id=ch.pending_cl_ord_id or "",
                                                        exec_id=f"X{self.ids()}", exec_type=ExecType.REPLACED,
                                                        order_qty=qty))

    def _finish_replace(self, o: ParentOrder) -> None:
        assert o.pending_qty is not None
        qty = max(o.pending_qty, o.cum_qty)  # C.3.b/c: amended to CumQty, never below it
        status = next_status(o.status, T.REPLACE_DONE, o.acked, qty, o.cum_qty)
        self._er(
            o, ExecType.REPLACED, status,
            cl_ord_id=o.pending_cl_ord_id, orig_cl_ord_id=o.cl_ord_id,
            order_qty=qty, price=o.pending_price, pending=None,
        )
        self._fit_children(o)

    def _fit_children(self, o: ParentOrder) -> None:
        """Make the working children add up to the parent's leaves: route a shortfall, shrink an excess.

        An excess appears when a fill is busted while a replace is in flight, so the
        venue resized the child against a CumQty that no longer holds.
        """
        working = self._working_children(o)
        gap = leaves_qty(o.status, o.order_qty, o.cum_qty) - sum(ch.qty - ch.cum_qty for ch in working)
        if gap > 0:
            self._route(o, gap)
            return
        for ch in working:
            if gap == 0:
                break
            if allowed(ch.status, T.REPLACE_REQUEST):
                cut = min(-gap, ch.qty - ch.cum_qty)
                self._replace_child(o, ch, ch.qty - cut, ch.price)
                gap += cut

    # ------------------------------------------------------------------ venue reports
    def _venue_child(self, venue: str, cl_ord_id: str, orig: str | None, what: str) -> ChildOrder | None:
        if venue == INTERNAL:  # only the engine itself trades in the crossing book
            self._anomaly("unknown_child", f"{what} claiming to come from the internal crossing book")
            return None
        ch = self.state.find_child(venue, cl_ord_id)
        if ch is None and orig:
            ch = self.state.find_child(venue, orig)
        if ch is None:
            self._anomaly("unknown_child", f"{what} from {venue} for unknown ClOrdID {cl_ord_id}")
        return ch

    def _venue_report(self, r: VenueExecReport) -> None:
        ch = self._venue_child(r.venue, r.cl_ord_id, r.orig_cl_ord_id, f"ExecType {r.exec_type.name}")
        if ch is None:
            return
        et = r.exec_type
        if r.exec_id in ch.venue_fills or (r.poss_dup and et not in _FILLS and (
                ch.status in TERMINAL or (et is ExecType.NEW and ch.acked))):
            self.duplicate_venue_execs += 1  # each venue ExecID applies once; a resent report that is past, too
            return
        o = self.state.orders[ch.order_id]
        if et is ExecType.TRADE:
            self._venue_fill(ch, o, r)
        elif et is ExecType.TRADE_CANCEL or et is ExecType.TRADE_CORRECT:
            self._venue_bust(ch, o, r)
        elif et is ExecType.NEW:
            self._venue_ack(ch, o)
        elif et is ExecType.CANCELED:
            self._venue_canceled(ch, o, r.text)
        elif et is ExecType.REPLACED:
            self._venue_replaced(ch, o, r)
        elif et is ExecType.REJECTED:
            self._venue_rejected(ch, o, r.cl_ord_id, r.text)
        elif et is ExecType.ORDER_STATUS and r.cum_qty is not None:
            self._reconcile(ch, o, r)
        elif et is ExecType.DONE_FOR_DAY or et is ExecType.EXPIRED:
            self._venue_done(ch, o, T.DONE_FOR_DAY if et is ExecType.DONE_FOR_DAY else T.EXPIRE, et)
        elif et is ExecType.RESTATED:  # not applied yet: the child keeps its terms, an operator looks
            self._anomaly("venue_restated", f"{r.venue} restated {ch.cl_ord_id} (order {o.order_id}): "
                                            f"OrderQty {r.order_qty}, {r.text or 'no reason given'}; not applied",
                          alert=True)
        # PendingNew/PendingCancel/PendingReplace acks are informational

    def _venue_ack(self, ch: ChildOrder, o: ParentOrder) -> None:
        child_status = next_status(ch.status, T.ACK, True, ch.qty, ch.cum_qty)
        parent_status = None if o.acked else next_status(o.status, T.ACK, True, o.order_qty, o.cum_qty)
        self._child_update(ch, child_status)
        if parent_status is not None:
            self._er(o, ExecType.NEW, parent_status)

    def _venue_fill(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        q, px = r.last_qty, r.last_px
        if q <= 0 or px <= 0 or px > MAX_PRICE or q * px > MAX_NOTIONAL:
            self._anomaly("bad_fill", f"fill {r.exec_id} from {r.venue}: LastQty {q} LastPx {price_str(px)} (a fill "
                                      f"is positive, at most {price_str(MAX_PRICE)} and {price_str(MAX_NOTIONAL)} in "
                                      f"value)", alert=True)
            return
        child_cum, cum = ch.cum_qty + q, o.cum_qty + q
        if child_cum > ch.qty or cum > o.order_qty:
            self._anomaly("overfill", f"fill {r.exec_id} from {r.venue} of {q} exceeds order {o.order_id}")
            return
        child_status = next_status(ch.status, T.FILL, True, ch.qty, child_cum)
        status = next_status(o.status, T.FILL, True, o.order_qty, cum)
        fill_id = self.ids()
        self._child_update(ch, child_status, cum_qty=child_cum, venue_exec_id=r.exec_id, fill_exec_id=fill_id)
        self._er(
            o, ExecType.TRADE, status, exec_id=fill_id, cum_qty=cum,
            cum_value=o.cum_value + q * px, last_qty=q, last_px=px,
        )

    def _venue_bust(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        ref = ch.venue_fills.get(r.exec_ref_id or "")
        fill = None if ref is None else o.fills.get(ref)
        if fill is None or ref is None:
            self._anomaly("unknown_exec_ref", f"{r.exec_type.name} {r.exec_id} refers to unknown ExecID {r.exec_ref_id}")
            return
        old_q, old_px = fill
        new_q, new_px = (0, 0) if r.exec_type is ExecType.TRADE_CANCEL else (r.last_qty, r.last_px)
        if r.exec_type is ExecType.TRADE_CORRECT and (new_q <= 0 or new_px <= 0 or new_px > MAX_PRICE
                                                      or new_q * new_px > MAX_NOTIONAL):
            self._anomaly("bad_fill", f"correction {r.exec_id}: LastQty {new_q} LastPx {price_str(new_px)}",
                          alert=True)
            return
        dq = new_q - old_q
        child_cum, cum = ch.cum_qty + dq, o.cum_qty + dq
        if child_cum > ch.qty or cum > o.order_qty:
            self._anomaly("overfill", f"correction {r.exec_id} would overfill order {o.order_id}")
            return
        child_status = next_status(ch.status, T.BUST, ch.acked, ch.qty, child_cum)
        status = next_status(o.status, T.BUST, o.acked, o.order_qty, cum)
        fill_id = self.ids()
        self._child_update(ch, child_status, cum_qty=child_cum, venue_exec_id=r.exec_id, fill_exec_id=fill_id)
        self._er(
            o, r.exec_type, status, exec_id=fill_id, cum_qty=cum,
            cum_value=o.cum_value + new_q * new_px - old_q * old_px,
            last_qty=new_q, last_px=new_px, exec_ref_id=ref,
        )

    def _venue_canceled(self, ch: ChildOrder, o: ParentOrder, text: str) -> None:
        requested = ch.status is S.PENDING_CANCEL
        child_status = next_status(ch.status, T.CANCEL_DONE if requested else T.UNSOLICITED_CANCEL, ch.acked, ch.qty, ch.cum_qty)
        self._child_update(ch, child_status, cl_ord_id=ch.pending_cl_ord_id if requested else None)
        if requested and o.status is S.PENDING_REPLACE:
            self._split_replace_settled(o)
        else:
            self._after_child_done(o, text)

    def _split_replace_settled(self, o: ParentOrder) -> None:
        """A split order's replace cancels its children. Once none is pending cancel: all done,
        the replace completes and the new terms are routed; a child its venue would not cancel
        keeps the old terms for the whole order (replace rejected, the rest routed again)."""
        working = self._working_children(o)
        if any(ch.status is S.PENDING_CANCEL for ch in working):
            return
        if not working:
            self._finish_replace(o)
            return
        venues = ", ".join(sorted({ch.venue for ch in working}))
        self._reject_pending(o, Reason.VENUE_REJECT, f"{venues} would not cancel its part of the order")
        self._fit_children(o)

    def _after_child_done(self, o: ParentOrder, text: str) -> None:
        """A child stopped working: finish the parent's cancel, or cancel its remainder."""
        if self._working_children(o):
            return
        if o.status is S.PENDING_CANCEL:
            self._finish_cancel(o, text)
            return
        if o.status in TERMINAL or leaves_qty(o.status, o.order_qty, o.cum_qty) == 0:
            return
        if o.status is S.PENDING_REPLACE:
            self._reject_pending(o, Reason.TOO_LATE, "order canceled by the venue")
        status = next_status(o.status, T.UNSOLICITED_CANCEL, o.acked, o.order_qty, o.cum_qty)
        self._er(o, ExecType.CANCELED, status, text=text)  # E.1.b; I.1.a FOK, I.1.b IOC remainder

    def _reject_pending(self, o: ParentOrder, reason: Reason, text: str) -> None:
        """Answer the parent's pending cancel/replace with a reject and resume its working status."""
        replace = o.status is S.PENDING_REPLACE
        trigger = T.REPLACE_REJECT if replace else T.CANCEL_REJECT
        status = next_status(o.status, trigger, o.acked, o.order_qty, o.cum_qty)
        assert o.pending_cl_ord_id is not None
        self._cxl_reject(
            o.session, o.pending_cl_ord_id, o.cl_ord_id, o, reason, text, replace,
            status=status, clears_pending=True,
        )

    def _venue_replaced(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        if ch.pending_qty is None:
            self._anomaly("unexpected_replace", f"Replaced from {r.venue} for {ch.cl_ord_id} with no replace pending")
            return
        qty = max(r.order_qty if r.order_qty is not None else ch.pending_qty, ch.cum_qty)
        child_status = next_status(ch.status, T.REPLACE_DONE, ch.acked, qty, ch.cum_qty)
        self._child_update(ch, child_status, cl_ord_id=ch.pending_cl_ord_id, qty=qty, price=ch.pending_price)
        if o.status is S.PENDING_REPLACE:
            self._finish_replace(o)

    def _venue_rejected(self, ch: ChildOrder, o: ParentOrder, cl_ord_id: str, text: str) -> None:
        if cl_ord_id == ch.pending_cl_ord_id:  # the venue refused our cancel or replace
            self._child_request_refused(ch, o, text)
            return
        child_status = next_status(ch.status, T.REJECT, ch.acked, ch.qty, ch.cum_qty)
        if self._reroute(ch, o, child_status):
            return
        pending = o.status in PENDING
        others = [w for w in self._working_children(o) if w is not ch]
        if not others and o.cum_qty == 0 and allowed(o.status, T.REJECT):
            parent_status: OrdStatus | None = next_status(o.status, T.REJECT, o.acked, o.order_qty, 0)
        else:
            parent_status = None
        self._child_update(ch, child_status)
        if parent_status is None:
            self._after_child_done(o, text)
            return
        pending_id = o.pending_cl_ord_id
        self._er(
            o, ExecType.REJECTED, parent_status, pending=None,
            reject_reason=Reason.VENUE_REJECT.ord_rej_reason, text=text or Reason.VENUE_REJECT.text,
        )
        if pending and pending_id is not None:  # the trader's cancel is answered too
            self._cxl_reject(o.session, pending_id, o.cl_ord_id, o, Reason.TOO_LATE, "order rejected by venue", False)

    def _reroute(self, ch: ChildOrder, o: ParentOrder, child_status: OrdStatus) -> bool:
        """A policy-routed child refused by its venue: send its quantity to the venues that have
        not refused this order, while one is up. False when there is none to try."""
        if not self.ref.reroute_on_reject or o.venue not in POLICIES or o.status in PENDING or o.status in TERMINAL:
            return False
        refused = frozenset([ch.venue] + [c.venue for cid in o.children
                                          if (c := self.state.children[cid]).status is S.REJECTED])
        if all(v in refused or v in self.venues_down for v in self.ref.venues):
            return False
        self._child_update(ch, child_status)
        self._route(o, ch.qty - ch.cum_qty, avoid=refused)
        return True

    def _venue_cancel_reject(self, r: VenueCancelReject) -> None:
        ch = self._venue_child(r.venue, r.cl_ord_id, r.orig_cl_ord_id, "OrderCancelReject")
        if ch is not None:
            self._child_request_refused(ch, self.state.orders[ch.order_id], r.text)

    def _venue_reject(self, r: VenueReject) -> None:
        ch = self._venue_child(r.venue, r.cl_ord_id, None, "reject")
        if ch is not None:
            self._venue_rejected(ch, self.state.orders[ch.order_id], r.cl_ord_id, r.text)

    def _child_request_refused(self, ch: ChildOrder, o: ParentOrder, text: str) -> None:
        if ch.status is S.PENDING_CANCEL:
            trigger = T.CANCEL_REJECT
        elif ch.status is S.PENDING_REPLACE:
            trigger = T.REPLACE_REJECT
        else:
            self._anomaly("unexpected_cancel_reject", f"cancel reject for child {ch.cl_ord_id} in {ch.status.name}")
            return
        child_status = next_status(ch.status, trigger, ch.acked, ch.qty, ch.cum_qty)
        self._child_update(ch, child_status)
        if trigger is T.CANCEL_REJECT and o.status is S.PENDING_REPLACE:
            self._split_replace_settled(o)
        elif o.status in PENDING:
            done = o.cum_qty >= o.order_qty
            self._reject_pending(o, Reason.TOO_LATE if done else Reason.VENUE_REJECT, text or "refused by venue")

    def _venue_done(self, ch: ChildOrder, o: ParentOrder, trigger: Trigger, et: ExecType) -> None:
        child_status = next_status(ch.status, trigger, ch.acked, ch.qty, ch.cum_qty)
        self._child_update(ch, child_status)
        if not self._working_children(o) and allowed(o.status, trigger):
            self._er(o, et, next_status(o.status, trigger, o.acked, o.order_qty, o.cum_qty), pending=None)

    # ------------------------------------------------------------------ market data and time
    def _market_data(self, m: MarketData) -> None:
        quotes = self.quotes.setdefault(m.symbol, {})
        quotes[m.venue] = m
        bid = max([q.bid for q in quotes.values() if q.bid], default=None)
        ask = min([q.ask for q in quotes.values() if q.ask], default=None)
        if self.bbo.get(m.symbol) != (bid, ask):  # journaled on change only: the prices TCA needs
            self.bbo[m.symbol] = (bid, ask)
            self._emit(BestPrice(ts=self._now, symbol=m.symbol, bid=bid, ask=ask))
        ref = (m.bid + m.ask) // 2 if m.bid and m.ask else m.last
        if ref:
            self.compliance.set_reference(m.symbol, ref, self._now)

    def _timer(self, t: Timer) -> None:
        """Expire GTD orders past their time; at end of day, day orders are done for day;
        children their venue left unanswered are in doubt; evaluate the post-trade rules of
        the whole portfolio at current prices."""
        self._post_trade()
        if self.state.awaiting:
            self._timeouts()
        for oid in sorted(self.state.gtd):
            o = self.state.orders[oid]
            if o.status in TERMINAL:
                self.state.gtd.discard(oid)
            elif o.expire_time is not None and o.expire_time <= self._now:
                self._end(o, T.EXPIRE, ExecType.EXPIRED)
        if t.end_of_day:
            for o in list(self.state.orders.values()):
                if o.tif is TimeInForce.DAY and o.status not in TERMINAL:
                    self._end(o, T.DONE_FOR_DAY, ExecType.DONE_FOR_DAY)

    def _end(self, o: ParentOrder, trigger: Trigger, et: ExecType) -> None:
        """End one order's day; an order that cannot end is reported, the sweep goes on."""
        if not allowed(o.status, trigger):
            self._anomaly("illegal_transition", f"Timer: {trigger.value} not allowed for {o.order_id} in {o.status.name}")
            return
        self._er(o, et, next_status(o.status, trigger, o.acked, o.order_qty, o.cum_qty), pending=None)
        self._cancel_children(o)
