"""Venue reports about child orders: acknowledgements, fills, busts and corrections,
cancels, replaces, rejects, restatements (E), Stopped (L), the end of a venue's day; each
applied to the child and carried to its parent."""
from __future__ import annotations

from oms.fixed import MAX_NOTIONAL, MAX_PRICE, price_str
from oms.model import ExecType, OrdStatus, RestatementReason, VenueCancelReject, VenueExecReport, VenueReject
from oms.reasons import Reason
from oms.router import INTERNAL
from oms.state import ChildOrder, ParentOrder
from oms.states import PENDING, TERMINAL, Trigger, allowed, leaves_qty, next_status
from oms.engine.core import GT, KEEP, Core, S, T

_FILLS = frozenset({ExecType.TRADE, ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT})


class VenueReports(Core):
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
                et is ExecType.ORDER_STATUS or ch.status in TERMINAL or (et is ExecType.NEW and ch.acked))):
            # each venue ExecID applies once; a resent report that is past, too, and a resent status
            # answer is stale (the venue logon that resent it asks afresh)
            self.duplicate_venue_execs += 1
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
        elif et is ExecType.RESTATED:
            self._venue_restated(ch, o, r)
        elif et is ExecType.STOPPED:
            self._venue_stopped(ch, o, r)

    def _venue_restated(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        """The venue changed the child's terms on its own (E.1.c/d): a quantity reduced
        (never below what is filled: amended to CumQty) or raised, a price changed. The
        parent's quantity moves by as much, its price follows its only child, and the trader
        gets Restated with the venue's reason."""
        qty = max(ch.qty if r.order_qty is None else r.order_qty, ch.cum_qty)
        price = ch.price if r.price is None else r.price
        if qty == ch.qty and price == ch.price:
            self._child_update(ch, next_status(ch.status, T.RESTATE, True, qty, ch.cum_qty), venue_exec_id=r.exec_id)
            return  # restated as it was: the venue has it, nothing for the trader
        order_qty = max(o.order_qty + qty - ch.qty, o.cum_qty)
        reprice = price != ch.price and len(o.children) == 1
        reason = r.restatement_reason
        if reason is None and qty < ch.qty:
            reason = RestatementReason.PARTIAL_DECLINE
        self._child_update(ch, next_status(ch.status, T.RESTATE, True, qty, ch.cum_qty), qty=qty, price=price,
                           venue_exec_id=r.exec_id)
        self._er(o, ExecType.RESTATED, next_status(o.status, T.RESTATE, o.acked, order_qty, o.cum_qty),
                 order_qty=order_qty, price=price if reprice else KEEP, restatement_reason=reason,
                 text=r.text or f"restated by {ch.venue}")

    def _venue_stopped(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        """The venue guarantees a price for the child (L.1.a): Stopped, with the guaranteed
        LastQty and LastPx (not a trade: CumQty does not move). Fills follow as trades."""
        self._child_update(ch, next_status(ch.status, T.STOP, True, ch.qty, ch.cum_qty), venue_exec_id=r.exec_id)
        self._er(o, ExecType.STOPPED, next_status(o.status, T.STOP, True, o.order_qty, o.cum_qty),
                 last_qty=r.last_qty, last_px=r.last_px, text=r.text)

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
        if o.tif in GT and o.status is not S.PENDING_REPLACE:
            if o.status is S.PENDING_CANCEL:
                self._after_child_done(o, "")
            return  # carried: its leaves go out again at the next start of day
        if not self._working_children(o) and allowed(o.status, trigger):
            self._er(o, et, next_status(o.status, trigger, o.acked, o.order_qty, o.cum_qty), pending=None)
