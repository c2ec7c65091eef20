"""Cancel and replace of a parent order, carried out on its children.

A cancel sends a cancel to every working child; the parent is Canceled once none works
(`_cancel_children` -> venue reports -> `_finish_cancel`). A replace resizes and reprices
the one working child (`_replace_child` -> Replaced -> `_finish_replace`), or, for an order
split across venues, cancels every child and, once none is pending cancel, completes
and routes the new terms afresh (`_split_replace_settled` -> `_finish_replace` ->
`_fit_children`); a child its venue will not cancel keeps the old terms for the whole
order (`_reject_pending`)."""
from __future__ import annotations

from oms.model import (
    CancelRequest,
    ChildCancelSent,
    ChildReplaceSent,
    ExecType,
    ReplaceRequest,
    VenueExecReport,
)
from oms.reasons import Reason
from oms.router import INTERNAL
from oms.state import ChildOrder, ParentOrder
from oms.states import PENDING, Trigger, allowed, leaves_qty, next_status
from oms.engine.core import Core, PRICED, S, T


class Amendments(Core):
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
        if o.ord_type not in PRICED:
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
