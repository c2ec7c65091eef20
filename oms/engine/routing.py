"""Where an order's quantity goes: internal crossing first, then venues by policy
(oms.router), re-routing a venue's reject; the quotes the router reads."""
from __future__ import annotations

from oms.crossing import cross, resting
from oms.model import BestPrice, ChildOrderSent, ExecType, MarketData, OrdStatus, VenueExecReport
from oms.router import CROSS, INTERNAL, POLICIES, plan
from oms.state import ChildOrder, ParentOrder
from oms.states import PENDING, TERMINAL
from oms.engine.core import Core, S


class Routing(Core):
    def _route(self, o: ParentOrder, qty: int, avoid: frozenset[str] = frozenset()) -> None:
        """Children for `qty`: one at the order's venue, or where its policy sends them
        (oms.router); a CROSS order's rests in the internal crossing book, acknowledged at once."""
        wait = self._waiting(o.symbol, o.venue) if self.state.halts or self.ref.calendar else None
        if wait is not None:
            self._hold(o, wait[1])
            return
        if o.venue == CROSS:
            self._venue_ack(self._send_child(o, INTERNAL, qty), o)
            return
        down = self.venues_down | avoid if avoid else self.venues_down
        if self.state.halts.get(o.symbol):  # a policy order avoids the venues that halted its symbol
            down = down | self.state.halts[o.symbol]
        cal = self.ref.calendar
        if cal is not None and cal.venue_hours:  # a venue outside its hours is avoided like one that is down
            down = down | {v for v in cal.venue_hours if cal.venue_closed(v, self._now)}
        legs = plan(o.venue, o.side, qty, o.price, self.quotes.get(o.symbol, {}), self.ref.venues, down,
                    self.ref.default_venue)
        for venue, leg in legs:
            self._send_child(o, venue, leg)

    def _send_child(self, o: ParentOrder, venue: str, qty: int) -> ChildOrder:
        child_id = self.ids()
        self._emit(ChildOrderSent(ts=self._now, child_id=child_id, order_id=o.order_id, venue=venue,
                                  cl_ord_id=self.ids(), symbol=o.symbol, side=o.side, ord_type=o.ord_type, qty=qty,
                                  price=o.price, stop_px=o.stop_px, tif=o.tif))
        return self.state.children[child_id]

    def _cross(self, o: ParentOrder, qty: int) -> int:
        """Trade `qty` of a new order against the resting CROSS orders of other accounts
        (oms.crossing); each side gets its fills through an INTERNAL child. The quantity crossed."""
        trades = cross(o, qty, resting(self.state, o))
        if not trades:
            return 0
        taker = self._send_child(o, INTERNAL, sum(q for _ch, _px, q in trades))
        for maker, px, q in trades:
            for ch, parent in ((maker, self.state.orders[maker.order_id]), (taker, o)):
                self._venue_fill(ch, parent, VenueExecReport(venue=INTERNAL, cl_ord_id=ch.cl_ord_id,
                                                             exec_id=f"X{self.ids()}", exec_type=ExecType.TRADE,
                                                             last_qty=q, last_px=px))
        return taker.qty

    def _reroute(self, ch: ChildOrder, o: ParentOrder, child_status: OrdStatus) -> bool:
        """A policy-routed child refused by its venue: send its quantity to the venues that have
        not refused this order, while one is up. False when there is none to try."""
        if not self.ref.reroute_on_reject or o.venue not in POLICIES or o.status in PENDING or o.status in TERMINAL:
            return False
        refused = frozenset([ch.venue] + [c.venue for cid in o.children
                                          if (c := self.state.children[cid]).status is S.REJECTED])
        if all(v in refused or v in self.venues_down for v in self.ref.venues):
            return False
        self._child_update(ch, child_status)
        self._route(o, ch.qty - ch.cum_qty, avoid=refused)
        return True

    def _market_data(self, m: MarketData) -> None:
        quotes = self.quotes.setdefault(m.symbol, {})
        quotes[m.venue] = m
        bid = max([q.bid for q in quotes.values() if q.bid], default=None)
        ask = min([q.ask for q in quotes.values() if q.ask], default=None)
        if self.bbo.get(m.symbol) != (bid, ask):  # journaled on change only: the prices TCA needs
            self.bbo[m.symbol] = (bid, ask)
            self._emit(BestPrice(ts=self._now, symbol=m.symbol, bid=bid, ask=ask))
        ref = (m.bid + m.ask) // 2 if m.bid and m.ask else m.last
        if ref:
            self.compliance.set_reference(m.symbol, ref, self._now)
