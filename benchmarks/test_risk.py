"""Compliance speed: one pre-trade check from Python, a basket in one kernel call, the
same basket on the plain-Python reference, and a full post-trade evaluation.

Run: pytest benchmarks/test_risk.py --benchmark-only -s
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from risk.controls import KERNEL_CONTROLS, UNLIMITED, Control
from risk.kernel import check_one, check_orders, check_orders_ref, new_arena, views
from risk.posttrade import RULES, evaluate

ACCOUNTS, INSTRUMENTS, BASKET = 50, 500, 10_000


@pytest.fixture(scope="module")
def arena():
    rng = np.random.default_rng(3)
    a = new_arena(ACCOUNTS, INSTRUMENTS)
    lim, soft, book, acct, inst = views(a)
    lim[:] = UNLIMITED
    lim[Control.PRICE_MIN] = 0
    lim[Control.MAX_QTY] = 50_000
    lim[Control.POSITION_LONG] = 1_000_000
    lim[Control.CREDIT] = 10**9 * 10**6
    soft[:] = 8000
    book[0] = rng.integers(-1000, 1000, (ACCOUNTS, INSTRUMENTS))
    inst[0] = rng.integers(10, 500, INSTRUMENTS) * 10**6
    return a


@pytest.fixture(scope="module")
def basket():
    rng = np.random.default_rng(4)
    rows = np.zeros((BASKET, 7), np.int64)
    rows[:, 0] = rng.integers(0, ACCOUNTS, BASKET)
    rows[:, 1] = rng.integers(0, INSTRUMENTS, BASKET)
    rows[:, 2] = rng.choice([1, -1], BASKET)
    rows[:, 4] = rng.integers(1, 100, BASKET) * 100
    rows[:, 5] = rng.integers(10, 500, BASKET) * 10**6
    return rows


def test_single_check(benchmark, arena):
    check_one(arena, 1, 2, 1, 0, 100, 100 * 10**6, 0)
    benchmark.pedantic(check_one, args=(arena, 1, 2, 1, 0, 100, 100 * 10**6, 0), rounds=100_000, warmup_rounds=1000)


def test_basket(benchmark, arena, basket):
    out = np.zeros((BASKET, 4), np.int64)
    check_orders(arena, basket[:2], out, 0, True)
    benchmark.pedantic(lambda: check_orders(arena, basket, out, 0, True), rounds=20, iterations=1)
    benchmark.extra_info["orders"] = BASKET


def test_basket_reference(benchmark, arena, basket):
    """The reference on the first 200 orders of the basket (it is O(A x I) per order)."""
    small = basket[:200]
    views_ = views(arena)
    benchmark.pedantic(check_orders_ref, args=(small, *views_), rounds=1, iterations=1)
    out = np.zeros((200, 4), np.int64)
    t0 = time.perf_counter()
    for _ in range(10):
        check_orders(arena, small, out, 0, True)
    fast = (time.perf_counter() - t0) / 10
    print(f"\nreference {benchmark.stats.stats.median * 1e3:.1f} ms, kernel {fast * 1e3:.3f} ms for 200 orders: "
          f"{benchmark.stats.stats.median / fast:.0f}x")


def test_post_trade_full_portfolio(benchmark, arena):
    lim, _soft, book, _acct, inst = views(arena)
    cash = np.zeros((ACCOUNTS, INSTRUMENTS), np.int64)
    nav = np.full(ACCOUNTS, 10**7 * 10**6, np.int64)
    groups = np.arange(INSTRUMENTS, dtype=np.int64) % 20
    warn = np.full((RULES, ACCOUNTS), 1000, np.int64)
    levels = np.zeros((RULES, ACCOUNTS), np.int64)
    figures = np.zeros((RULES, ACCOUNTS), np.int64)
    priced = np.zeros((3, INSTRUMENTS), np.int64)  # every reference is fresh
    args = (book[0], cash, inst[0], priced, 0, nav, groups, groups % 5, lim[Control.POSITION_LONG],
            lim[Control.POSITION_SHORT], warn, warn * 2, -1, levels, figures)
    evaluate(*args)
    benchmark.pedantic(evaluate, args=args, rounds=200, warmup_rounds=5)
    assert KERNEL_CONTROLS == 15
