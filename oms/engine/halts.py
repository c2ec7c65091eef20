"""Trading halts (K): a symbol halted at a venue (its status message) or everywhere (an
operator). While halted, new quantity is not routed: an order is held, acknowledged by the
OMS, or refused (`halt_policy = "reject"`); policy orders avoid the venues that halted
it. Working orders stay at their venues, which fill them after the halt (K.1.a) or cancel
them (K.1.b). When trading resumes, held quantity is routed. Outside the trading day, and
outside an instrument's own hours, the same holds by the calendar's `outside_hours`
("accept": routed at any hour); what an instrument's hours held is routed on the first
timer tick inside them."""
from __future__ import annotations

from oms.calendar import Calendar, hours_text
from oms.model import ComplianceAlert, ExecType, HaltChanged, TradingHalt
from oms.reasons import Reason
from oms.router import POLICIES
from oms.state import ParentOrder
from oms.states import PENDING, TERMINAL, next_status
from oms.engine.core import Core, T


class Halts(Core):
    def _trading_halt(self, c: TradingHalt) -> None:
        if c.venue:
            if c.venue not in self.ref.venues or c.symbol not in self.ref.instruments:
                self._anomaly("unknown_halt", f"{c.venue or 'operator'}: halt status for {c.symbol} not applied: "
                                              "unknown venue or symbol", alert=True)
                return
        elif not self._authorised(c):
            return
        elif c.symbol not in self.ref.instruments:
            self._emit(ComplianceAlert(ts=self._now, control="trading_halt", level="hard",
                                       text=f"TradingHalt refused: unknown symbol {c.symbol!r}"))
            return
        if c.venue and c.session and not c.halted:
            # a venue's session opens; right after, it repeats the halts that outlast the open, one
            # symbol at a time: nothing held goes there before the next tick has heard them
            if c.venue in self.state.halts.get(c.symbol, ()):
                self.opening[c.symbol, c.venue] = c.reason
            return
        if c.venue and c.halted:
            self.opening.pop((c.symbol, c.venue), None)
        if (c.venue in self.state.halts.get(c.symbol, ())) == c.halted:
            return  # a venue repeats its status: nothing changes
        self._emit(HaltChanged(ts=self._now, symbol=c.symbol, venue=c.venue, halted=c.halted, user=c.user,
                               reason=c.reason))
        if not c.halted:
            self._release({c.symbol})

    def _session_opened(self) -> None:
        """On the timer: resume what the venues whose sessions opened since the last tick did
        not halt again meanwhile."""
        opening, self.opening = sorted(self.opening.items()), {}
        for (symbol, venue), reason in opening:
            self._trading_halt(TradingHalt(symbol=symbol, halted=False, venue=venue, reason=reason))

    def _release(self, symbols: set[str]) -> None:
        """What was held of these symbols goes out now (what must still wait stays held)."""
        for o in list(self.state.orders.values()):
            if o.symbol in symbols and o.status not in TERMINAL and o.status not in PENDING:
                self._fit_children(o)

    def _instrument_hours(self, cal: Calendar) -> None:
        """On the timer: release the orders of the instruments whose hours have started since
        the last tick (all that are open, on the first tick after a start: releasing twice
        changes nothing)."""
        closed = {s for s in cal.instrument_hours if cal.instrument_closed(s, self._now)}
        opened, self.instruments_closed = self.instruments_closed - closed, closed
        if opened:
            self._release(opened)

    def _halted(self, symbol: str, venue: str) -> bool:
        """Whether new quantity of `symbol` for `venue` (or a policy) must wait: halted where it would go."""
        venues = self.state.halts.get(symbol)
        if not venues:
            return False
        if "" in venues:
            return True
        return all(v in venues for v in self.ref.venues) if venue in POLICIES else venue in venues

    def _waiting(self, symbol: str, venue: str) -> tuple[Reason, str, str] | None:
        """Why new quantity must wait, and the policy (hold or reject): a halt where it
        would go, or a trading day that is not open; None when it need not."""
        if self.state.halts and self._halted(symbol, venue):
            return Reason.HALTED, f"trading in {symbol} is halted", self.ref.halt_policy
        cal = self.ref.calendar
        if cal is not None and cal.outside_hours != "accept":
            if not self.state.day_open:
                return Reason.DAY_CLOSED, "the trading day is closed", cal.outside_hours
            if cal.instrument_closed(symbol, self._now):
                return (Reason.OUTSIDE_HOURS, f"outside {symbol}'s trading hours "
                                              f"{hours_text(cal.instrument_hours[symbol])} {cal.time_zone}",
                        cal.outside_hours)
        return None

    def _hold(self, o: ParentOrder, why: str) -> None:
        """Keep the order's quantity at the OMS while it must wait; the OMS acknowledges it."""
        if not o.acked:
            self._er(o, ExecType.NEW, next_status(o.status, T.ACK, True, o.order_qty, o.cum_qty),
                     text=f"held: {why}")
