"""Corporate actions: a stock split (H.1.b). Positions, locates, reference and last prices
move with the `SplitApplied` event (compliance, positions); every open order of the
symbol and its children are restated in post-split shares and prices, and the trader gets
ExecType Restated with ExecRestatementReason 10 (corporate action)."""
from __future__ import annotations

from oms.model import ComplianceAlert, ExecType, RestatementReason, SplitApplied, StockSplit
from oms.states import TERMINAL, next_status
from oms.engine.core import Core, T


class CorporateActions(Core):
    def _stock_split(self, c: StockSplit) -> None:
        if not self._authorised(c):
            return
        inst = self.ref.instruments.get(c.symbol)
        live = [o for o in self.state.orders.values() if o.symbol == c.symbol and o.status not in TERMINAL]
        children = [self.state.children[cid] for o in live for cid in o.children]
        why = None
        if inst is None:
            why = f"unknown symbol {c.symbol!r}"
        elif type(c.new) is not int or type(c.old) is not int or not 1 <= c.new <= 1000 or not 1 <= c.old <= 1000 \
                or c.new == c.old:
            why = "a split is new and old shares, whole numbers from 1 to 1000, not equal"
        else:
            odd = [x for x in [*(q for o in live for q in (o.order_qty, o.cum_qty)),
                               *(q for ch in children for q in (ch.qty, ch.cum_qty))]
                   if x * c.new % c.old or x * c.new // c.old % inst.lot_size]
            if odd:
                why = f"an open order's quantity {odd[0]} does not split into whole lots"
        if why is not None:
            self._emit(ComplianceAlert(ts=self._now, control="corporate_action", level="hard",
                                       text=f"StockSplit refused: {why}", symbol=c.symbol))
            return
        self._emit(SplitApplied(ts=self._now, symbol=c.symbol, new=c.new, old=c.old, user=c.user, reason=c.reason))

        def qty(x: int) -> int:
            return x * c.new // c.old

        tick = inst.tick_size

        def px(p: int | None) -> int | None:  # p x old / new to the nearest tick (halves up)
            return None if p is None else max(tick, (2 * p * c.old + c.new * tick) // (2 * c.new * tick) * tick)
        for ch in children:
            if ch.status not in TERMINAL:
                self._child_update(ch, ch.status, qty=qty(ch.qty), cum_qty=qty(ch.cum_qty), price=px(ch.price))
        for o in live:
            cum = qty(o.cum_qty)
            self._er(o, ExecType.RESTATED, next_status(o.status, T.RESTATE, o.acked, qty(o.order_qty), cum),
                     order_qty=qty(o.order_qty), cum_qty=cum, price=px(o.price),
                     restatement_reason=RestatementReason.CORPORATE_ACTION,
                     text=f"split {c.new} for {c.old}")
