"""Time: the timer's sweeps (post-trade, timeouts, GTD expiry) and the end of the day."""
from __future__ import annotations

from oms.model import ExecType, TimeInForce, Timer
from oms.state import ParentOrder
from oms.states import TERMINAL, Trigger, allowed, next_status
from oms.engine.core import Core, T


class TradingDay(Core):
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
