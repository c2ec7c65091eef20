"""Matching core speed: a 1,000,000-operation mixed stream in one batch, single operations
from Python, and the same stream on the pure-Python reference.

Run: pytest benchmarks/test_matching.py --benchmark-only
The README's figures: operations per second = 1,000,000 / batch median; single-operation
medians in µs; speed-up = reference time / batch median (printed by the last test).
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from oms.matching import BUY, DAY, IOC, OP_ADD, OP_CANCEL, SELL, Book
from oms.matching_codes import BookError
from oms.matching_ref import RefBook

N = 1_000_000
MID, TICK = 100_000_000, 10_000  # 100.00 with a 0.01 tick, fixed point 1e6


def mixed_stream(n: int, seed: int = 7) -> np.ndarray:
    """60% passive adds near the touch, 25% cancels of recent orders, 15% IOC orders 3 ticks through."""
    rng = np.random.default_rng(seed)
    ops = np.zeros((n, 7), np.int64)
    u = rng.random(n)
    side = rng.integers(0, 2, n)
    ops[:, 1] = np.arange(n)
    ops[:, 2] = side
    ops[:, 4] = rng.integers(1, 11, n) * 100
    sign = np.where(side == BUY, -1, 1)
    passive = u < 0.60
    cancel = (u >= 0.60) & (u < 0.85)
    aggressive = u >= 0.85
    ops[passive, 0] = OP_ADD
    ops[passive, 3] = MID + sign[passive] * (1 + rng.geometric(0.3, passive.sum())) * TICK
    ops[passive, 5] = DAY
    ops[aggressive, 0] = OP_ADD
    ops[aggressive, 3] = MID - sign[aggressive] * 3 * TICK
    ops[aggressive, 5] = IOC
    ops[cancel, 0] = OP_CANCEL
    back = rng.integers(1, 2000, cancel.sum())
    ops[cancel, 1] = np.maximum(0, np.flatnonzero(cancel) - back)
    ops[:, 6] = rng.integers(2, 50, n)  # owners, so self-trade checks run
    return ops


def run_reference(ops: np.ndarray) -> int:
    book, fills = RefBook(), 0
    for kind, oid, side, price, qty, tif, owner in ops.tolist():
        if kind == OP_CANCEL:
            book.cancel(oid)
            continue
        try:
            fills += len(book.add(oid, side, price, qty, tif, owner).fills)
        except BookError:
            pass
    return fills


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    ops = mixed_stream(N)
    Book().batch(ops[:1000])  # compile or load the cache outside the timing
    return ops


def test_batch_one_million_mixed(benchmark, stream):
    res = benchmark.pedantic(lambda book: book.batch(stream), setup=lambda: ((Book(capacity=1 << 16),), {}),
                             rounds=5, iterations=1)
    benchmark.extra_info["operations"] = N
    benchmark.extra_info["fills"] = int((res.rows[:, 1] == 0).sum())


def test_single_passive_add(benchmark):
    book, ids = Book(capacity=1 << 20), itertools.count()
    book.add(next(ids), BUY, MID, 100)
    benchmark.pedantic(lambda: book.add(next(ids), BUY, MID - (next(ids) % 50) * TICK, 100),
                       rounds=200_000, iterations=1, warmup_rounds=1000)


def test_single_cancel(benchmark):
    book = Book(capacity=1 << 20)
    book.batch(np.array([[OP_ADD, i, SELL, MID + (i % 50) * TICK, 100, DAY, 0] for i in range(210_000)]))
    ids = itertools.count()
    benchmark.pedantic(lambda: book.cancel(next(ids)), rounds=200_000, iterations=1, warmup_rounds=1000)


def test_single_aggressive_fill(benchmark):
    book, ids = Book(capacity=1 << 20), itertools.count(1_000_000)
    book.batch(np.array([[OP_ADD, i, SELL, MID + (i % 20) * TICK, 100, DAY, 0] for i in range(210_000)]))
    benchmark.pedantic(lambda: book.add(next(ids), BUY, MID + 20 * TICK, 100, IOC),
                       rounds=200_000, iterations=1, warmup_rounds=1000)


def test_reference_same_stream(benchmark, stream):
    """The pure-Python reference on the same 1M stream, once; prints the speed-up."""
    benchmark.pedantic(run_reference, args=(stream,), rounds=1, iterations=1)
    t0 = time.perf_counter()
    Book(capacity=1 << 16).batch(stream)
    fast = time.perf_counter() - t0
    ref = benchmark.stats.stats.median
    benchmark.extra_info["batch_s"] = fast
    benchmark.extra_info["speedup"] = ref / fast
    print(f"\nreference {ref:.2f} s, batch {fast * 1e3:.1f} ms, speed-up {ref / fast:.0f}x")
