"""Rebalancing proposals: the orders that bring an account to a model's target weights.

`propose` is pure integer arithmetic: each symbol's target is the whole lots that
weight x capital buys at the reference price (rounded down, so a proposal never spends
more than the capital), less what the account holds and has working. Symbols held but
not in the model are sold out. `proposals` works on a snapshot of the compliance state
(taken on the engine's thread, through `Runtime.query`; the rest runs off it) and checks
the whole basket, across accounts, with the pre-trade kernel, each order consuming limits
for the ones after it.
"""
from __future__ import annotations

import msgspec
import numpy as np

from oms.fixed import PRICE_SCALE
from oms.model import NewOrder, OrdType, Side
from risk.compliance import Compliance
from risk.kernel import B_BUYS, B_POS, B_SELLS


class Proposal(msgspec.Struct, frozen=True):
    account: str
    symbol: str
    side: Side
    qty: int
    price: int  # the reference price it is valued at (the symbol's currency)
    holding: int  # position plus working buys less working sells, before it
    target: int
    passed: bool
    control: str = ""  # the pre-trade control that would refuse it
    text: str = ""
    alerts: list[str] = []  # soft limits it would breach


class AccountPlan(msgspec.Struct, frozen=True):
    account: str
    capital: int
    invested: int  # value of the targets at the reference prices, in the account's base currency
    proposals: list[Proposal]


class CannotPropose(ValueError):
    """No proposal can be made: a symbol without a reference price, an account worth nothing."""

    def __init__(self, error: str, text: str) -> None:
        super().__init__(text)
        self.error = error


def target_qty(capital: int, weight: int, price: int, lot: int, rate: int = PRICE_SCALE) -> int:
    """Whole lots worth at most weight x capital at price (weight in fixed point: 1e6 = 1;
    rate: one unit of the price's currency in the capital's, fixed point)."""
    return capital * weight // rate // price // lot * lot


def propose(capital: int, weights: dict[str, int], holdings: dict[str, int], prices: dict[str, int],
            lots: dict[str, int], rates: dict[str, int] | None = None) -> list[tuple[str, int, int]]:
    """(symbol, target, signed quantity to trade) for every symbol that has to move, by
    symbol; a trade is a whole number of lots (an odd lot held is left, as the venues
    trade whole lots only). rates: each symbol's currency in the capital's (default 1)."""
    out = []
    for s in sorted(set(weights) | {s for s, q in holdings.items() if q}):
        held, lot = holdings.get(s, 0), lots.get(s, 1)
        rate = rates.get(s, PRICE_SCALE) if rates else PRICE_SCALE
        target = target_qty(capital, weights.get(s, 0), prices[s], lot, rate) if weights.get(s) else 0
        delta = target - held
        delta = (1 if delta > 0 else -1) * (abs(delta) // lot * lot)  # whole lots: an odd lot held stays
        if delta:
            out.append((s, target, delta))
    return out


def proposals(c: Compliance, lots: dict[str, int], accounts: dict[str, int | None], weights: dict[str, int],
              now: int, session: str, route: str | None, default_venue: str,
              rates: dict[str, dict[str, int]] | None = None) -> list[AccountPlan]:
    """For each account (capital None: its configured NAV, else what its positions are worth;
    in its base currency), the orders that reach the weights, checked as one basket against c
    (a snapshot): market orders with ExDestination route (None: default_venue, the default
    routing). rates[account][symbol]: the symbol's currency in the account's (default 1)."""
    names = list(c.symbols)
    net = c.book[B_POS] + c.book[B_BUYS] - c.book[B_SELLS]  # what each account holds and has working
    prices: dict[str, int] = {}
    plans = []
    for account, capital in accounts.items():
        a = c.accounts[account]
        holdings = {names[i]: int(net[a, i]) for i in np.flatnonzero(net[a])}
        positions = {names[i]: int(c.book[B_POS, a, i]) for i in np.flatnonzero(c.book[B_POS, a])}
        needed = set(weights) | set(holdings) | set(positions)
        for s in needed - set(prices):
            prices[s] = c.reference(c.symbols[s], now)[0]
        missing = sorted(s for s in needed if prices[s] <= 0)
        if missing:
            raise CannotPropose("NO_PRICE", f"no reference price for {', '.join(missing)}")
        fx = (rates or {}).get(account, {})
        if capital is None:
            capital = int(c.nav[a]) or sum(q * prices[s] * fx.get(s, PRICE_SCALE) // PRICE_SCALE
                                            for s, q in positions.items())
            if capital <= 0:
                raise CannotPropose("NO_CAPITAL", f"{account} has no NAV configured and its positions are worth "
                                                  "nothing: give its capital")
        plans.append((account, capital, propose(capital, weights, holdings, prices, lots, fx), holdings, fx))
    orders = [NewOrder(session=session, cl_ord_id="", account=account, symbol=s,
                       side=Side.BUY if delta > 0 else Side.SELL, ord_type=OrdType.MARKET, qty=abs(delta),
                       ex_destination=route)
              for account, _, trades, _, _ in plans for s, _, delta in trades]
    verdicts = iter(c.check_basket(orders, now, default_venue))
    out = []
    for account, capital, trades, holdings, fx in plans:
        rows = []
        for s, target, delta in trades:
            v = next(verdicts)
            rows.append(Proposal(account=account, symbol=s, side=Side.BUY if delta > 0 else Side.SELL, qty=abs(delta),
                                 price=prices[s], holding=holdings.get(s, 0), target=target, passed=v.control is None,
                                 control="" if v.control is None else v.control.label, text=v.text,
                                 alerts=[text for _, text in v.alerts]))
        invested = sum(target_qty(capital, w, prices[s], lots.get(s, 1), fx.get(s, PRICE_SCALE)) * prices[s]
                       * fx.get(s, PRICE_SCALE) // PRICE_SCALE for s, w in weights.items())
        out.append(AccountPlan(account=account, capital=capital, invested=invested, proposals=rows))
    return out

