"""Exact fixed-point arithmetic for prices and quantities.

Prices are integers in units of 10**-PRICE_DECIMALS; quantities are integer units
(shares, contracts). Binary floats never enter the core: text and Decimal are
converted here, at the edge, and anything that is not a finite number in range is
refused with `FixedPointError`.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

PRICE_DECIMALS = 6
PRICE_SCALE = 10**PRICE_DECIMALS
AVGPX_DECIMALS = 10

MAX_QTY = 10**12
MAX_PRICE = 10**9 * PRICE_SCALE
MAX_MONEY = 10**15 * PRICE_SCALE


class FixedPointError(ValueError):
    """A value that cannot be represented exactly in fixed point."""


def _decimal(value: str | int | Decimal) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise FixedPointError(f"binary floats are not accepted: {value!r}")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise FixedPointError(f"not a number: {value!r}") from exc
    if not d.is_finite():
        raise FixedPointError(f"not a finite number: {value!r}")
    if d and not -40 < d.adjusted() < 40:  # before any arithmetic: 1e999999 would overflow it
        raise FixedPointError(f"{value} is out of range")
    return d


def to_price(value: str | int | Decimal, what: str = "price", limit: int = MAX_PRICE) -> int:
    """Parse a decimal price (or another amount: what, limit) into fixed point; refuses more
    decimals than the scale holds."""
    d = _decimal(value)
    scaled = d.scaleb(PRICE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise FixedPointError(f"{what} {value} has more than {PRICE_DECIMALS} decimals")
    p = int(scaled)
    if abs(p) > limit:
        raise FixedPointError(f"{what} {value} is out of range")
    return p


def to_money(value: str | int | Decimal) -> int:
    """An amount of money (a fund's capital, say) in fixed point, up to 10**15."""
    return to_price(value, "amount", MAX_MONEY)


def to_qty(value: str | int | Decimal) -> int:
    """Parse a quantity; it must be a whole number of units."""
    d = _decimal(value)
    if d != d.to_integral_value():
        raise FixedPointError(f"quantity {value} is not a whole number")
    q = int(d)
    if abs(q) > MAX_QTY:
        raise FixedPointError(f"quantity {value} is out of range")
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
