"""Compliance state and the pre-trade decision.

The state (exposure arrays, message windows, kill switches, limit changes, overrides,
the repeated-execution throttle) is derived from journaled events only, through
`handlers`, which the OMS state calls after applying each event of their type. So a replay of the
journal rebuilds it exactly, and a decision depends on nothing but that state, the
order and the reference prices.

Numeric controls run in the Numba kernel (`risk.kernel`) over packed arrays; kill
switches, throttles, duplicates, order-to-trade and the execution throttle are keyed
look-ups around it.
"""
from __future__ import annotations

import contextlib
import copy
import operator
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import numpy as np

from oms.fixed import MAX_NOTIONAL, MAX_QTY, FixedPointError, to_money, to_price, to_qty
from oms.model import (
    AllocationBooked, AllocationCanceled, AllocationShare, ComplianceAlert, DayStarted, ExecType, ExecutionReport, NewOrder, OrderAccepted, OrderRejected, CancelRejected, OrdType, ReenableExecutions,
    RiskChanged, SetKillSwitch, SetLimit, SetOverride, Side, SplitApplied,
)
from risk.config import LimitRule, PostTradeRule, RiskConfig
from oms.saturating import clamp
from risk.controls import KERNEL_CONTROLS, MONEY_CONTROLS, UNLIMITED, Control, describe, money_str
from risk.kernel import (
    A_EXEC, B_BUYS, B_CASH, B_LOCATE, B_POS, B_SELLS, I_ADV, I_REF, check_one, check_orders, new_arena, order_moved, views,
)
from risk.posttrade import RULES, Rule, evaluate, mark_prices

SECOND = 1_000_000_000
_SCOPES = ("firm", "account", "instrument", "account_instrument")
_KILL_SCOPES = ("firm", "account", "session", "instrument", "venue")
_KERNEL = tuple(c for c in Control if c < KERNEL_CONTROLS)
_LEVELS = ("", "warn", "hard")  # post-trade levels as the kernel numbers them
_RULE_LABELS = {r.label: r for r in Rule}
# what an order's own figures are checked against: an allocation moves executed shares
# between accounts, so only the controls on holdings (restricted, locate, position, credit,
# exposure) apply to it
_ORDER_ONLY = sum(1 << c for c in (Control.PRICE_MIN, Control.PRICE_MAX, Control.PRICE_COLLAR, Control.MAX_QTY,
                                   Control.MAX_NOTIONAL, Control.MAX_ADV, Control.MAX_OPEN_ORDERS))


class RiskConfigError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def control_named(name: str) -> Control:
    try:
        return Control[name.upper()]
    except KeyError:
        raise RiskConfigError("control", f"unknown control {name!r}") from None


def parse_rule(rule: LimitRule | SetLimit) -> tuple[Control, int]:
    """The rule's control and its value in the kernel's units; RiskConfigError if invalid."""
    c = control_named(rule.control)
    if c >= KERNEL_CONTROLS:
        raise RiskConfigError("control", f"{rule.control} is not a limit (it has its own settings)")
    if rule.scope not in _SCOPES:
        raise RiskConfigError("scope", f"scope must be one of {', '.join(_SCOPES)}")
    if rule.soft_pct is not None and not 0 <= rule.soft_pct <= 100:
        raise RiskConfigError("soft_pct", "must be between 0 and 100")
    value = _parse(rule.value, c.label, price=c in (Control.PRICE_MIN, Control.PRICE_MAX), money=c in MONEY_CONTROLS)
    if value < 0:
        raise RiskConfigError("value", "limits cannot be negative")
    return c, value


def _parse(text: str, what: str, price: bool = False, money: bool = False, key: str = "value") -> int:
    """A limit's value: a price (price range), an amount of money (money range) or a whole
    number (quantity range); RiskConfigError naming the range otherwise."""
    try:
        return to_price(text, what) if price else to_money(text, what) if money else to_qty(text, what)
    except FixedPointError as exc:
        raise RiskConfigError(key, str(exc)) from None


@dataclass(slots=True)
class _Tracked:
    a: int
    i: int
    sign: int
    short: bool
    session: str
    working: int
    px: int
    cum: int = 0
    cum_value: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    control: Control | None  # None: the order passes
    text: str = ""
    alerts: tuple[tuple[Control, str], ...] = ()
    risk_px: int | None = None


PASS = Verdict(None)
_key = operator.itemgetter(0)
_VIEWS = frozenset({"lim", "soft", "book", "acct", "inst", "ref_ts", "last_fill", "static_ref", "cash"})


class Compliance:
    def __init__(self, accounts: list[str], symbols: list[str], cfg: RiskConfig,
                 ref_prices: dict[str, int] | None = None) -> None:
        self.cfg = cfg
        self.accounts = {a: k for k, a in enumerate(accounts)}
        self.symbols = {s: k for k, s in enumerate(symbols)}
        n_a, n_i = max(1, len(accounts)), max(1, len(symbols))
        self.arena = new_arena(n_a, n_i)
        self.lim, self.soft, self.book, self.acct, self.inst = views(self.arena)
        # per instrument, what else prices it (posttrade.P_*): when the reference price arrived
        # (0: never), the last fill's price and the configured price, the fallbacks
        self.priced = np.zeros((3, n_i), np.int64)
        self.ref_ts, self.last_fill, self.static_ref = self.priced
        for s, px in (ref_prices or {}).items():
            if s in self.symbols:
                self.static_ref[self.symbols[s]] = px
        for s, v in cfg.adv.items():
            if s in self.symbols:
                self.inst[I_ADV, self.symbols[s]] = v
        self.rules: list[LimitRule] = list(cfg.limits)
        for r in self.rules:
            parse_rule(r)
        self.kill: dict[tuple[str, str], SetKillSwitch] = {}
        self.overrides: dict[tuple[str, Control], int] = {}
        self.tracked: dict[str, _Tracked] = {}
        self.windows: dict[tuple[str, str], deque[int]] = {}
        self.recent: dict[tuple, int] = {}
        self.orders_sent: dict[str, int] = {}
        self.executions: dict[str, int] = {}
        self.exec_windows: dict[tuple[str, str], deque[int]] = {}
        self.exec_throttled: set[tuple[str, str]] = set()
        self.anchors: dict[str, tuple[int, int]] = {}  # symbol -> (time, price) the cumulative collar starts from
        # what the handlers found that the engine reports as alerts: (control, level, text, account, symbol)
        self.findings: list[tuple[str, str, str, str, str]] = []
        self.touched: set[int] = set()  # accounts with fills since the engine last looked
        self._post_trade_setup(cfg, symbols, n_a, n_i)
        self._limits_at = -1  # override expiry the limits were built for
        self._message_limits = bool(cfg.throttle_new_per_s or cfg.duplicate_window_ms or cfg.max_order_to_trade
                                    or cfg.repeated_execution_max)
        self._throttles = {"new": cfg.throttle_new_per_s, "modify": cfg.throttle_modify_per_s,
                           "cancel": cfg.throttle_cancel_per_s}
        self.handlers = {ExecutionReport: self._report, OrderAccepted: self._accepted, OrderRejected: self._rejected,
                         CancelRejected: self._cancel_rejected, RiskChanged: self._changed, ComplianceAlert: self._alerted,
                         AllocationBooked: self._allocated, AllocationCanceled: self._allocation_canceled,
                         DayStarted: self._day_started, SplitApplied: self._split}
        self.allocated_qty: dict[str, int] = {}  # order_id -> shares allocated, to see a bust break it
        self._materialize(0)

    # ------------------------------------------------------------------ limits
    def _materialize(self, now: int) -> None:
        """Resolve the hierarchy into the limit tensor: the most restrictive rule applies."""
        lim, soft = self.lim, self.soft
        lim[:] = UNLIMITED
        lim[Control.PRICE_MIN] = 0
        lim[Control.MAX_QTY] = MAX_QTY  # the ranges hold whatever is configured: an order past them is refused
        lim[Control.MAX_NOTIONAL] = MAX_NOTIONAL
        soft[:] = self.cfg.soft_pct * 100
        soft[Control.RESTRICTED] = soft[Control.PRICE_MIN] = 0
        for s in self.cfg.restricted:
            if s in self.symbols:
                lim[Control.RESTRICTED, :, self.symbols[s]] = 0
        for acc, syms in self.cfg.restricted_by_account.items():
            for s in syms:
                if acc in self.accounts and s in self.symbols:
                    lim[Control.RESTRICTED, self.accounts[acc], self.symbols[s]] = 0
        lim[Control.LOCATE] = 0  # no locate, no short sale
        for loc in self.cfg.locates:
            if loc.account in self.accounts and loc.symbol in self.symbols:
                lim[Control.LOCATE, self.accounts[loc.account], self.symbols[loc.symbol]] = loc.qty
        for rule in self.rules:
            c, value = parse_rule(rule)
            view = self._slice(c, rule)
            if view is None:
                continue
            if c is Control.PRICE_MIN:
                np.maximum(view, value, out=view)
            else:
                np.minimum(view, value, out=view)
            if rule.soft_pct is not None:
                soft[c] = rule.soft_pct * 100
        live = {k: until for k, until in self.overrides.items() if until > now}
        for (acc, c), _until in live.items():
            if acc in self.accounts:
                lim[c, self.accounts[acc]] = 0 if c in (Control.PRICE_MIN,) else UNLIMITED
        self._limits_at = min(live.values(), default=-1)

    def _slice(self, c: Control, rule: LimitRule | SetLimit) -> np.ndarray | None:
        a = self.accounts.get(rule.account) if rule.account else None
        i = self.symbols.get(rule.symbol) if rule.symbol else None
        plane = self.lim[c]
        if rule.scope == "firm":
            return plane
        if rule.scope == "account":
            return None if a is None else plane[a:a + 1]
        if rule.scope == "instrument":
            return None if i is None else plane[:, i:i + 1]
        return None if a is None or i is None else plane[a:a + 1, i:i + 1]

    def __copy__(self) -> Compliance:
        """A shallow copy, without what a snapshot's pickling does."""
        twin = object.__new__(Compliance)
        twin.__dict__.update(self.__dict__)
        return twin

    def snapshot(self) -> Compliance:
        """A copy of the exposure, limits and reference prices, taken on the engine's thread,
        for what-ifs decided off it (`check_basket`, `reference`): a large rebalance then
        holds the engine up for one copy of the arena only."""
        twin = copy.copy(self)
        twin.arena = self.arena.copy()
        twin.lim, twin.soft, twin.book, twin.acct, twin.inst = views(twin.arena)
        twin.ref_ts, twin.nav = self.ref_ts.copy(), self.nav.copy()
        twin.kill, twin.overrides, twin.rules = dict(self.kill), dict(self.overrides), list(self.rules)
        twin.reduce_only_accounts = set(self.reduce_only_accounts)
        return twin

    def __getstate__(self) -> dict:
        """Pickled (a snapshot) without the views into the arenas (they are views again on load)
        and with the tracked orders as one msgspec blob (pickle's memo of millions is slow)."""
        state = {k: v for k, v in self.__dict__.items() if k not in _VIEWS}
        state["tracked"] = msgspec.msgpack.encode([(k, t.a, t.i, t.sign, t.short, t.session, t.working, t.px, t.cum,
                                                    t.cum_value) for k, t in self.tracked.items()])
        return state

    def __setstate__(self, state: dict) -> None:
        rows = msgspec.msgpack.decode(state.pop("tracked"))
        self.__dict__.update(state)
        self.tracked = {row[0]: _Tracked(*row[1:]) for row in rows}
        self.lim, self.soft, self.book, self.acct, self.inst = views(self.arena)
        self.ref_ts, self.last_fill, self.static_ref = self.priced
        self.cash = self.book[B_CASH]

    # ------------------------------------------------------------------ reference prices
    def set_reference(self, symbol: str, px: int, now: int) -> None:
        i = self.symbols.get(symbol)
        if i is not None and px > 0:
            self.inst[I_REF, i] = px
            self.ref_ts[i] = now

    def digest(self) -> bytes:
        """Everything the events derived, canonically encoded for the state hash: exposure,
        cash and open orders, breaches, last fill prices, kill switches, limit changes,
        overrides, message and execution windows. Not the market's reference prices, which
        are not events."""
        def canon(d: dict) -> list:
            items = [(k, list(v) if isinstance(v, deque) else v) for k, v in d.items()]
            try:
                return sorted(items, key=_key)  # keys of one kind compare: fast
            except TypeError:  # keys holding None beside numbers (duplicate-order keys)
                return sorted(items, key=repr)

        return msgspec.msgpack.encode((
            self.book.tobytes(), self.acct.tobytes(), self.breach.tobytes(), self.last_fill.tobytes(), canon(self.kill),
            canon(self.overrides), self.rules, canon({k: (t.a, t.i, t.sign, t.short, t.session, t.working, t.px, t.cum, t.cum_value)
                                          for k, t in self.tracked.items()}),
            canon(self.windows), canon(self.recent), canon(self.orders_sent), canon(self.executions),
            canon(self.exec_windows), sorted(self.exec_throttled), canon(self.anchors),
            sorted(self.reduce_only_accounts), canon(self.wash_last), canon(self.allocated_qty),
        ))

    def carry_market(self, old: Compliance) -> None:
        """Take over the reference prices of `old`: market inputs, not events, so a rebuild
        from the journal does not bring them back."""
        self.inst[I_REF] = old.inst[I_REF]
        self.ref_ts[:] = old.ref_ts

    def reference(self, i: int, now: int) -> tuple[int, bool]:
        """(price, fresh): the market reference, else the configured price (never fresh)."""
        px = int(self.inst[I_REF, i])
        if px > 0:
            stale = self.cfg.stale_price_s > 0 and now - int(self.ref_ts[i]) > self.cfg.stale_price_s * SECOND
            return px, not stale
        return int(self.static_ref[i]), False

    # ------------------------------------------------------------------ decisions
    def check_new(self, c: NewOrder, venue: str, now: int) -> Verdict:
        a, i = self.accounts.get(c.account), self.symbols.get(c.symbol)
        if a is None or i is None:
            return PASS
        if 0 <= self._limits_at <= now:
            self._materialize(now)
        cfg = self.cfg
        sign = 1 if c.side is Side.BUY else -1
        market = c.ord_type is OrdType.MARKET or c.ord_type is OrdType.STOP
        if self.kill or self.reduce_only_accounts:
            refused = self._switched_off(c, venue, a, i, sign)
            if refused is not None:
                return refused
        if self._message_limits:
            refused = self._message_checks(c, now)
            if refused is not None:
                return refused
        if market or c.price is None or cfg.stale_price_s > 0:
            ref, fresh = self.reference(i, now)
            stale = self._stale(c, a, i, market, fresh)
            if stale is not None:
                return stale
        px = ref if market or c.price is None else c.price
        r = check_one(self.arena, a, i, sign, int(c.side is Side.SELL_SHORT), c.qty, px, int(market))
        if r[0] < 0 and not r[1] and not market:  # the common case: a priced order inside every limit
            return (cfg.cumulative_collar_bps and self._cumulative_collar(c.symbol, px, now)) or PASS
        verdict = self._verdict(r, px if market else None)
        if verdict.control is None and not market:
            return self._cumulative_collar(c.symbol, px, now) or verdict
        return verdict

    def _stale(self, c: NewOrder, a: int, i: int, market: bool, fresh: bool) -> Verdict | None:
        """The stale-price guard: a market order, or one under a collar, needs a fresh reference."""
        s = self.cfg.stale_price_s
        if s > 0 and not fresh and (market or self.lim[Control.PRICE_COLLAR, a, i] < UNLIMITED):
            return Verdict(Control.STALE_PRICE, describe(Control.STALE_PRICE) + f" for {c.symbol} within {s:g} s")
        return None

    def _switched_off(self, c: NewOrder, venue: str, a: int, i: int, sign: int) -> Verdict | None:
        """A kill switch or reduce-only mode that refuses this order."""
        switch = self._kill_switch(c, venue) if self.kill else None
        if switch is None and a in self.reduce_only_accounts:
            switch = _POST_TRADE_REDUCE_ONLY
        if switch is None:
            return None
        reducing = self._reduces(a, i, sign, c.qty)
        if switch.reduce_only and not reducing:
            return Verdict(Control.REDUCE_ONLY, describe(Control.REDUCE_ONLY) + f" [{switch.scope} {switch.key}]")
        if not switch.reduce_only and not (switch.allow_reducing and reducing):
            return Verdict(Control.KILL_SWITCH, describe(Control.KILL_SWITCH) + f" [{switch.scope} {switch.key}]")
        return None

    def check_basket(self, orders: list[NewOrder], now: int, default_venue: str = "") -> list[Verdict]:
        """N orders in one kernel call, each consuming limits for the next (what-if: no state
        changes), after what refuses an order on its own outside the kernel: kill switches,
        reduce-only and the stale-price guard (an order's venue: its ExDestination, else
        default_venue)."""
        if 0 <= self._limits_at <= now:
            self._materialize(now)
        verdicts: list[Verdict] = [PASS] * len(orders)
        rows, checked = [], []
        for k, c in enumerate(orders):
            a, i = self.accounts.get(c.account), self.symbols.get(c.symbol)
            if a is None or i is None:
                continue
            sign, market = (1 if c.side is Side.BUY else -1), c.ord_type in (OrdType.MARKET, OrdType.STOP)
            ref, fresh = self.reference(i, now)
            refused = ((self.kill or self.reduce_only_accounts) and
                       self._switched_off(c, c.ex_destination or default_venue, a, i, sign)) or \
                self._stale(c, a, i, market, fresh)
            if refused:
                verdicts[k] = refused
                continue
            px = c.price if c.price is not None and not market else ref
            rows.append((a, i, sign, int(c.side is Side.SELL_SHORT), clamp(c.qty), px, int(market)))
            checked.append(k)
        out = np.zeros((len(rows), 4), np.int64)
        check_orders(self.arena, np.array(rows, np.int64).reshape(len(rows), 7), out, 0, True)
        for k, r in zip(checked, out):
            verdicts[k] = self._verdict(r)
        return verdicts

    def check_allocation(self, block: str, symbol: str, side: Side, shares: list[AllocationShare],
                         now: int) -> list[Verdict]:
        """Each target account as if it had traded its shares at the block's average price,
        after the block's account gave them up: holding controls, kill switches and
        reduce-only (what-if: no state changes)."""
        i = self.symbols.get(symbol)
        if i is None:
            return [PASS] * len(shares)
        if 0 <= self._limits_at <= now:
            self._materialize(now)
        sign, short = (1 if side is Side.BUY else -1), side is Side.SELL_SHORT
        rows = np.array([(self.accounts[s.account], i, sign, int(short), s.qty, clamp(max(1, s.value // s.qty)), 0)
                         for s in shares], np.int64).reshape(len(shares), 7)
        out = np.zeros((len(shares), 4), np.int64)
        a, qty, value = self.accounts.get(block), sum(s.qty for s in shares), sum(s.value for s in shares)
        if a is not None:  # the block's account gives the shares up first (put back after)
            with self._kept(a, i):
                order_moved(self.arena, a, i, sign, short, 0, 0, -qty, -clamp(value), 0)
                check_orders(self.arena, rows, out, _ORDER_ONLY, True)
        else:
            check_orders(self.arena, rows, out, _ORDER_ONLY, True)
        verdicts = []
        for s, r in zip(shares, out):
            switched = None
            if self.kill or self.reduce_only_accounts:
                order = NewOrder(session="", cl_ord_id="", account=s.account, symbol=symbol, side=side,
                                 ord_type=OrdType.LIMIT, qty=s.qty, price=s.value // s.qty)
                switched = self._switched_off(order, "", self.accounts[s.account], i, sign)
            verdicts.append(switched or self._verdict(r))
        return verdicts

    def _allocated(self, ev: AllocationBooked, way: int = 1) -> None:
        """Shares and their value leave the block's account and land in the targets'
        (way -1: they go back)."""
        self.allocated_qty[ev.order_id] = self.allocated_qty.get(ev.order_id, 0) + way * ev.qty
        i = self.symbols.get(ev.symbol)
        if i is None:
            return
        sign, short = (1 if ev.side is Side.BUY else -1), ev.side is Side.SELL_SHORT
        moves = [(ev.account, -ev.qty, -ev.value)] + [(s.account, s.qty, s.value) for s in ev.shares]
        for account, qty, value in moves:
            a = self.accounts.get(account)
            if a is not None:
                order_moved(self.arena, a, i, sign, short, 0, 0, way * qty, clamp(way * value), 0)
                if self.cfg.post_trade:
                    self.touched.add(a)

    def _allocation_canceled(self, ev: AllocationCanceled) -> None:
        self._allocated(ev.booking, -1)

    def check_replace(self, order_id: str, qty: int, price: int | None, now: int) -> Verdict:
        """The amended order against the limits with its current working quantity released."""
        t = self.tracked.get(order_id)
        if t is None:
            return PASS
        if 0 <= self._limits_at <= now:
            self._materialize(now)
        arena = self.arena
        released = _Tracked(t.a, t.i, t.sign, t.short, t.session, t.working, t.px, t.cum, t.cum_value)
        with self._kept(t.a, t.i):  # no copy of the arena
            self._move(released, arena, 0, t.px, t.cum, t.cum_value)
            px = price if price is not None else t.px
            market = int(price is None)
            r = check_one(arena, t.a, t.i, t.sign, int(t.short), max(0, qty - t.cum), px, market)
            if r[0] == -1:  # the order quantity limits apply to the whole order
                r = check_one(arena, t.a, t.i, t.sign, int(t.short), qty, px, market)
        return self._verdict(r)

    @contextlib.contextmanager
    def _kept(self, a: int, i: int) -> Iterator[None]:
        """A what-if that moves account a's figures on instrument i: they are put back as they
        were (not moved back: a saturated sum would not return)."""
        cells, totals = self.book[:, a, i].copy(), self.acct[:, a].copy()
        try:
            yield
        finally:
            self.book[:, a, i], self.acct[:, a] = cells, totals

    def _verdict(self, r: tuple[int, int, int, int] | np.ndarray, risk_px: int | None = None) -> Verdict:
        mask = int(r[1])
        alerts = tuple((c, describe(c)) for c in _KERNEL if mask >> c & 1) if mask else ()
        if r[0] < 0:
            return Verdict(None, alerts=alerts, risk_px=risk_px)
        c = Control(int(r[0]))
        return Verdict(c, describe(c, int(r[2]), int(r[3]), c in MONEY_CONTROLS), alerts)

    def _kill_switch(self, c: NewOrder, venue: str) -> SetKillSwitch | None:
        for key in (("firm", ""), ("account", c.account), ("session", c.session), ("instrument", c.symbol),
                    ("venue", venue)):
            if key in self.kill:
                return self.kill[key]
        return None

    def _reduces(self, a: int, i: int, sign: int, qty: int) -> bool:
        pos, buys, sells = (int(self.book[p, a, i]) for p in (B_POS, B_BUYS, B_SELLS))
        return pos - sells >= qty if sign < 0 else -(pos + buys) >= qty

    def _message_checks(self, c: NewOrder, now: int) -> Verdict | None:
        cfg = self.cfg
        if cfg.throttle_new_per_s and self._rate(c.session, "new", now) >= cfg.throttle_new_per_s:
            return Verdict(Control.THROTTLE, describe(Control.THROTTLE) + f" (new orders: {cfg.throttle_new_per_s}/s)")
        if cfg.duplicate_window_ms:
            seen = self.recent.get(_dup_key(c))
            if seen is not None and now - seen <= cfg.duplicate_window_ms * 1_000_000:
                return Verdict(Control.DUPLICATE_ORDER, describe(Control.DUPLICATE_ORDER) +
                               f" within {cfg.duplicate_window_ms} ms")
        if cfg.max_order_to_trade:
            sent, done = self.orders_sent.get(c.session, 0), self.executions.get(c.session, 0)
            if sent >= 100 and sent > cfg.max_order_to_trade * max(done, 1):
                return Verdict(Control.ORDER_TO_TRADE, describe(Control.ORDER_TO_TRADE) +
                               f" ({sent} orders, {done} executions, max {cfg.max_order_to_trade}:1)")
        if (c.symbol, c.side.value) in self.exec_throttled:
            return Verdict(Control.REPEATED_EXECUTION, describe(Control.REPEATED_EXECUTION) +
                           f" for {c.symbol} side {c.side.value} until re-enabled")
        return None

    def _cumulative_collar(self, symbol: str, px: int, now: int) -> Verdict | None:
        """Orders of a runaway strategy that walk the price step by step each pass the
        per-order collar; this bounds the walk from the first price of the window."""
        limit = self.cfg.cumulative_collar_bps
        anchor = self.anchors.get(symbol)
        if not limit or anchor is None or now - anchor[0] > self.cfg.cumulative_collar_window_s * SECOND:
            return None
        drift = -(-abs(px - anchor[1]) * 10000 // anchor[1])
        if drift <= limit:
            return None
        return Verdict(Control.CUMULATIVE_COLLAR, describe(Control.CUMULATIVE_COLLAR, drift, limit) +
                       f" for {symbol} within {self.cfg.cumulative_collar_window_s:g} s")

    def rate_refused(self, session: str, kind: str, now: int) -> str | None:
        """Text when a cancel ("cancel") or replace ("modify") is over its session's throttle."""
        limit = self.cfg.throttle_cancel_per_s if kind == "cancel" else self.cfg.throttle_modify_per_s
        if limit and self._rate(session, kind, now) >= limit:
            return describe(Control.THROTTLE) + f" ({kind} requests: {limit}/s)"
        return None

    def _rate(self, session: str, kind: str, now: int) -> int:
        """Messages in the last second. A decision only reads: the window is trimmed by
        the events alone, so a replay rebuilds it exactly."""
        w = self.windows.get((session, kind))
        if not w:
            return 0
        horizon = now - SECOND
        return sum(1 for t in w if t > horizon)

    # ------------------------------------------------------------------ state, from events
    def _rejected(self, ev: OrderRejected) -> None:
        self._note(ev.order.session, "new", ev.ts)
        self.orders_sent[ev.order.session] = self.orders_sent.get(ev.order.session, 0) + 1

    def _cancel_rejected(self, ev: CancelRejected) -> None:
        self._note(ev.session, "modify" if ev.replace else "cancel", ev.ts)

    def _note(self, session: str, kind: str, ts: int) -> None:
        if not self._throttles[kind]:
            return  # that throttle is off: no window to keep
        w = self.windows.setdefault((session, kind), deque())
        w.append(ts)
        while w and w[0] <= ts - SECOND:
            w.popleft()

    def _accepted(self, ev: OrderAccepted) -> None:
        c = ev.order
        cfg = self.cfg
        if cfg.throttle_new_per_s:
            self._note(c.session, "new", ev.ts)
        if cfg.max_order_to_trade:
            self.orders_sent[c.session] = self.orders_sent.get(c.session, 0) + 1
        if cfg.duplicate_window_ms:
            self.recent[_dup_key(c)] = ev.ts
            if len(self.recent) > 4096:  # forget what is past every window
                horizon = ev.ts - cfg.duplicate_window_ms * 1_000_000
                self.recent = {k: t for k, t in self.recent.items() if t >= horizon}
        a, i = self.accounts.get(c.account), self.symbols.get(c.symbol)
        if a is None or i is None:
            return
        px = c.price if c.price is not None else (ev.risk_px or 0)
        if cfg.cumulative_collar_bps and px:
            anchor = self.anchors.get(c.symbol)
            if anchor is None or ev.ts - anchor[0] > cfg.cumulative_collar_window_s * SECOND:
                self.anchors[c.symbol] = (ev.ts, px)
        sign = 1 if c.side is Side.BUY else -1
        short = c.side is Side.SELL_SHORT
        self.tracked[ev.order_id] = _Tracked(a, i, sign, short, c.session, c.qty, px)
        order_moved(self.arena, a, i, sign, short, c.qty, clamp(c.qty * px), 0, 0, 1)

    @staticmethod
    def _move(t: _Tracked, arena: np.ndarray, working: int, px: int, cum: int, value: int) -> None:
        was = t.working  # a venue's fill may be worth more than the arena holds: it saturates there
        order_moved(arena, t.a, t.i, t.sign, t.short, working - was, clamp(working * px - was * t.px),
                    cum - t.cum, clamp(value - t.cum_value), (working > 0) - (was > 0))
        t.working = working
        t.px = px
        t.cum = cum
        t.cum_value = value

    def _report(self, ev: ExecutionReport) -> None:
        et = ev.exec_type
        if et is ExecType.PENDING_CANCEL:
            self._note(ev.session, "cancel", ev.ts)
        elif et is ExecType.PENDING_REPLACE:
            self._note(ev.session, "modify", ev.ts)
        t = self.tracked.get(ev.order_id)
        if t is None:
            return
        px = t.px if ev.price is None else ev.price
        cum = ev.cum_qty
        if cum == t.cum and ev.leaves_qty == t.working and px == t.px and ev.cum_value == t.cum_value:
            return  # an acknowledgement: nothing to count
        self._move(t, self.arena, ev.leaves_qty, px, cum, ev.cum_value)
        if self.cfg.post_trade:
            self.touched.add(t.a)
        if (et is ExecType.TRADE_CANCEL or et is ExecType.TRADE_CORRECT) and \
                self.allocated_qty.get(ev.order_id, 0) > ev.cum_qty:
            self.findings.append(("allocation_break", "hard", f"order {ev.order_id}: "
                                  f"{self.allocated_qty[ev.order_id]} shares are allocated but {ev.cum_qty} remain "
                                  "executed after a bust or correction: cancel an allocation and book it again",
                                  ev.account, ev.symbol))
        if et is ExecType.TRADE:
            self.last_fill[t.i] = ev.last_px
            if self.cfg.max_order_to_trade:
                self.executions[t.session] = self.executions.get(t.session, 0) + 1
            self._execution(ev)
            self._wash(t, ev)

    def _execution(self, ev: ExecutionReport) -> None:
        limit = self.cfg.repeated_execution_max
        if not limit:
            return
        key = (ev.symbol, ev.side.value)
        w = self.exec_windows.setdefault(key, deque())
        w.append(ev.ts)
        while w and w[0] <= ev.ts - self.cfg.repeated_execution_window_ms * 1_000_000:
            w.popleft()
        if len(w) >= limit and key not in self.exec_throttled:
            self.exec_throttled.add(key)
            self.findings.append(("repeated_execution", "hard", f"repeated-execution throttle on for {ev.symbol} side "
                                  f"{ev.side.value}: new orders refused until re-enabled", ev.account, ev.symbol))

    def _day_started(self, ev: DayStarted) -> None:
        """A new trading day: executed notional, daily P&L, order-to-trade, throttles, duplicate
        and repeated-execution windows count from zero. Positions are carried: each account's
        cash restarts at minus its positions' value at the day's marks, so its daily P&L is
        what moves from there. A repeated-execution throttle stays on until re-enabled."""
        self.acct[A_EXEC] = 0
        marks = {self.symbols[s]: px for s, px in ev.marks if s in self.symbols}
        pos = self.book[B_POS]
        self.cash[:] = 0
        for a, i in np.argwhere(pos != 0).tolist():
            self.cash[a, i] = clamp(-int(pos[a, i]) * marks.get(i, 0))
        self.windows.clear()
        self.recent.clear()
        self.orders_sent.clear()
        self.executions.clear()
        self.exec_windows.clear()
        self.anchors.clear()
        self.wash_last.clear()

    def _split(self, ev: SplitApplied) -> None:
        """A stock split: positions, locates, working and filled quantities of its orders count
        new shares for old (a remainder of a share is dropped), prices old for new; the
        orders' restatements that follow move their open notional to the new prices."""
        i = self.symbols.get(ev.symbol)
        if i is None:
            return
        for plane in (B_POS, B_BUYS, B_SELLS, B_LOCATE):
            self.book[plane, :, i] = self.book[plane, :, i] * ev.new // ev.old
        for t in self.tracked.values():
            if t.i == i:
                t.working, t.cum = t.working * ev.new // ev.old, t.cum * ev.new // ev.old
        for prices in (self.inst[I_REF], self.last_fill, self.static_ref):
            prices[i] = prices[i] * ev.old // ev.new
        self.inst[I_ADV, i] = self.inst[I_ADV, i] * ev.new // ev.old
        self.anchors.pop(ev.symbol, None)

    def _changed(self, ev: RiskChanged) -> None:
        ch = ev.change
        if isinstance(ch, SetLimit):
            self.rules.append(LimitRule(control=ch.control, value=ch.value, scope=ch.scope,  # type: ignore[arg-type]
                                        account=ch.account, symbol=ch.symbol, soft_pct=ch.soft_pct))
            self._materialize(ev.ts)
        elif isinstance(ch, SetKillSwitch):
            if ch.on:
                self.kill[(ch.scope, ch.key)] = ch
            else:
                self.kill.pop((ch.scope, ch.key), None)
        elif isinstance(ch, SetOverride):
            self.overrides[(ch.account, control_named(ch.control))] = ch.until
            self._materialize(ev.ts)
        elif isinstance(ch, ReenableExecutions):
            key = (ch.symbol, ch.side.value)
            self.exec_throttled.discard(key)
            self.exec_windows.pop(key, None)

    # ------------------------------------------------------------------ post-trade
    def _post_trade_setup(self, cfg: RiskConfig, symbols: list[str], n_a: int, n_i: int) -> None:
        self.cash = self.book[B_CASH]  # what fills paid (-) and received (+): the kernel keeps it
        self.nav = np.zeros(n_a, np.int64)
        for acc, v in cfg.nav.items():
            if acc in self.accounts:
                self.nav[self.accounts[acc]] = to_money(v, f"NAV of {acc}")
        issuers = [cfg.issuers.get(s, s) for s in symbols] or ["-"]
        sectors = [cfg.sectors.get(s, "other") for s in symbols] or ["-"]
        self.issuer, self.sector = (np.array([rank[x] for x in names], np.int64) for names, rank in (
            (names, {x: k for k, x in enumerate(sorted(set(names)))}) for names in (issuers, sectors)))
        self.warn = np.full((RULES, n_a), UNLIMITED, np.int64)
        self.hard = np.full((RULES, n_a), UNLIMITED, np.int64)
        for rule in cfg.post_trade:
            r, warn, hard = parse_post_trade(rule)
            if rule.account and rule.account not in self.accounts:
                continue
            cols = slice(None) if not rule.account else slice(self.accounts[rule.account], self.accounts[rule.account] + 1)
            for level, value in ((self.warn, warn), (self.hard, hard)):
                if value is not None:
                    np.minimum(level[r, cols], value, out=level[r, cols])
        self._levels = np.zeros((RULES, n_a), np.int64)
        self._figures = np.zeros((RULES, n_a), np.int64)
        self.breach = np.zeros((RULES, n_a), np.int64)  # the level each (rule, account) is at: _LEVELS
        self.reduce_only_accounts: set[int] = set()
        self.wash_last: dict[tuple[int, int, int], int] = {}

    def _fresh_since(self, now: int) -> int:
        """The oldest a reference price may be to value positions (posttrade.mark_prices)."""
        return now - int(self.cfg.stale_price_s * SECOND) if self.cfg.stale_price_s > 0 else -(1 << 62)

    def marks(self, now: int) -> tuple[np.ndarray, np.ndarray]:
        """(price, fresh) per instrument, as post-trade values positions at `now`."""
        return mark_prices(self.inst[I_REF], self.priced, self._fresh_since(now))

    def _fallbacks(self, a: int, marks: np.ndarray, fresh: np.ndarray) -> str:
        """Which prices valued account a's positions that have no fresh mark, for an alert's Text."""
        said = []
        for s, i in self.symbols.items():
            if self.book[B_POS, a, i] and not fresh[i]:
                source = ("its last fill" if self.last_fill[i] > 0 else "its configured reference price"
                          if self.static_ref[i] > 0 else "")
                said.append(f"{s} at {source} {money_str(int(marks[i]))}" if source else f"{s} left out (no price)")
        return f" [no fresh mark: {', '.join(said)}]" if said else ""

    def post_trade(self, account: int, now: int) -> list[tuple[str, str, str, str]]:
        """Evaluate one account (or all: -1) at the marks of `now`: the changes of level as
        (rule, level, text, account)."""
        if not self.cfg.post_trade:
            return []
        levels, figures = self._levels, self._figures
        evaluate(self.book[B_POS], self.cash, self.inst[I_REF], self.priced, self._fresh_since(now), self.nav,
                 self.issuer, self.sector,
                 self.lim[Control.POSITION_LONG], self.lim[Control.POSITION_SHORT], self.warn, self.hard, account,
                 levels, figures)
        known = self.breach
        if account < 0:
            changed = np.argwhere(levels != known).tolist()
        else:
            now, was = levels[:, account].tolist(), known[:, account].tolist()
            if now == was:  # the common case after a fill: nothing changed level
                return []
            changed = [(r, account) for r in range(RULES) if now[r] != was[r]]
        names = list(self.accounts)
        changes = []
        marks, fresh = self.marks(now)
        for r, a in changed:
            r = Rule(r)
            label, level = r.label, _LEVELS[int(levels[r, a])]
            figure = int(figures[r, a])
            limit = int((self.warn if level == "warn" else self.hard)[r, a]) if level else 0
            text = (f"{label}: {_show(r, figure)} > {level} level {_show(r, limit)}" if level
                    else f"{label}: back within limits ({_show(r, figure)})")
            if r is not Rule.POSITION:
                text += self._fallbacks(a, marks, fresh)
            changes.append((label, level or "clear", text, names[a]))
        return changes

    def _alerted(self, ev: ComplianceAlert) -> None:
        """Post-trade breach state follows the journaled alerts, so a replay restores it."""
        r = _RULE_LABELS.get(ev.control)
        a = self.accounts.get(ev.account)
        if r is None or a is None:
            return
        self.breach[r, a] = 0 if ev.level == "clear" else _LEVELS.index(ev.level)
        if (self.breach[:, a] == _LEVELS.index("hard")).any():
            self.reduce_only_accounts.add(a)
        else:
            self.reduce_only_accounts.discard(a)

    def _wash(self, t: _Tracked, ev: ExecutionReport) -> None:
        window = self.cfg.wash_window_ms * 1_000_000
        if not window:
            return
        self.wash_last[(t.a, t.i, t.sign)] = ev.ts
        other = self.wash_last.get((t.a, t.i, -t.sign))
        if other is not None and ev.ts - other <= window:
            self.findings.append(("post_wash_trade", "warn", f"post_wash_trade: {ev.account} bought and sold "
                                  f"{ev.symbol} within {self.cfg.wash_window_ms} ms", ev.account, ev.symbol))


    def validate_change(self, ch: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions) -> str | None:
        """Why a change cannot be applied, or None."""
        try:
            if isinstance(ch, SetLimit):
                parse_rule(ch)
            elif isinstance(ch, SetKillSwitch) and ch.scope not in _KILL_SCOPES:
                return f"kill switch scope must be one of {', '.join(_KILL_SCOPES)}"
            elif isinstance(ch, SetOverride):
                control_named(ch.control)
        except RiskConfigError as exc:
            return str(exc)
        return None

    def in_scope(self, switch: SetKillSwitch, account: str, session: str, symbol: str, venue: str) -> bool:
        return {"firm": True, "account": account == switch.key, "session": session == switch.key,
                "instrument": symbol == switch.key, "venue": venue == switch.key}[switch.scope]


def _dup_key(c: NewOrder) -> tuple:
    return (c.account, c.symbol, c.side, c.qty, c.price)


_POST_TRADE_REDUCE_ONLY = SetKillSwitch(user="post-trade", scope="account", key="hard post-trade breach",
                                        reduce_only=True)


def _show(r: Rule, v: int) -> str:
    if r is Rule.DAILY_LOSS:
        return money_str(v)
    return f"{v} shares" if r is Rule.POSITION else f"{v} bps of NAV"


def parse_post_trade(rule: PostTradeRule) -> tuple[Rule, int | None, int | None]:
    try:
        r = Rule[rule.rule.upper()]
    except KeyError:
        raise RiskConfigError("rule", f"unknown post-trade rule {rule.rule!r}") from None
    values = []
    for name in ("warn", "hard"):
        text = getattr(rule, name)
        values.append(None if text == "" else _parse(text, f"{rule.rule} {name} level", money=r is Rule.DAILY_LOSS,
                                                     key=name))
    return r, values[0], values[1]
