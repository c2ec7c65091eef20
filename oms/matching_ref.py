"""Plain-Python reference of the matching core: the same semantics as `oms.matching`,
written for clarity. Property tests prove the two produce identical fills and books.

Semantics (shared by both):
- price-time priority; a taker trades at the maker's price;
- market orders and IOC never rest, FOK trades its whole quantity or nothing;
- self-trade prevention applies when taker and maker share a non-zero owner;
  FOK counts only the quantity it could really trade (a self order that would stop
  it ends the count, one that would be canceled is skipped);
- replace: same price and quantity not up keeps priority, anything else re-enters.
"""
from __future__ import annotations

from collections import OrderedDict

from oms.matching_codes import (
    BUY, DAY, DONE, ERR_BAD_ID, ERR_DUPLICATE, ERR_PRICE, ERR_QTY, ERR_SIDE, ERR_TIF, ERR_UNKNOWN, FOK, GTC,
    IOC, RESTED, SELL, STP_CANCEL_BOTH, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_DECREMENT, STP_NONE, BookError,
    Resting, error_text,
)


class _Order:
    __slots__ = ("oid", "side", "price", "qty", "owner", "tif", "seq")

    def __init__(self, oid: int, side: int, price: int, qty: int, owner: int, tif: int, seq: int) -> None:
        self.oid, self.side, self.price, self.qty, self.owner, self.tif, self.seq = oid, side, price, qty, owner, tif, seq


class RefResult:
    __slots__ = ("status", "fills", "stp_cancels")

    def __init__(self, status: int, fills: list, stp_cancels: list) -> None:
        self.status, self.fills, self.stp_cancels = status, fills, stp_cancels

    @property
    def rested(self) -> bool:
        return self.status == RESTED


class RefBook:
    def __init__(self, stp_mode: int = STP_NONE) -> None:
        self.stp_mode = stp_mode
        self.sides: tuple[dict[int, OrderedDict[int, _Order]], ...] = ({}, {})  # price -> oid -> order
        self.orders: dict[int, _Order] = {}
        self.seq = 0

    def __len__(self) -> int:
        return len(self.orders)

    # ------------------------------------------------------------------ operations
    def add(self, oid: int, side: int, price: int, qty: int, tif: int = DAY, owner: int = 0,
            market: bool = False) -> RefResult:
        code = self._check_add(oid, side, price, qty, tif, market)
        if code:
            raise BookError(code, error_text(code, oid))
        return self._enter(oid, side, price, qty, tif, owner, market)

    def cancel(self, oid: int) -> int:
        o = self.orders.get(oid)
        if o is None:
            return 0
        self._remove(o)
        return o.qty

    def replace(self, oid: int, new_qty: int, new_price: int) -> RefResult:
        o = self.orders.get(oid)
        code = ERR_UNKNOWN if o is None else ERR_QTY if new_qty <= 0 else ERR_PRICE if new_price <= 0 else 0
        if code:
            raise BookError(code, error_text(code, oid))
        assert o is not None
        if new_price == o.price and new_qty <= o.qty:
            o.qty = new_qty
            return RefResult(RESTED, [], [])
        self._remove(o)
        return self._enter(oid, o.side, new_price, new_qty, o.tif, o.owner, False)

    def expire(self, tif: int = DAY) -> list[tuple[int, int]]:
        gone = [(o.oid, o.qty) for o in sorted(self.orders.values(), key=lambda o: o.seq) if o.tif == tif]
        for oid, _ in gone:
            self._remove(self.orders[oid])
        return gone

    # ------------------------------------------------------------------ views
    def order(self, oid: int) -> Resting | None:
        o = self.orders.get(oid)
        return None if o is None else Resting(o.oid, o.side, o.price, o.qty, o.owner, o.tif)

    def _prices(self, side: int) -> list[int]:
        return sorted(self.sides[side], reverse=side == BUY)

    def l1(self) -> tuple[int, int, int, int]:
        bids, asks = self._prices(BUY), self._prices(SELL)
        bid = bids[0] if bids else 0
        ask = asks[0] if asks else 0
        return (bid, self._level_qty(BUY, bid) if bids else 0, ask, self._level_qty(SELL, ask) if asks else 0)

    def _level_qty(self, side: int, px: int) -> int:
        return sum(o.qty for o in self.sides[side][px].values())

    def l2(self, depth: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        return tuple(  # type: ignore[return-value]
            [(px, self._level_qty(s, px), len(self.sides[s][px])) for px in self._prices(s)[:depth]]
            for s in (BUY, SELL)
        )

    def snapshot(self) -> tuple[list, list]:
        """Each side best first: (price, [(oid, qty, owner), ...] in time priority)."""
        return tuple(  # type: ignore[return-value]
            [(px, [(o.oid, o.qty, o.owner) for o in self.sides[s][px].values()]) for px in self._prices(s)]
            for s in (BUY, SELL)
        )

    # ------------------------------------------------------------------ internals
    def _check_add(self, oid: int, side: int, price: int, qty: int, tif: int, market: bool) -> int:
        if oid < 0:
            return ERR_BAD_ID
        if side not in (BUY, SELL):
            return ERR_SIDE
        if tif not in (DAY, GTC, IOC, FOK):
            return ERR_TIF
        if qty <= 0:
            return ERR_QTY
        if not market and price <= 0:
            return ERR_PRICE
        if oid in self.orders:
            return ERR_DUPLICATE
        return 0

    def _crosses(self, side: int, price: int, market: bool, level_px: int) -> bool:
        return market or (level_px <= price if side == BUY else level_px >= price)

    def _makers(self, side: int, price: int, market: bool):
        """Resting orders of the other side that this order could meet, in priority order."""
        other = 1 - side
        for px in self._prices(other):
            if not self._crosses(side, price, market, px):
                return
            yield from list(self.sides[other][px].values())

    def _self(self, owner: int, maker: _Order) -> bool:
        return self.stp_mode != STP_NONE and owner != 0 and maker.owner == owner

    def _fok_fillable(self, side: int, price: int, qty: int, owner: int, market: bool) -> bool:
        got = 0
        for m in self._makers(side, price, market):
            if self._self(owner, m):
                if self.stp_mode == STP_CANCEL_OLDEST:
                    continue
                return False
            got += m.qty
            if got >= qty:
                return True
        return False

    def _enter(self, oid: int, side: int, price: int, qty: int, tif: int, owner: int, market: bool) -> RefResult:
        fills: list[tuple[int, ...]] = []
        stp: list[tuple[int, ...]] = []
        if tif == FOK and not self._fok_fillable(side, price, qty, owner, market):
            return RefResult(DONE, fills, stp)
        rem, killed = qty, False
        for m in self._makers(side, price, market):
            if rem == 0 or killed:
                break
            if self._self(owner, m):
                mode = self.stp_mode
                if mode == STP_CANCEL_NEWEST:
                    stp.append((oid, rem, 0))
                    rem, killed = 0, True
                elif mode == STP_CANCEL_OLDEST:
                    stp.append((m.oid, m.qty, 0))
                    self._remove(m)
                elif mode == STP_CANCEL_BOTH:
                    stp.append((m.oid, m.qty, 0))
                    self._remove(m)
                    stp.append((oid, rem, 0))
                    rem, killed = 0, True
                else:  # decrement both by the smaller quantity
                    d = min(rem, m.qty)
                    rem -= d
                    m.qty -= d
                    stp.append((m.oid, d, m.qty))
                    stp.append((oid, d, rem))
                    if m.qty == 0:
                        self._remove(m)
                continue
            q = min(rem, m.qty)
            rem -= q
            m.qty -= q
            fills.append((oid, m.oid, m.price, q, rem, m.qty))
            if m.qty == 0:
                self._remove(m)
        if rem > 0 and not killed and not market and tif in (DAY, GTC):
            self.seq += 1
            o = _Order(oid, side, price, rem, owner, tif, self.seq)
            self.orders[oid] = o
            self.sides[side].setdefault(price, OrderedDict())[oid] = o
            return RefResult(RESTED, fills, stp)
        return RefResult(DONE, fills, stp)

    def _remove(self, o: _Order) -> None:
        del self.orders[o.oid]
        level = self.sides[o.side][o.price]
        del level[o.oid]
        if not level:
            del self.sides[o.side][o.price]


__all__ = ["RefBook", "RefResult", "BUY", "SELL", "DAY", "GTC", "IOC", "FOK", "STP_NONE", "STP_CANCEL_NEWEST",
           "STP_CANCEL_OLDEST", "STP_CANCEL_BOTH", "STP_DECREMENT", "BookError"]
