"""Mark-to-market of 1,000 accounts x 5,000 instruments: a batch of 100 price updates
(incremental, only their columns), and a full re-mark.

Run: pytest benchmarks/test_positions.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from oms.positions import apply_prices, mark_to_market

ACCOUNTS, INSTRUMENTS, BATCH = 1_000, 5_000, 100


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(5)
    qty = rng.integers(-1_000, 1_000, (ACCOUNTS, INSTRUMENTS))
    marks = rng.integers(10, 500, INSTRUMENTS) * 10**6
    cost = qty * marks
    rates = np.where(rng.random((ACCOUNTS, INSTRUMENTS)) < 0.1, 1_080_000, 1_000_000).astype(np.int64)
    unrealized = np.zeros((ACCOUNTS, INSTRUMENTS), np.int64)
    totals = np.zeros(ACCOUNTS, np.int64)
    mark_to_market(qty, cost, marks, rates, unrealized, totals)
    return qty, cost, marks, rates, unrealized, totals, rng


def test_batch_of_price_updates(benchmark, book):
    qty, cost, marks, rates, unrealized, totals, rng = book
    columns = rng.choice(INSTRUMENTS, BATCH, replace=False).astype(np.int64)
    new = marks[columns] + rng.integers(-5, 5, BATCH) * 10_000
    apply_prices(qty, cost, marks, rates, unrealized, totals, columns, new)
    benchmark.pedantic(apply_prices, args=(qty, cost, marks, rates, unrealized, totals, columns, new),
                       rounds=200, warmup_rounds=5)
    benchmark.extra_info["positions"] = ACCOUNTS * INSTRUMENTS


def test_full_mark_to_market(benchmark, book):
    qty, cost, marks, rates, unrealized, totals, _rng = book
    benchmark.pedantic(mark_to_market, args=(qty, cost, marks, rates, unrealized, totals), rounds=20, warmup_rounds=2)
