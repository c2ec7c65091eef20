"""Exact fixed-point arithmetic for prices and quantities.

Prices are integers in units of 10**-PRICE_DECIMALS; quantities are integer units
(shares, contracts). Binary floats never enter the core: text and Decimal are
converted here, at the edge, and anything that is not a finite number in range is
refused with `FixedPointError`.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

PRICE_DECIMALS = 6
PRICE_SCALE = 10**PRICE_DECIMALS
AVGPX_DECIMALS = 10

# The ranges. Kernels hold figures in int64 (9.2e18, 9.2e12 in money at 1e-6), so every
# product that could leave it is bounded where it enters: an order's notional at
# MAX_NOTIONAL, money (limits, NAV, capital) at MAX_MONEY; sums of many of them saturate at
# MAX_FIGURE (oms.saturating), above every limit, so a figure out of range is refused.
MAX_QTY = 10**12
MAX_PRICE = 10**9 * PRICE_SCALE
MAX_NOTIONAL = 10**11 * PRICE_SCALE  # one order's quantity x price: 100 billion
MAX_MONEY = 10**12 * PRICE_SCALE  # one trillion
MAX_FX = 10**6 * PRICE_SCALE  # a currency's value in another, both ways: 1e-6 to 1e6
MAX_FIGURE = 1 << 62
_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class FixedPointError(ValueError):
    """A value that cannot be represented exactly in fixed point."""


def _decimal(value: str | int | Decimal, what: str) -> Decimal:
    """Text must be a plain number: no spaces, signs other than a leading minus, digit
    separators or digits of other scripts, which Decimal would take."""
    if isinstance(value, bool) or isinstance(value, float):
        raise FixedPointError(f"{what}: binary floats are not accepted: {value!r}")
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        raise FixedPointError(f"{what} {value!r} is not a number")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise FixedPointError(f"{what} {value!r} is not a number") from exc
    if not d.is_finite():
        raise FixedPointError(f"{what} {value!r} is not a finite number")
    if d and not -40 < d.adjusted() < 40:  # before any arithmetic: 1e999999 would overflow it
        raise FixedPointError(f"{what} {value} is out of range")
    return d


def to_price(value: str | int | Decimal, what: str = "price", limit: int = MAX_PRICE) -> int:
    """Parse a decimal price (or another amount: what, limit) into fixed point; refuses more
    decimals than the scale holds."""
    d = _decimal(value, what)
    scaled = d.scaleb(PRICE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise FixedPointError(f"{what} {value} has more than {PRICE_DECIMALS} decimals")
    p = int(scaled)
    if abs(p) > limit:
        raise FixedPointError(f"{what} {value} is out of range (at most {price_str(limit)} either way)")
    return p


def to_rounded_price(value: str | int | Decimal, what: str = "average price") -> int:
    """A price that may carry more decimals than the scale (a venue's AvgPx): rounded
    half-even once; the same text and range as a price."""
    d = _decimal(value, what)
    if abs(d) > Decimal(MAX_PRICE).scaleb(-PRICE_DECIMALS):
        raise FixedPointError(f"{what} {value} is out of range (at most {price_str(MAX_PRICE)} either way)")
    return to_price(d.quantize(Decimal(1).scaleb(-PRICE_DECIMALS), rounding=ROUND_HALF_EVEN), what)


def to_money(value: str | int | Decimal, what: str = "amount") -> int:
    """An amount of money (a limit, a NAV, a fund's capital) in fixed point, up to MAX_MONEY."""
    return to_price(value, what, MAX_MONEY)


def to_qty(value: str | int | Decimal, what: str = "quantity", limit: int = MAX_QTY) -> int:
    """Parse a quantity (or another count: what, limit); it must be a whole number of units."""
    d = _decimal(value, what)
    if d != d.to_integral_value():
        raise FixedPointError(f"{what} {value} is not a whole number")
    q = int(d)
    if abs(q) > limit:
        raise FixedPointError(f"{what} {value} is out of range (at most {limit} either way)")
    return q


def price_str(p: int) -> str:
    """Fixed-point price as canonical decimal text (no exponent, no trailing zeros)."""
    d = Decimal(p).scaleb(-PRICE_DECIMALS).normalize()
    return format(d, "f")


def avg_px(cum_value: int, cum_qty: int) -> Decimal:
    """Average price from the exact sum of LastQty*LastPx, rounded half-even once."""
    if cum_qty == 0:
        return Decimal(0)
    num = cum_value * 10 ** (AVGPX_DECIMALS - PRICE_DECIMALS)
    q, r = divmod(num, cum_qty)  # integer division: one rounding, no float, no context
    if 2 * r > cum_qty or (2 * r == cum_qty and q % 2):
        q += 1
    return Decimal(q).scaleb(-AVGPX_DECIMALS)
