"""Rebalancing proposals: the orders that bring an account to a model's target weights.

`propose` is pure integer arithmetic: each symbol's target is the whole lots that
weight x capital buys at the reference price (rounded down, so a proposal never spends
more than the capital), less what the account holds and has working. Symbols held but
not in the model are sold out. `proposals` reads what it needs from the engine (on the
engine's thread, through `Runtime.query`) and checks the whole basket, across accounts,
with the pre-trade kernel, each order consuming limits for the ones after it.
"""
from __future__ import annotations

import msgspec

from oms.engine import Engine
from oms.fixed import PRICE_SCALE
from oms.model import NewOrder, OrdType, Side
from risk.kernel import B_BUYS, B_POS, B_SELLS


class Proposal(msgspec.Struct, frozen=True):
    account: str
    symbol: str
    side: Side
    qty: int
    price: int  # the reference price it is valued at
    holding: int  # position plus working buys less working sells, before it
    target: int
    passed: bool
    control: str = ""  # the pre-trade control that would refuse it
    text: str = ""
    alerts: list[str] = []  # soft limits it would breach


class AccountPlan(msgspec.Struct, frozen=True):
    account: str
    capital: int
    invested: int  # value of the targets at the reference prices
    proposals: list[Proposal]


class NoPrice(ValueError):
    """A symbol the model or the account holds has no reference price to value it at."""


def target_qty(capital: int, weight: int, price: int, lot: int) -> int:
    """Whole lots worth at most weight x capital at price (weight in fixed point: 1e6 = 1)."""
    return capital * weight // PRICE_SCALE // price // lot * lot


def propose(capital: int, weights: dict[str, int], holdings: dict[str, int], prices: dict[str, int],
            lots: dict[str, int]) -> list[tuple[str, int, int]]:
    """(symbol, target, signed quantity to trade) for every symbol that has to move, by
    symbol; a trade is a whole number of lots, except selling out a holding in full."""
    out = []
    for s in sorted(set(weights) | {s for s, q in holdings.items() if q}):
        held, lot = holdings.get(s, 0), lots.get(s, 1)
        target = target_qty(capital, weights.get(s, 0), prices[s], lot) if weights.get(s) else 0
        delta = target - held
        if target:  # towards the target in whole lots
            delta = (1 if delta > 0 else -1) * (abs(delta) // lot * lot)
        if delta:
            out.append((s, target, delta))
    return out


def proposals(engine: Engine, accounts: dict[str, int | None], weights: dict[str, int], now: int,
              session: str) -> list[AccountPlan]:
    """For each account (capital None: its configured NAV, else what its positions are worth),
    the orders that reach the weights, checked as one basket. Runs on the engine's thread."""
    c = engine.compliance
    lots = {s: i.lot_size for s, i in engine.ref.instruments.items()}
    plans: list[tuple[str, int, list[tuple[str, int, int]], dict[str, int], dict[str, int]]] = []
    for account, capital in accounts.items():
        a = c.accounts[account]
        holdings = {s: int(c.book[B_POS, a, i] + c.book[B_BUYS, a, i] - c.book[B_SELLS, a, i])
                    for s, i in c.symbols.items()}
        prices = {s: c.reference(c.symbols[s], now)[0] for s in set(weights) | {s for s, q in holdings.items() if q}}
        missing = sorted(s for s, p in prices.items() if p <= 0)
        if missing:
            raise NoPrice(f"no reference price for {', '.join(missing)}")
        if capital is None:
            capital = int(c.nav[a]) or sum(int(c.book[B_POS, a, i]) * prices[s]
                                            for s, i in c.symbols.items() if s in prices)
        plans.append((account, capital, propose(capital, weights, holdings, prices, lots), holdings, prices))
    orders = [NewOrder(session=session, cl_ord_id="", account=account, symbol=s,
                       side=Side.BUY if delta > 0 else Side.SELL, ord_type=OrdType.MARKET, qty=abs(delta))
              for account, _, trades, _, _ in plans for s, _, delta in trades]
    verdicts = iter(c.check_basket(orders, now))
    out = []
    for account, capital, trades, holdings, prices in plans:
        rows = []
        for s, target, delta in trades:
            v = next(verdicts)
            rows.append(Proposal(account=account, symbol=s, side=Side.BUY if delta > 0 else Side.SELL, qty=abs(delta),
                                 price=prices[s], holding=holdings.get(s, 0), target=target, passed=v.control is None,
                                 control="" if v.control is None else v.control.label, text=v.text,
                                 alerts=[text for _, text in v.alerts]))
        invested = sum(target_qty(capital, w, prices[s], lots.get(s, 1)) * prices[s] for s, w in weights.items())
        out.append(AccountPlan(account=account, capital=capital, invested=invested, proposals=rows))
    return out

