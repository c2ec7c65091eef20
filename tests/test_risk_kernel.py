"""The pre-trade kernel equals its plain-Python reference on random state and baskets."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from risk.controls import KERNEL_CONTROLS, UNLIMITED, Control
from risk.kernel import check_orders, check_orders_ref, new_arena, views


PRICE, BIG_MONEY = 10**5, 10**9  # limits drawn up to 2,000 of these: prices to 200, money to 2bn
MONEY_UNIT = {Control.PRICE_MIN: PRICE, Control.PRICE_MAX: PRICE, Control.MAX_NOTIONAL: BIG_MONEY,
              Control.CREDIT: BIG_MONEY, Control.GROSS_EXPOSURE: BIG_MONEY, Control.NET_EXPOSURE: BIG_MONEY,
              Control.FIRM_GROSS: BIG_MONEY}


@st.composite
def cases(draw):
    accounts, instruments = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    small = st.integers(0, 2_000)
    lim = np.full((KERNEL_CONTROLS, accounts, instruments), UNLIMITED, np.int64)
    lim[Control.PRICE_MIN] = 0
    for c in range(KERNEL_CONTROLS):
        unit = MONEY_UNIT.get(c, 1)
        for a in range(accounts):
            for i in range(instruments):
                if draw(st.booleans()):
                    lim[c, a, i] = draw(small) * unit
    soft = np.array([draw(st.sampled_from([0, 5000, 8000, 10000])) for _ in range(KERNEL_CONTROLS)], np.int64)
    book = np.array([[[draw(st.integers(-500, 500) if p == 0 else small) for _ in range(instruments)]
                      for _ in range(accounts)] for p in range(5)], np.int64)
    acct = np.array([[draw(small) * 10**6 for _ in range(accounts)], [draw(small) * 10**6 for _ in range(accounts)],
                     [draw(st.integers(0, 20)) for _ in range(accounts)],
                     [draw(st.integers(-2_000, 2_000)) * 10**6 for _ in range(accounts)]], np.int64)
    inst = np.array([[draw(st.sampled_from([0, 50 * 10**6, 100 * 10**6])) for _ in range(instruments)],
                     [draw(st.sampled_from([0, 10_000, 1_000_000])) for _ in range(instruments)]], np.int64)
    n = draw(st.integers(1, 6))
    orders = np.array([[draw(st.integers(0, accounts - 1)), draw(st.integers(0, instruments - 1)),
                        draw(st.sampled_from([1, -1])), draw(st.integers(0, 1)), draw(st.integers(1, 1_500)),
                        draw(st.integers(1, 200)) * 10**6, draw(st.integers(0, 1))] for _ in range(n)], np.int64)
    orders[orders[:, 2] > 0, 3] = 0  # only sells are short
    return orders, lim, soft, book, acct, inst


@given(cases(), st.integers(0, (1 << 15) - 1), st.booleans())
def test_kernel_equals_reference(case, skip, restore):
    """Equal decisions, whichever controls are skipped; a restoring check leaves the arena
    exactly as it found it."""
    orders, lim, soft, book, acct, inst = case
    expected = check_orders_ref(orders, lim, soft, book, acct, inst, skip)
    arena = new_arena(lim.shape[1], lim.shape[2])
    for view, drawn in zip(views(arena), (lim, soft, book, acct, inst)):
        view[:] = drawn
    before = arena.copy()
    out = np.zeros((len(orders), 4), np.int64)
    check_orders(arena, orders, out, skip, restore)
    assert [tuple(int(x) for x in r) for r in out] == expected
    assert np.array_equal(arena, before) == (restore or not any(r[0] == -1 for r in expected[:-1]))
