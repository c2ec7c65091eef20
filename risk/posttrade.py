"""Post-trade rules over the whole portfolio (accounts x instruments), in Numba, and
their plain-Python reference.

Values are at marks (fixed point 1e-6): value[a, i] = position x mark. An instrument's
mark is its reference price while that is fresh, else its last fill's price, else its
configured price (`priced`, P_*), else none (0). Ratios are in bps of the account's
NAV. P&L is cash + value: cash moves by every fill (buys pay, sells receive), so busts
and corrections stay exact, and realized plus unrealized P&L since the start is one
figure. A position without a mark (0) counts for
nothing in the P&L, neither its cash nor its value: a loss is never made of a price the
OMS does not have. Sums and products saturate (oms.saturating).

  rule                    figure
  CONCENTRATION           largest |value| of one instrument, bps of NAV
  ISSUER                  largest sum of |value| of one issuer, bps of NAV
  SECTOR                  largest sum of |value| of one sector, bps of NAV
  LEVERAGE                sum of |value| (gross), bps of NAV
  NET                     |sum of value|, bps of NAV
  DAILY_LOSS              loss (-P&L), money
  POSITION                largest |position| over its long or short limit, in shares
Levels: 0 within, 1 warn, 2 hard (figure > warn, > hard; a limit of UNLIMITED is off).
"""
from __future__ import annotations

import enum

import numpy as np
from numba import literally, njit

from oms.saturating import ceil_bps, clamp, fits, largest, plus, sat_sum, times


class Rule(enum.IntEnum):
    CONCENTRATION = 0
    ISSUER = 1
    SECTOR = 2
    LEVERAGE = 3
    NET = 4
    DAILY_LOSS = 5
    POSITION = 6

    @property
    def label(self) -> str:
        return "post_" + self.name.lower()


RULES = len(Rule)
P_TS, P_FILL, P_STATIC = range(3)  # rows of `priced`: when the reference arrived, last fill, configured price


@njit(cache=True, inline="always")
def _mark(ref, priced, since, i):
    if ref[i] > 0 and priced[P_TS, i] >= since:
        return ref[i]
    return priced[P_FILL, i] if priced[P_FILL, i] > 0 else priced[P_STATIC, i]


def mark_prices(ref, priced, since: int) -> tuple[np.ndarray, np.ndarray]:
    """(mark, fresh) of every instrument, as the kernel takes them: references that arrived
    at `since` or later are fresh."""
    fresh = (ref > 0) & (priced[P_TS] >= since)
    fallback = np.where(priced[P_FILL] > 0, priced[P_FILL], priced[P_STATIC])
    return np.where(fresh, ref, fallback), fresh


@njit(cache=True)
def _figures(pos, cash, mk, nav, issuer, sector, long_lim, short_lim, a, n_groups, out, plain):
    """Account a's figures at the marks mk; plain: no step can saturate (oms.saturating)."""
    literally(plain)
    n_i = pos.shape[1]
    by_issuer = np.zeros(n_groups, np.int64)
    by_sector = np.zeros(n_groups, np.int64)
    gross = 0
    net = 0
    top = 0
    pnl = 0
    over = 0
    for i in range(n_i):
        p = pos[a, i]
        v = times(p, mk[i], plain)
        av = abs(v)
        gross = plus(gross, av, plain)
        net = plus(net, v, plain)
        top = max(top, av)
        by_issuer[issuer[i]] = plus(by_issuer[issuer[i]], av, plain)
        by_sector[sector[i]] = plus(by_sector[sector[i]], av, plain)
        if mk[i] > 0 or p == 0:
            pnl = plus(pnl, plus(cash[a, i], v, plain), plain)
        over = max(over, p - long_lim[a, i], -p - short_lim[a, i])
    base = max(nav[a], 1)
    out[0] = ceil_bps(top, base)
    out[1] = ceil_bps(by_issuer.max(), base) if n_groups else 0
    out[2] = ceil_bps(by_sector.max(), base) if n_groups else 0
    out[3] = ceil_bps(gross, base)
    out[4] = ceil_bps(abs(net), base)
    out[5] = -pnl
    out[6] = over


@njit(cache=True)
def evaluate(pos, cash, ref, priced, since, nav, issuer, sector, long_lim, short_lim, warn, hard, account, levels,
             figures):
    """Levels and figures (RULES, A) for one account (account >= 0) or all (-1).
    Accounts without a NAV (0) skip the ratio rules."""
    n_groups = max(issuer.max(), sector.max()) + 1 if issuer.shape[0] else 0
    row = np.zeros(7, np.int64)
    n_i = pos.shape[1]
    mk = np.empty(n_i, np.int64)
    for i in range(n_i):
        mk[i] = _mark(ref, priced, since, i)
    top_px = largest(mk)
    first, last = (account, account + 1) if account >= 0 else (0, pos.shape[0])
    for a in range(first, last):
        # |cash + position x mark| <= big x (mark + 1): n of them in range, no step saturates
        if fits(n_i, max(largest(pos[a]), largest(cash[a])), top_px + 1):
            _figures(pos, cash, mk, nav, issuer, sector, long_lim, short_lim, a, n_groups, row, True)
        else:
            _figures(pos, cash, mk, nav, issuer, sector, long_lim, short_lim, a, n_groups, row, False)
        for r in range(7):
            applies = nav[a] > 0 or r >= 5
            f = row[r] if applies else 0
            figures[r, a] = f
            levels[r, a] = 2 if applies and f > hard[r, a] else 1 if applies and f > warn[r, a] else 0
    return levels


def evaluate_ref(pos, cash, ref, priced, since, nav, issuer, sector, long_lim, short_lim, warn, hard, account: int):
    """Plain Python: {(rule, account): (level, figure)} for the accounts evaluated."""
    accounts = range(len(pos)) if account < 0 else [account]
    ts, fill, static = ([int(x) for x in row] for row in priced)
    ref = [int(r) if r > 0 and t >= since else f if f > 0 else s for r, t, f, s in zip(ref, ts, fill, static)]
    result = {}
    for a in accounts:
        values = [clamp(int(p) * r) for p, r in zip(pos[a], ref)]
        issuers: dict[int, int] = {}
        sectors: dict[int, int] = {}
        for k, v in enumerate(values):
            issuers[int(issuer[k])] = clamp(issuers.get(int(issuer[k]), 0) + abs(v))
            sectors[int(sector[k])] = clamp(sectors.get(int(sector[k]), 0) + abs(v))
        base = max(int(nav[a]), 1)

        def bps(x: int) -> int:
            return clamp(-(-x * 10000 // base))

        counted = [clamp(int(c) + v) for c, v, p, r in zip(cash[a], values, pos[a], ref) if r > 0 or int(p) == 0]
        figures = {
            Rule.CONCENTRATION: bps(max((abs(v) for v in values), default=0)),
            Rule.ISSUER: bps(max(issuers.values(), default=0)),
            Rule.SECTOR: bps(max(sectors.values(), default=0)),
            Rule.LEVERAGE: bps(sat_sum(abs(v) for v in values)),
            Rule.NET: bps(abs(sat_sum(values))),
            Rule.DAILY_LOSS: -sat_sum(counted),
            Rule.POSITION: max([0] + [max(int(p) - int(lo), -int(p) - int(sh))
                                      for p, lo, sh in zip(pos[a], long_lim[a], short_lim[a])]),
        }
        for r, f in figures.items():
            applies = int(nav[a]) > 0 or r >= Rule.DAILY_LOSS
            f = f if applies else 0
            level = 2 if applies and f > int(hard[r][a]) else 1 if applies and f > int(warn[r][a]) else 0
            result[(int(r), a)] = (level, f)
    return result
