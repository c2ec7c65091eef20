"""Where an order's quantity goes: a pure function of the order, the latest quote of each
venue and which venues are down.

Policies (ExDestination, tag 100, names a venue or a policy; else the configured default):
- a venue name: direct, everything there;
- BEST: the venue quoting the best price on the far side (the ask for a buy), ties to the
  larger size, then to the default venue;
- SWEEP: split across venues by displayed size at their touch, best price first, taking
  only venues whose price the limit accepts; what the displayed sizes do not cover goes
  to the best venue.
Venues that are down are avoided while another one is up; with no quote at all the
order goes to the default venue.

With internal crossing on (`internal_cross`), the engine first crosses BEST and SWEEP
orders against resting CROSS orders of other accounts (oms.crossing); a CROSS order
rests in the OMS as a child at the INTERNAL venue and never goes out.
"""
from __future__ import annotations

from collections.abc import Mapping

from oms.model import MarketData, Side

BEST, SWEEP = "BEST", "SWEEP"
POLICIES = (BEST, SWEEP)
CROSS = "CROSS"  # ExDestination: rest in the internal crossing book only
INTERNAL = "INTERNAL"  # the venue of the children that cross inside the OMS


def _far(q: MarketData, side: Side) -> tuple[int | None, int]:
    """The price and size an order on `side` would take."""
    return (q.ask, q.ask_size) if side is Side.BUY else (q.bid, q.bid_size)


def plan(target: str, side: Side, qty: int, limit: int | None, quotes: Mapping[str, MarketData],
         venues: tuple[str, ...], down: set[str], default: str) -> list[tuple[str, int]]:
    """[(venue, qty)] adding up to qty."""
    if target not in POLICIES:
        return [(target, qty)]
    live = [v for v in venues if v not in down] or list(venues)
    buy = side is Side.BUY
    priced = []
    for v in live:
        q = quotes.get(v)
        if q is None:
            continue
        px, size = _far(q, side)
        if px:
            priced.append((px if buy else -px, -size, v, px, size))
    if not priced:
        fallback = default if default in live else live[0]
        return [(fallback, qty)]
    priced.sort()
    best = priced[0][2]
    if target == BEST:
        return [(best, qty)]
    legs: dict[str, int] = {}
    left = qty
    for _key, _size, v, px, size in priced:
        if left == 0:
            break
        if limit is not None and (px > limit if buy else px < limit):
            break
        take = min(size, left)
        if take > 0:
            legs[v] = legs.get(v, 0) + take
            left -= take
    if left:
        legs[best] = legs.get(best, 0) + left
    return [(v, legs[v]) for v in sorted(legs, key=lambda v: [p[2] for p in priced].index(v))]
