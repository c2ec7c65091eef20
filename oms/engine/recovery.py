"""Children in doubt: venues going down and up, status requests and the reconciliation
of their answers, timeouts, venue notices the OMS cannot apply as order events."""
from __future__ import annotations

from oms.model import (
    ChildCancelSent,
    ChildInDoubt,
    ChildOrderSent,
    ChildReplaceSent,
    ChildStatusRequested,
    ExecType,
    OrdStatus,
    VenueExecReport,
    VenueNotice,
    VenueStatus,
)
from oms.state import ChildOrder, ParentOrder
from oms.states import TERMINAL, allowed
from oms.engine.core import Core, S, T

_VENUE_DONE = frozenset({OrdStatus.CANCELED, OrdStatus.EXPIRED, OrdStatus.REJECTED, OrdStatus.DONE_FOR_DAY})
_AT_VENUE = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED, OrdStatus.PENDING_CANCEL,
                       OrdStatus.PENDING_REPLACE})


class Recovery(Core):
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

    def _reconcile(self, ch: ChildOrder, o: ParentOrder, r: VenueExecReport) -> None:
        """A venue's status of a child: acknowledge what it has, send again what never reached
        it, book the fills we missed, end it if the venue has."""
        if r.ord_status is S.REJECTED and not ch.acked:  # the venue never had it (or refused it unseen)
            if ch.resent:  # answers a request made before the resend reached it: wait for the resend's answer
                return
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
