"""Engine speed: a new order -> venue ack -> fill cycle, three commands, no I/O.

Run: pytest benchmarks/test_engine.py --benchmark-only
The figure for the README is the median per command (the cycle's median / 3).
"""
from __future__ import annotations

import itertools

from oms.engine import Engine, SequentialIds
from oms.model import ExecType, NewOrder, OrdType, Side, VenueExecReport
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
