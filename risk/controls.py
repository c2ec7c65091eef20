"""The pre-trade controls: one row each, with the FIX OrdRejReason it maps to and the
words its reject Text uses. The index is the control's row in the limit tensor and its
bit in the soft-alert mask."""
from __future__ import annotations

import enum


class Control(enum.IntEnum):
    # kernel controls (rows of the limit tensor), checked in this order
    RESTRICTED = 0  # 1 = restricted (global list merged into every account)
    LOCATE = 1  # shares located for short sale
    PRICE_MIN = 2  # lowest limit price accepted
    PRICE_MAX = 3  # highest limit price accepted
    PRICE_COLLAR = 4  # largest distance from the reference price, bps
    MAX_QTY = 5
    MAX_NOTIONAL = 6
    MAX_ADV = 7  # largest order as bps of average daily volume
    MAX_OPEN_ORDERS = 8
    POSITION_LONG = 9  # position plus working buys
    POSITION_SHORT = 10  # short position plus working sells
    CREDIT = 11  # open order notional plus executed notional, per account
    GROSS_EXPOSURE = 12  # per account, positions at reference prices plus open orders
    NET_EXPOSURE = 13
    FIRM_GROSS = 14  # all accounts together
    # checks outside the kernel
    STALE_PRICE = 15
    KILL_SWITCH = 16
    REDUCE_ONLY = 17
    DUPLICATE_ORDER = 18
    THROTTLE = 19
    ORDER_TO_TRADE = 20
    REPEATED_EXECUTION = 21
    CUMULATIVE_COLLAR = 22  # drift from the first price accepted in the window, bps

    @property
    def label(self) -> str:
        return self.name.lower()


KERNEL_CONTROLS = 15  # rows 0..14 are evaluated by the kernel

UNLIMITED = (1 << 62)

# FIX OrdRejReason (FIX 4.4 codes; the session fits them to its version) and the words of the Text
_WORDS = {
    Control.RESTRICTED: (99, "instrument is restricted"),
    Control.LOCATE: (99, "short sale without enough locate"),
    Control.PRICE_MIN: (99, "price below the lowest accepted"),
    Control.PRICE_MAX: (99, "price above the highest accepted"),
    Control.PRICE_COLLAR: (99, "price outside the collar around the reference price (bps)"),
    Control.MAX_QTY: (13, "order quantity above the maximum"),
    Control.MAX_NOTIONAL: (99, "order notional above the maximum"),
    Control.MAX_ADV: (13, "order above the maximum share of average daily volume (bps)"),
    Control.MAX_OPEN_ORDERS: (99, "too many open orders"),
    Control.POSITION_LONG: (99, "long position limit (position plus working buys)"),
    Control.POSITION_SHORT: (99, "short position limit (short position plus working sells)"),
    Control.CREDIT: (99, "credit limit (open plus executed notional)"),
    Control.GROSS_EXPOSURE: (99, "gross exposure limit"),
    Control.NET_EXPOSURE: (99, "net exposure limit"),
    Control.FIRM_GROSS: (99, "firm gross exposure limit"),
    Control.STALE_PRICE: (99, "no fresh reference price"),
    Control.KILL_SWITCH: (99, "kill switch is on"),
    Control.REDUCE_ONLY: (99, "reduce-only: the order would increase the position"),
    Control.DUPLICATE_ORDER: (99, "duplicate of a recent order"),
    Control.THROTTLE: (99, "message rate above the throttle"),
    Control.ORDER_TO_TRADE: (99, "order-to-trade ratio above the maximum"),
    Control.REPEATED_EXECUTION: (99, "repeated-execution throttle is on"),
    Control.CUMULATIVE_COLLAR: (99, "prices walked too far from the first in the window (bps)"),
}


def ord_rej_reason(c: Control) -> int:
    return _WORDS[c][0]


def describe(c: Control, observed: int | None = None, limit: int | None = None, money: bool = False) -> str:
    """The reject or alert Text: names the control and, when known, the figure and the limit."""
    text = f"{c.label}: {_WORDS[c][1]}"
    if limit is not None and observed is not None:
        show = money_str if money else str
        text += f" ({show(observed)} > {show(limit)})" if c not in (Control.PRICE_MIN,) else f" ({show(observed)} < {show(limit)})"
    return text


def money_str(v: int) -> str:
    whole, frac = divmod(abs(v), 10**6)
    return f"{'-' if v < 0 else ''}{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")


MONEY_CONTROLS = frozenset({Control.PRICE_MIN, Control.PRICE_MAX, Control.MAX_NOTIONAL, Control.CREDIT,
                            Control.GROSS_EXPOSURE, Control.NET_EXPOSURE, Control.FIRM_GROSS})
