"""Trader commands: new orders (validated, checked, crossed, routed), status requests,
cancel-on-disconnect."""
from __future__ import annotations

from typing import Any

import msgspec

from oms.fixed import MAX_NOTIONAL, MAX_PRICE, MAX_QTY, price_str
from oms.model import (
    ComplianceAlert,
    ExecType,
    ExecutionReport,
    Instrument,
    NewOrder,
    OrdType,
    OrderAccepted,
    OrderRejected,
    SessionLost,
    StatusRequest,
    TimeInForce,
)
from oms.reasons import Reason
from oms.router import CROSS, POLICIES
from oms.state import ParentOrder
from oms.states import allowed, next_status
from oms.engine.core import Core, PRICED, S, T

_STOPPED = frozenset({OrdType.STOP, OrdType.STOP_LIMIT})
_CROSSABLE = frozenset({OrdType.LIMIT, OrdType.MARKET})  # stops wait for their trigger at the venue


class TraderCommands(Core):
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
        bad = ord_type in PRICED and self._check_price("Price (44)", price, inst, symbol)
        bad = bad or (ord_type in _STOPPED and self._check_price("StopPx (99)", stop_px, inst, symbol))
        if bad:
            return bad
        px = max(price if ord_type in PRICED else 0, stop_px if ord_type in _STOPPED else 0)
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
        if c.ord_type not in PRICED and c.price is not None:
            c = msgspec.structs.replace(c, price=None)  # a market or stop order carries no limit
        venue = c.ex_destination or self.ref.default_route or self.ref.default_venue
        wait = self._waiting(c.symbol, venue) if self.state.halts or self.ref.calendar else None
        if wait is not None and wait[2] == "reject":
            self._reject_new(c, wait[0], wait[1])
            return
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
        if wait is not None:
            self._hold(o, wait[1])  # neither crossed nor routed until trading resumes or the day starts
            return
        if self.ref.internal_cross and (venue in POLICIES or venue == CROSS) and c.ord_type in _CROSSABLE:
            left -= self._cross(o, c.qty)
        if left and venue == CROSS and (o.price is None or o.tif is TimeInForce.IOC or o.tif is TimeInForce.FOK):
            status = next_status(o.status, T.UNSOLICITED_CANCEL, o.acked, o.order_qty, o.cum_qty)
            self._er(o, ExecType.CANCELED, status, text="nothing more to cross internally")  # cannot rest
        elif left:
            self._route(o, left)

    def _reject_new(self, c: NewOrder, reason: Reason, text: str, existing: ParentOrder | None = None) -> None:
        snapshot = None
        if existing is not None:
            snapshot = self._status_event(existing)
        self._emit(
            OrderRejected(ts=self._now, exec_id=self.ids(), order=c, reason=reason.name, text=text, existing=snapshot)
        )

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

    def _session_lost(self, c: SessionLost) -> None:
        """Cancel-on-disconnect: every cancellable order of the session."""
        for o in list(self.state.orders.values()):
            if o.session == c.session and allowed(o.status, T.CANCEL_REQUEST):
                self._force_cancel(o, "cancel on disconnect")
