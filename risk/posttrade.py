"""Post-trade rules over the whole portfolio (accounts x instruments), in Numba, and
their plain-Python reference.

Values are at the marks the caller gives (fixed point 1e-6): value[a, i] = position x
mark. Ratios are in bps of the account's NAV. P&L is cash + value: cash moves by every
fill (buys pay, sells receive), so busts and corrections stay exact, and realized plus
unrealized P&L since the start is one figure. A position without a mark (0) counts for
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
from numba import njit

from oms.saturating import ceil_bps, clamp, sat_add, sat_mul, sat_sum


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


@njit(cache=True)
def _figures(pos, cash, ref, nav, issuer, sector, long_lim, short_lim, a, n_groups, out):
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
        v = sat_mul(p, ref[i])
        av = abs(v)
        gross = sat_add(gross, av)
        net = sat_add(net, v)
        top = max(top, av)
        by_issuer[issuer[i]] = sat_add(by_issuer[issuer[i]], av)
        by_sector[sector[i]] = sat_add(by_sector[sector[i]], av)
        if ref[i] > 0 or p == 0:
            pnl = sat_add(pnl, sat_add(cash[a, i], v))
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
def evaluate(pos, cash, ref, nav, issuer, sector, long_lim, short_lim, warn, hard, account, levels, figures):
    """Levels and figures (RULES, A) for one account (account >= 0) or all (-1).
    Accounts without a NAV (0) skip the ratio rules."""
    n_groups = max(issuer.max(), sector.max()) + 1 if issuer.shape[0] else 0
    row = np.zeros(7, np.int64)
    first, last = (account, account + 1) if account >= 0 else (0, pos.shape[0])
    for a in range(first, last):
        _figures(pos, cash, ref, nav, issuer, sector, long_lim, short_lim, a, n_groups, row)
        for r in range(7):
            applies = nav[a] > 0 or r >= 5
            f = row[r] if applies else 0
            figures[r, a] = f
            levels[r, a] = 2 if applies and f > hard[r, a] else 1 if applies and f > warn[r, a] else 0
    return levels


def evaluate_ref(pos, cash, ref, nav, issuer, sector, long_lim, short_lim, warn, hard, account: int):
    """Plain Python: {(rule, account): (level, figure)} for the accounts evaluated."""
    accounts = range(len(pos)) if account < 0 else [account]
    result = {}
    for a in accounts:
        values = [clamp(int(p) * int(r)) for p, r in zip(pos[a], ref)]
        issuers: dict[int, int] = {}
        sectors: dict[int, int] = {}
        for k, v in enumerate(values):
            issuers[int(issuer[k])] = clamp(issuers.get(int(issuer[k]), 0) + abs(v))
            sectors[int(sector[k])] = clamp(sectors.get(int(sector[k]), 0) + abs(v))
        base = max(int(nav[a]), 1)

        def bps(x: int) -> int:
            return clamp(-(-x * 10000 // base))

        priced = [clamp(int(c) + v) for c, v, p, r in zip(cash[a], values, pos[a], ref) if int(r) > 0 or int(p) == 0]
        figures = {
            Rule.CONCENTRATION: bps(max((abs(v) for v in values), default=0)),
            Rule.ISSUER: bps(max(issuers.values(), default=0)),
            Rule.SECTOR: bps(max(sectors.values(), default=0)),
            Rule.LEVERAGE: bps(sat_sum(abs(v) for v in values)),
            Rule.NET: bps(abs(sat_sum(values))),
            Rule.DAILY_LOSS: -sat_sum(priced),
            Rule.POSITION: max([0] + [max(int(p) - int(lo), -int(p) - int(sh))
                                      for p, lo, sh in zip(pos[a], long_lim[a], short_lim[a])]),
        }
        for r, f in figures.items():
            applies = int(nav[a]) > 0 or r >= Rule.DAILY_LOSS
            f = f if applies else 0
            level = 2 if applies and f > int(hard[r][a]) else 1 if applies and f > int(warn[r][a]) else 0
            result[(int(r), a)] = (level, f)
    return result
