"""Allocation and rebalancing speed.

Run: pytest benchmarks/test_allocation.py --benchmark-only
- one Allocate command splitting a block by ratio between 100 accounts, at the engine
  (no I/O): the split, the holding controls for every target (one kernel call), the event;
- rebalancing proposals for 1,000 accounts to a 20-symbol model over 500 instruments,
  checked as one basket: the snapshot the engine's thread takes (all it is held up
  for), and the proposals computed from it off that thread.
"""
from __future__ import annotations

import itertools
import random

from oms.engine import Engine, ReferenceData, SequentialIds
from oms.fixed import PRICE_SCALE, to_price
from oms.model import (
    Account, Allocate, AllocationBooked, AllocationTarget, ExecType, Instrument, NewOrder, OrdType, Side,
    VenueExecReport,
)
from oms.rebalance import proposals
from risk.kernel import B_POS

ACCOUNTS = [f"A{k}" for k in range(1000)]
SYMBOLS = [f"S{k}" for k in range(500)]


def engine() -> Engine:
    ref = ReferenceData(
        instruments={s: Instrument(s, tick_size=to_price("0.01")) for s in SYMBOLS},
        accounts={a: Account(a) for a in ["BLOCK", *ACCOUNTS]}, venues=("V1",), default_venue="V1",
        entitlements={"DESK": frozenset({"BLOCK"})}, ref_prices={s: to_price(str(10 + k)) for k, s in enumerate(SYMBOLS)})
    return Engine(ref, clock=lambda: 1, ids=SequentialIds())


def filled_block(e: Engine, qty: int) -> str:
    child = e.handle(NewOrder(session="DESK", cl_ord_id="B", account="BLOCK", symbol="S1", side=Side.BUY,
                              ord_type=OrdType.LIMIT, qty=qty, price=to_price("11")))[-1]
    e.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id="f", exec_type=ExecType.TRADE,
                             last_qty=qty, last_px=to_price("10.99")))
    return child.order_id


def test_allocate_a_block_to_100_accounts(benchmark):
    e = engine()
    order_id = filled_block(e, 10**9)
    targets = tuple(AllocationTarget(a, k + 1) for k, a in enumerate(ACCOUNTS[:100]))
    n = itertools.count()

    def allocate() -> None:
        ev = e.handle(Allocate(user="pm", alloc_id=f"a{next(n)}", order_id=order_id, method="ratio", qty=5050,
                               targets=targets))
        assert type(ev[0]) is AllocationBooked

    benchmark.pedantic(allocate, rounds=2000, iterations=1, warmup_rounds=50)


def test_rebalance_proposals_1000_accounts(benchmark):
    c = engine().compliance
    rnd = random.Random(7)

    for a in range(1, 1001):  # each account holds 30 of the 500 instruments
        for i in rnd.sample(range(500), 30):
            c.book[B_POS, a, i] = rnd.randrange(1, 5000)
    weights = {s: PRICE_SCALE // 25 for s in rnd.sample(SYMBOLS, 20)}  # 20 x 4%
    accounts = {a: to_price("1000000") for a in ACCOUNTS}
    lots = {s: 1 for s in SYMBOLS}
    plans = benchmark.pedantic(lambda: proposals(c.snapshot(), lots, accounts, weights, 1, "API:pm", None, "V1"), rounds=5,
                               iterations=1, warmup_rounds=1)
    benchmark.extra_info["orders_proposed"] = sum(len(p.proposals) for p in plans)


def test_rebalance_snapshot_1000_accounts(benchmark):
    """What a rebalance holds the engine up for: one copy of the compliance arena
    (1,001 accounts x 500 instruments, 80 MB)."""
    benchmark.pedantic(engine().compliance.snapshot, rounds=20, iterations=1, warmup_rounds=2)
