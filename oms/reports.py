"""What the trader sees: events turned into FIX ExecutionReports and OrderCancelRejects.

The FIX acceptor sends these; the scenario tests compare them with the order state
matrices. Only events that face a trader produce a report.
"""
from __future__ import annotations

from decimal import Decimal

import msgspec

from oms.fixed import avg_px
from oms.model import (
    CancelRejected,
    Event,
    ExecType,
    ExecutionReport,
    OrderAccepted,
    OrderRejected,
    OrdStatus,
    Side,
)
from oms.reasons import Reason


class TraderReport(msgspec.Struct, frozen=True):
    msg_type: str  # "8" ExecutionReport, "9" OrderCancelReject
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    order_id: str
    ord_status: OrdStatus
    symbol: str = ""
    side: Side = Side.BUY
    account: str = ""
    exec_id: str = ""
    exec_type: ExecType | None = None
    order_qty: int = 0
    cum_qty: int = 0
    leaves_qty: int = 0
    last_qty: int = 0
    last_px: int = 0
    avg_px: Decimal = Decimal(0)
    price: int | None = None
    exec_ref_id: str | None = None
    ord_rej_reason: int | None = None
    cxl_rej_reason: int | None = None
    cxl_rej_response_to: str | None = None  # "1" cancel, "2" replace
    text: str = ""
    ord_type: str | None = None  # a reject echoes the order's OrdType (40) and TimeInForce (59)
    tif: str | None = None
    restatement_reason: int | None = None  # ExecRestatementReason (378)


def trader_report(ev: Event) -> TraderReport | None:
    if type(ev) is ExecutionReport:
        return TraderReport(
            msg_type="8",
            session=ev.session,
            symbol=ev.symbol,
            side=ev.side,
            account=ev.account,
            cl_ord_id=ev.cl_ord_id,
            orig_cl_ord_id=ev.orig_cl_ord_id,
            order_id=ev.order_id,
            ord_status=ev.ord_status,
            exec_id=ev.exec_id,
            exec_type=ev.exec_type,
            order_qty=ev.order_qty,
            cum_qty=ev.cum_qty,
            leaves_qty=ev.leaves_qty,
            last_qty=ev.last_qty,
            last_px=ev.last_px,
            avg_px=avg_px(ev.cum_value, ev.cum_qty),
            price=ev.price,
            exec_ref_id=ev.exec_ref_id,
            ord_rej_reason=ev.reject_reason,
            text=ev.text,
            restatement_reason=ev.restatement_reason,
        )
    if type(ev) is OrderAccepted:
        o = ev.order
        return TraderReport(
            msg_type="8",
            session=o.session,
            symbol=o.symbol,
            side=o.side,
            account=o.account,
            cl_ord_id=o.cl_ord_id,
            orig_cl_ord_id=None,
            order_id=ev.order_id,
            ord_status=OrdStatus.PENDING_NEW,
            exec_id=ev.exec_id,
            exec_type=ExecType.PENDING_NEW,
            order_qty=o.qty,
            leaves_qty=o.qty,
            price=o.price,
        )
    if type(ev) is OrderRejected:
        o, x = ev.order, ev.existing
        reason = Reason[ev.reason]
        return TraderReport(  # F.1.a: a duplicate carries the existing order's status
            msg_type="8",
            session=o.session,
            symbol=o.symbol,
            side=o.side,
            account=o.account,
            cl_ord_id=o.cl_ord_id,
            orig_cl_ord_id=None,
            order_id="NONE" if x is None else x.order_id,
            ord_status=OrdStatus.REJECTED if x is None else x.ord_status,
            exec_id=ev.exec_id,
            exec_type=ExecType.REJECTED,
            order_qty=o.qty if x is None else x.order_qty,
            cum_qty=0 if x is None else x.cum_qty,
            leaves_qty=0 if x is None else x.leaves_qty,
            avg_px=Decimal(0) if x is None else avg_px(x.cum_value, x.cum_qty),
            price=o.price,
            ord_rej_reason=reason.ord_rej_reason,
            text=ev.text,
            ord_type=o.ord_type.value,
            tif=o.tif.value,
        )
    if type(ev) is CancelRejected:
        reason = Reason[ev.reason]
        return TraderReport(
            msg_type="9",
            session=ev.session,
            cl_ord_id=ev.cl_ord_id,
            orig_cl_ord_id=ev.orig_cl_ord_id,
            order_id=ev.order_id or "NONE",
            ord_status=ev.ord_status,
            cxl_rej_reason=reason.cxl_rej_reason,
            cxl_rej_response_to="2" if ev.replace else "1",
            text=ev.text,
        )
    return None


def trader_reports(events: list[Event]) -> list[TraderReport]:
    return [r for ev in events if (r := trader_report(ev)) is not None]
