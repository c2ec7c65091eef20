"""Compliance configuration: limits in a hierarchy (firm, account, instrument, and an
account's limit on one instrument; the most restrictive applies), soft levels, the
restricted list, locates and the checks that run outside the kernel."""
from __future__ import annotations

from typing import Literal

import msgspec

Scope = Literal["firm", "account", "instrument", "account_instrument", "session", "venue"]


class _Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class LimitRule(_Base):
    control: str  # a Control name in lower case, e.g. "max_qty"
    value: str  # a whole number, or a decimal for prices and money
    scope: Scope = "firm"
    account: str = ""
    symbol: str = ""
    soft_pct: int | None = None  # this rule's soft level; None: the control's default


class Locate(_Base):
    account: str
    symbol: str
    qty: int


class PostTradeRule(_Base):
    rule: str  # a post-trade Rule name in lower case, e.g. "concentration"
    warn: str = ""  # bps of NAV for ratios, money for daily_loss, shares for position; "": none
    hard: str = ""  # a hard breach puts the account in reduce-only until it clears
    account: str = ""  # "": every account


class RiskConfig(_Base):
    limits: list[LimitRule] = []
    soft_pct: int = 0  # default soft level, % of the hard limit (0: no soft alerts)
    restricted: list[str] = []  # symbols nobody may trade
    restricted_by_account: dict[str, list[str]] = {}
    locates: list[Locate] = []
    adv: dict[str, int] = {}  # average daily volume per symbol, for max_adv
    stale_price_s: float = 0.0  # > 0: orders that need a reference price need one this fresh
    duplicate_window_ms: int = 0  # > 0: same account, symbol, side, qty, price within it is refused
    throttle_new_per_s: int = 0  # per trader session; 0: off
    throttle_modify_per_s: int = 0
    throttle_cancel_per_s: int = 0
    max_order_to_trade: int = 0  # orders per execution per session per day, once 100 orders are in; 0: off
    repeated_execution_max: int = 0  # RTS 6 art. 15(3): executions of one symbol and side in the window
    repeated_execution_window_ms: int = 1000
    cumulative_collar_bps: int = 0  # > 0: prices accepted for a symbol within the window may drift this far
    cumulative_collar_window_s: float = 60.0  # from the first price accepted in the window
    admins: list[str] = []  # users allowed to change limits, kill switches and overrides
    nav: dict[str, str] = {}  # net asset value per account (money), the base of post-trade ratios
    issuers: dict[str, str] = {}  # symbol -> issuer (default: the symbol itself)
    sectors: dict[str, str] = {}  # symbol -> sector (default: "other")
    post_trade: list[PostTradeRule] = []
    wash_window_ms: int = 0  # > 0: a buy and a sell of one symbol in one account within it is reported
