"""What journaling the consolidated best bid and offer costs per quote.

A quote that moves the best bid or offer of its symbol across venues becomes a BestPrice
event (engine) and a journal record (runtime, in the group commit of its batch); one that
does not is conflated away. Run: pytest benchmarks/test_quotes.py --benchmark-only
"""
from __future__ import annotations

import itertools

from oms.engine import Engine, SequentialIds
from oms.journal import Journal
from oms.model import EVENT_ENCODER, BestPrice, MarketData
from tests.harness import REF


def _engine() -> Engine:
    engine = Engine(REF, clock=lambda: 1, ids=SequentialIds())
    engine.bind_history(lambda: ())
    engine.handle(MarketData(symbol="AAPL", venue="V2", bid=99_000_000, ask=101_000_000))
    return engine


def test_quote_that_moves_the_best_price(benchmark):
    engine, n = _engine(), itertools.count()

    def quote() -> None:
        k = next(n) % 2
        assert engine.handle(MarketData(symbol="AAPL", venue="V1", bid=99_990_000 + k * 10_000,
                                        ask=100_010_000 + k * 10_000))

    benchmark.pedantic(quote, rounds=20000, iterations=1, warmup_rounds=1000)


def test_quote_that_leaves_the_best_price(benchmark):
    engine = _engine()
    q = MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000)
    engine.handle(q)

    def quote() -> None:
        assert not engine.handle(q)

    benchmark.pedantic(quote, rounds=20000, iterations=1, warmup_rounds=1000)


def test_journal_record_of_a_best_price(benchmark, tmp_path):
    """Encoding and staging one BestPrice record in a group (100 per commit, fsync'd)."""
    journal = Journal(tmp_path / "j.db")
    ev = BestPrice(ts=1_764_489_600_000_000_000, symbol="AAPL", bid=99_990_000, ask=100_010_000)
    n = itertools.count(1)

    def record() -> None:
        journal.append([EVENT_ENCODER.encode(ev)])
        if next(n) % 100 == 0:
            journal.commit()

    benchmark.pedantic(record, rounds=20000, iterations=1, warmup_rounds=100)
    benchmark.extra_info["bytes"] = len(EVENT_ENCODER.encode(ev))
    journal.commit()
    journal.close()
