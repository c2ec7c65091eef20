"""Engine speed: a new order -> venue ack -> fill cycle, three commands, no I/O.

Run: pytest benchmarks/test_engine.py --benchmark-only
The figure for the README is the median per command (the cycle's median / 3).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import msgspec
import numpy as np

from oms.engine import Engine, SequentialIds
from oms.model import ExecType, MarketData, NewOrder, OrdType, Side, VenueExecReport
from tests.harness import REF, SESSION


def test_new_ack_fill_cycle(benchmark):
    engine = Engine(REF, clock=lambda: 1, ids=SequentialIds())
    n = itertools.count()

    def cycle() -> None:
        i = next(n)
        child = engine.handle(NewOrder(session=SESSION, cl_ord_id=f"c{i}", account="ACC1", symbol="AAPL",
                                       side=Side.BUY, ord_type=OrdType.LIMIT, qty=100, price=100_000_000))[-1]
        engine.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"a{i}", exec_type=ExecType.NEW))
        engine.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{i}",
                                      exec_type=ExecType.TRADE, last_qty=100, last_px=100_000_000))

    benchmark.pedantic(cycle, rounds=20000, iterations=1, warmup_rounds=1000)
    benchmark.extra_info["commands_per_round"] = 3


def _demo_cycle() -> Callable[[], None]:
    """The cycle on an engine with the embedded default's limits and post-trade rules switched on."""
    from oms.config import DEFAULT_CONFIG, load

    cfg = load(DEFAULT_CONFIG)
    # the default's rules for one account; throttles, duplicates and the daily credit are left out
    # because 20,000 identical cycles at one clock reading would trip them
    risk = msgspec.structs.replace(
        cfg.risk, duplicate_window_ms=0, throttle_new_per_s=0, repeated_execution_max=0, locates=[],
        restricted_by_account={}, nav={"ACC1": "1000000000"},
        limits=[r for r in cfg.risk.limits if r.control != "credit"],
    )
    engine = Engine(REF, clock=lambda: 1, ids=SequentialIds(), risk=risk)
    engine.handle(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    n = itertools.count()

    def cycle() -> None:
        i = next(n)
        side = Side.BUY if i % 2 else Side.SELL  # keeps the position flat, inside every limit
        child = engine.handle(NewOrder(session=SESSION, cl_ord_id=f"c{i}", account="ACC1", symbol="AAPL",
                                       side=side, ord_type=OrdType.LIMIT, qty=100, price=100_000_000))[-1]
        engine.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"a{i}", exec_type=ExecType.NEW))
        engine.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{i}",
                                      exec_type=ExecType.TRADE, last_qty=100, last_px=100_000_000))

    return cycle


def test_new_ack_fill_cycle_with_demo_compliance(benchmark):
    """The same cycle with the embedded default's limits and post-trade rules switched on."""
    benchmark.pedantic(_demo_cycle(), rounds=20000, iterations=1, warmup_rounds=1000)
    benchmark.extra_info["commands_per_round"] = 3


def test_new_ack_fill_cycle_cold_caches(benchmark):
    """The same with 16 MB written before each cycle, untimed: in the running OMS other threads and
    processes run between two orders and leave the caches cold (README, "The FIX path")."""
    memory = np.zeros(16 << 20, dtype=np.uint8)

    def evict() -> None:
        memory[::64] += 1  # a cache line at a time

    benchmark.pedantic(_demo_cycle(), setup=evict, rounds=5000, iterations=1, warmup_rounds=500)
    benchmark.extra_info["commands_per_round"] = 3
