"""The engine's core: the one entry `handle(command) -> events`, all of them or none,
and what every handler uses to emit events (trader reports, child updates, anomalies).

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

from oms.calendar import Calendar
from oms.model import (
    Account,
    Allocate,
    AllocationRejected,
    Anomaly,
    CancelRejected,
    CancelRequest,
    ChildUpdated,
    Command,
    ComplianceAlert,
    Event,
    ExecType,
    ExecutionReport,
    Instrument,
    MarketData,
    NewOrder,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    TimeInForce,
)
from oms.reasons import Reason
from oms.snapshot import thaw
from oms.state import ChildOrder, OmsState, ParentOrder
from oms.states import TERMINAL, IllegalTransition, Trigger, leaves_qty
from risk.compliance import Compliance
from risk.config import RiskConfig

log = logging.getLogger("oms.engine")

S = OrdStatus
T = Trigger
PRICED = frozenset({OrdType.LIMIT, OrdType.STOP_LIMIT})
GT = frozenset({TimeInForce.GTC, TimeInForce.GTD})  # orders that live past today
KEEP: Any = object()  # an `_er`/`_child_update` argument left as the order has it


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
    calendar: Calendar | None = None  # None: the day starts and ends by operator command only
    halt_policy: str = "hold"  # a new order in a halted symbol: "hold" (acknowledged, routed on resume) or "reject"


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


DEFAULT_POLICY = VenuePolicy()


class Core:
    """State and the emitting primitives; the handlers are in the modules beside it, one per
    concern, and `oms.engine.Engine` maps each command to its handler."""

    ref: ReferenceData
    clock: Callable[[], int]
    ids: Callable[[], str]
    risk_cfg: RiskConfig
    state: OmsState
    compliance: Compliance
    quotes: dict[str, dict[str, MarketData]]
    bbo: dict[str, tuple[int | None, int | None]]
    venues_down: set[str]
    instruments_closed: set[str]
    opening: dict[tuple[str, str], str]
    duplicate_venue_execs: int
    _handlers: dict[type, Callable[[Any], None]]
    _log: list[Event] | None
    _history: Callable[[], Iterable[Event]]
    _on_anomaly: Callable[[Anomaly], None] | None
    _min_timeout: int
    _out: list[Event]
    _now: int
    _base: bytes | None  # the snapshot the state started from
    base_seq: int  # the last journal record that snapshot holds (0: none)

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
        if self._base is not None:
            return thaw(self._base)  # our own file, checked against its journal
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
        orig_cl_ord_id: str | None = KEEP,
        order_qty: int | None = None,
        cum_qty: int | None = None,
        cum_value: int | None = None,
        price: int | None = KEEP,
        last_qty: int = 0,
        last_px: int = 0,
        exec_ref_id: str | None = None,
        reject_reason: int | None = None,
        text: str = "",
        pending: tuple[str | None, int | None, int | None] | None = KEEP,
        restatement_reason: int | None = None,
    ) -> None:
        """Emit one ExecutionReport for parent `o`; unspecified fields keep the order's values."""
        qty = o.order_qty if order_qty is None else order_qty
        cum = o.cum_qty if cum_qty is None else cum_qty
        if status is not S.PENDING_CANCEL and status is not S.PENDING_REPLACE or pending is None:
            pending = (None, None, None)
        elif pending is KEEP:
            pending = (o.pending_cl_ord_id, o.pending_qty, o.pending_price)
        # positional, in field order (tests/test_model.py holds it): three times faster than keywords
        self._emit(ExecutionReport(
            self._now, o.order_id, exec_id or self.ids(), exec_type, status, o.session, o.account, o.symbol, o.side,
            cl_ord_id or o.cl_ord_id, o.orig_cl_ord_id if orig_cl_ord_id is KEEP else orig_cl_ord_id, qty, cum,
            leaves_qty(status, qty, cum), o.cum_value if cum_value is None else cum_value, last_qty, last_px,
            o.price if price is KEEP else price, exec_ref_id, reject_reason, text, *pending, restatement_reason,
        ))

    def _child_update(
        self,
        ch: ChildOrder,
        status: OrdStatus,
        *,
        cl_ord_id: str | None = None,
        qty: int | None = None,
        cum_qty: int | None = None,
        price: int | None = KEEP,
        venue_exec_id: str | None = None,
        fill_exec_id: str | None = None,
    ) -> None:
        self._emit(ChildUpdated(  # positional, in field order (tests/test_model.py)
            self._now, ch.child_id, status, cl_ord_id or ch.cl_ord_id, ch.qty if qty is None else qty,
            ch.cum_qty if cum_qty is None else cum_qty, ch.price if price is KEEP else price, venue_exec_id,
            fill_exec_id,
        ))

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

    def _working_children(self, o: ParentOrder) -> list[ChildOrder]:
        return [ch for cid in o.children if (ch := self.state.children[cid]).status not in TERMINAL]

    def _policy(self, venue: str) -> VenuePolicy:
        return self.ref.venue_policies.get(venue, DEFAULT_POLICY)
