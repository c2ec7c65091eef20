"""The trading day and the timer.

Start of day: a `DayStarted` event (compliance restarts its daily counters from it), then
every live GT order restated to its trader (ExecType Restated, ExecRestatementReason GT
renewal, H.1.a) and its leaves routed again where its venue ended its children
overnight. End of day: a `DayEnded` event, then DAY orders done for day (A.1.b) and GTD
orders whose date has come expired; GTC orders are carried with their LeavesQty (the
optional DoneForDay of H.1.a is not sent). Both come from the calendar on the timer or
from an operator; both are journaled, so a replay crosses days exactly.
"""
from __future__ import annotations

import datetime as dt

from oms.model import (
    ComplianceAlert,
    DayEnded,
    DayStarted,
    EndOfDay,
    ExecType,
    RestatementReason,
    StartOfDay,
    TimeInForce,
    Timer,
)
from oms.state import ParentOrder
from oms.states import PENDING, TERMINAL, Trigger, allowed, next_status
from oms.engine.core import GT, Core, T


class TradingDay(Core):
    def _timer(self, t: Timer) -> None:
        """Resume what the venues whose sessions opened did not halt again; expire GTD orders
        past their time; start and end the day by the calendar (or end it now:
        `end_of_day`), route what waited for its instrument's hours; children their
        venue left unanswered are in doubt; evaluate the post-trade rules of the whole
        portfolio at current prices."""
        self._post_trade()
        if self.opening:
            self._session_opened()
        if self.state.awaiting:
            self._timeouts()
        for oid in sorted(self.state.gtd):
            o = self.state.orders[oid]
            if o.status in TERMINAL:
                self.state.gtd.discard(oid)
            elif o.expire_time is not None and o.expire_time <= self._now:
                self._end(o, T.EXPIRE, ExecType.EXPIRED)
        if t.end_of_day:
            self._end_of_day("")
        cal = self.ref.calendar
        if cal is not None:
            due = cal.due(self._now, self.state.day, self.state.day_open)
            if due == "end":
                self._end_of_day("")
                due = cal.due(self._now, self.state.day, False)  # days passed while the OMS was down
            if due == "start":
                self._start_of_day(cal.date_of(self._now), "")
            if cal.instrument_hours:
                self._instrument_hours(cal)

    def _day_command(self, c: StartOfDay | EndOfDay) -> None:
        """An operator starts or ends the day now."""
        if not self._authorised(c):
            return
        st = self.state
        if isinstance(c, EndOfDay):
            if not st.day_open:
                return self._day_refused(c, "no trading day is open")
            return self._end_of_day(c.user)
        if st.day_open:
            return self._day_refused(c, f"the trading day {st.day} is open: end it first")
        date = c.date
        if date:
            try:
                dt.date.fromisoformat(date)
            except ValueError:
                return self._day_refused(c, f"date {date!r} is not YYYY-MM-DD")
            if date <= st.day:
                return self._day_refused(c, f"date {date} is not after the last trading day {st.day}")
        else:
            cal = self.ref.calendar
            date = cal.date_of(self._now) if cal else dt.datetime.fromtimestamp(self._now / 1e9, dt.UTC).date().isoformat()
            if date <= st.day:
                date = cal.next_date(st.day) if cal else (dt.date.fromisoformat(st.day) + dt.timedelta(days=1)).isoformat()
        self._start_of_day(date, c.user)

    def _day_refused(self, c: StartOfDay | EndOfDay, why: str) -> None:
        self._emit(ComplianceAlert(ts=self._now, control="trading_day", level="hard",
                                   text=f"{type(c).__name__} refused: {why}"))

    def _start_of_day(self, date: str, user: str) -> None:
        marks, _fresh = self.compliance.marks(self._now)
        self._emit(DayStarted(ts=self._now, date=date, user=user, marks=tuple(
            (s, int(marks[i])) for s, i in self.compliance.symbols.items() if marks[i] > 0)))
        for o in list(self.state.orders.values()):
            if o.status in TERMINAL:
                continue
            if o.tif in GT:
                status = next_status(o.status, T.RESTATE, o.acked, o.order_qty, o.cum_qty)
                self._er(o, ExecType.RESTATED, status, restatement_reason=RestatementReason.GT_RENEWAL,
                         text=f"GT renewal for {date}")
            if o.status not in PENDING:
                self._fit_children(o)  # leaves held overnight, or whose children their venue ended, go out

    def _end_of_day(self, user: str) -> None:
        self._emit(DayEnded(ts=self._now, date=self.state.day, user=user))
        cal = self.ref.calendar
        for o in list(self.state.orders.values()):
            if o.status in TERMINAL:
                continue
            if o.tif is TimeInForce.GTD:
                if o.expire_time is not None and cal is not None and cal.date_of(o.expire_time) <= self.state.day:
                    self._end(o, T.EXPIRE, ExecType.EXPIRED)
            elif o.tif is not TimeInForce.GTC:
                self._end(o, T.DONE_FOR_DAY, ExecType.DONE_FOR_DAY)

    def _end(self, o: ParentOrder, trigger: Trigger, et: ExecType) -> None:
        """End one order's day; an order that cannot end is reported, the sweep goes on."""
        if not allowed(o.status, trigger):
            self._anomaly("illegal_transition", f"Timer: {trigger.value} not allowed for {o.order_id} in {o.status.name}")
            return
        self._er(o, et, next_status(o.status, trigger, o.acked, o.order_qty, o.cum_qty), pending=None)
        self._cancel_children(o)
