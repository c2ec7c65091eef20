"""Block allocation: a block's executed shares booked to other accounts, and taken back."""
from __future__ import annotations

import msgspec

from oms import allocation
from oms.model import (
    Allocate,
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    CancelAllocation,
    ComplianceAlert,
)
from oms.reasons import Reason
from oms.engine.core import Core


class Allocations(Core):
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
