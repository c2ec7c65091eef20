"""Rebalancing arithmetic: targets never spend more than their weight of the capital and
fall short of it by less than a lot; trades reach the targets; what the model leaves out
is sold out."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oms.fixed import PRICE_SCALE
from oms.rebalance import propose, target_qty

SYMBOLS = ["A", "B", "C", "D", "E"]
models = st.dictionaries(st.sampled_from(SYMBOLS), st.integers(1, PRICE_SCALE // 5), max_size=5)
books = st.dictionaries(st.sampled_from(SYMBOLS), st.integers(-10**6, 10**6), max_size=5)
prices = st.fixed_dictionaries({s: st.integers(1, 10**10) for s in SYMBOLS})
lots = st.fixed_dictionaries({s: st.sampled_from([1, 10, 100]) for s in SYMBOLS})


fx = st.fixed_dictionaries({s: st.integers(1, 10 * PRICE_SCALE) for s in SYMBOLS})


@given(st.integers(1, 10**15), models, books, prices, lots, fx)
def test_trades_reach_whole_lot_targets_within_the_capital(capital, weights, holdings, px, lot, rate):
    """rate: each symbol's currency in the capital's; the budget is weight x capital in the
    capital's currency, the target's value is converted into it."""
    trades = {s: (target, delta) for s, target, delta in propose(capital, weights, holdings, px, lot, rate)}
    for s in SYMBOLS:
        budget = capital * weights.get(s, 0)  # scaled by PRICE_SCALE
        target = target_qty(capital, weights[s], px[s], lot[s], rate[s]) if s in weights else 0
        assert target % lot[s] == 0
        if s in weights:  # never over its weight, short of it by less than one lot
            assert target * px[s] * rate[s] <= budget < (target + lot[s]) * px[s] * rate[s]
        held = holdings.get(s, 0)
        after = held + trades.get(s, (target, 0))[1]
        assert abs(after - target) < lot[s] and trades.get(s, (0, 0))[1] % lot[s] == 0  # whole lots
        if target == 0:
            assert after == (1 if held > 0 else -1) * (abs(held) % lot[s])  # out of the model: all but an odd lot
    assert all(delta for _t, delta in trades.values())
