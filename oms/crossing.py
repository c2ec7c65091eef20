"""Internal crossing: an incoming order against the resting CROSS orders of other accounts.

The resting orders are children at the INTERNAL venue, indexed by the OMS state in time
priority, so the crossing book is derived from journaled events like everything else.
A cross is computed by the matching core (`oms.matching`) on a throwaway book: the
resting orders in time order, then the incoming order as IOC (FOK when it is FOK), so
price-time priority and the trade prices (the resting order's limit) are exactly the
venues'. No account crosses with itself.
"""
from __future__ import annotations

import numpy as np

from oms.matching import C_KIND, OP_COLUMNS, R_B, R_KIND, R_PX, R_QTY, ROW_FILL, Book
from oms.matching_codes import BUY, FOK, GTC, IOC, OP_ADD, OP_ADD_MARKET, SELL
from oms.model import Side, TimeInForce
from oms.state import ChildOrder, OmsState, ParentOrder
from oms.states import S


def resting(state: OmsState, o: ParentOrder) -> list[ChildOrder]:
    """Working INTERNAL children opposite `o`, of other accounts, in time priority."""
    buy = o.side is Side.BUY
    out = []
    for cid in state.internal.get(o.symbol, ()):
        ch = state.children[cid]
        p = state.orders[ch.order_id]
        if (ch.status is S.NEW or ch.status is S.PARTIALLY_FILLED) and (p.side is Side.BUY) != buy \
                and p.account != o.account:
            out.append(ch)
    return out


def cross(o: ParentOrder, qty: int, book: list[ChildOrder]) -> list[tuple[ChildOrder, int, int]]:
    """(resting child, price, quantity) of each trade `qty` of `o` makes against `book`."""
    if not book:
        return []
    ops = np.zeros((len(book) + 1, OP_COLUMNS), np.int64)
    resting_side = SELL if o.side is Side.BUY else BUY
    for k, ch in enumerate(book):
        ops[k] = (OP_ADD, k, resting_side, ch.price, ch.qty - ch.cum_qty, GTC, 0)
    market = o.price is None
    ops[-1] = (OP_ADD, len(book), BUY if o.side is Side.BUY else SELL, o.price or 0, qty,
               FOK if o.tif is TimeInForce.FOK else IOC, 0)
    if market:
        ops[-1, C_KIND] = OP_ADD_MARKET
    rows = Book(capacity=len(book) + 1).batch(ops).rows
    return [(book[int(r[R_B])], int(r[R_PX]), int(r[R_QTY])) for r in rows if r[R_KIND] == ROW_FILL]
