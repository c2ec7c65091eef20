"""Journal speed: durable appends with group commit, and one fsync'd commit.

Run: pytest benchmarks/test_journal.py --benchmark-only
Events are real encoded ExecutionReports (about 200 bytes), fsync on.
"""
from __future__ import annotations

from oms.journal import Journal
from oms.model import EVENT_ENCODER, ExecType, ExecutionReport, OrdStatus, Side

GROUP = 1000
EVENT = EVENT_ENCODER.encode(ExecutionReport(
    ts=1_700_000_000_000_000_000, order_id="1-123456", exec_id="1-123457", exec_type=ExecType.TRADE,
    ord_status=OrdStatus.PARTIALLY_FILLED, session="CLIENT1", account="DEMO1", symbol="AAPL",
    side=Side.BUY, cl_ord_id="ORD-2026-11-25-000123",
    orig_cl_ord_id=None, order_qty=10000, cum_qty=2000, leaves_qty=8000, cum_value=200_020_000_000,
    last_qty=2000, last_px=100_010_000, price=100_050_000))


def test_group_commit_throughput(benchmark, tmp_path):
    """One round = 1000 events appended and committed durably; events/s = 1000 * OPS."""
    journal = Journal(tmp_path / "j.db")
    group = [EVENT] * GROUP

    def commit_group() -> None:
        journal.append(group)
        journal.commit()

    benchmark.pedantic(commit_group, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info["events_per_round"] = GROUP
    benchmark.extra_info["event_bytes"] = len(EVENT)
    journal.close()


def test_single_event_fsync_commit(benchmark, tmp_path):
    journal = Journal(tmp_path / "j.db")

    def commit_one() -> None:
        journal.append([EVENT])
        journal.commit()

    benchmark.pedantic(commit_one, rounds=500, iterations=1, warmup_rounds=10)
    journal.close()
