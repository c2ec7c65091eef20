"""What an end of day leaves behind when the OMS stops right after it: the snapshot the
DayEnded requested (a stop that overtakes it in the engine's queue waits for it), and, with
`[reports] at = "end_of_day"`, the trading date's reports in <run_dir>/reports/<date>/."""
from __future__ import annotations

import csv
import datetime as dt
import threading
import time
from pathlib import Path

from oms.model import EndOfDay, NewOrder, OrdType, Side, StartOfDay
from oms.runtime import Runtime, open_engine
from oms.snapshot import directory
from oms.system import System
from tests.harness import px
from tests.test_snapshot import CONFIG, config


def test_a_stop_right_after_a_day_end_still_writes_its_snapshot(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    engine, journal = open_engine(cfg, tmp_path)
    runtime = Runtime(engine, journal, cfg)
    runtime.start()
    runtime.submit(StartOfDay(user="ops", date="2026-12-23"))
    runtime.submit(EndOfDay(user="ops"))
    runtime.stop()  # queued behind the EndOfDay, ahead of the snapshot its commit requests
    snaps = list(directory(cfg.journal_path(tmp_path)).glob("*.snapshot"))
    assert len(snaps) == 1
    engine2, journal2 = open_engine(cfg, tmp_path)
    with journal2:
        assert engine2.base_seq == int(snaps[0].stem) == journal2.last_seq  # nothing left to replay
        assert (engine2.state.day, engine2.state.day_open) == ("2026-12-23", False)


# the snapshot tests' OMS, with the reports cut at each end of day and its journal kept whole (reading archived
# records is not what this tests)
REPORTS = CONFIG.replace("fsync = false\n", "fsync = false\narchive = false\n", 1) + """
[api]
enabled = false
[reports]
at = "end_of_day"
reports = ["blotter"]
"""


def test_an_operator_s_end_of_day_cuts_that_trading_date_s_reports(tmp_path: Path) -> None:
    cfg = config(tmp_path, REPORTS)
    s = System(cfg, tmp_path, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    try:
        s.runtime.submit(StartOfDay(user="ops"))  # today's date (UTC: no calendar)
        s.runtime.submit(NewOrder(session="C1", cl_ord_id="R1", account="A", symbol="AAPL", side=Side.BUY,
                                  ord_type=OrdType.LIMIT, qty=100, price=px("100")))
        s.runtime.submit(EndOfDay(user="ops", reason="close"))
        # the next trading date, started and ended today: its reports cover its own date, which has no events
        s.runtime.submit(StartOfDay(user="ops"))
        s.runtime.submit(EndOfDay(user="ops", reason="close"))
    finally:
        s.stop()  # after the commands queued before it, and the reports they made due
    assert s.end_of_day is not None
    (first, code), (second, empty) = s.end_of_day.runs
    assert second == (dt.date.fromisoformat(first) + dt.timedelta(days=1)).isoformat() and (code, empty) == (0, 2)
    out = tmp_path / "run" / "reports" / first
    assert sorted(p.name for p in out.iterdir()) == [f"executions-{first}.csv", f"orders-{first}.csv"]
    with open(out / f"orders-{first}.csv") as f:
        orders = list(csv.DictReader(f))
    assert [(o["cl_ord_id"], o["status"]) for o in orders][:1] == [("R1", "DONE_FOR_DAY")]
    assert not (tmp_path / "run" / "reports" / second).exists()


def _stuck(*_args) -> None:
    """An end-of-day report run that never finishes (a child of its own)."""
    threading.Event().wait()


def test_a_stop_waits_for_the_day_s_reports_but_not_for_ever(tmp_path: Path) -> None:
    from oms.model import DayEnded
    from oms.reporting.schedule import EndOfDay as Reports

    cfg = config(tmp_path, REPORTS)
    reports = Reports(cfg, cfg.journal_path(tmp_path), tmp_path / "reports")
    reports._target = _stuck
    reports.start()
    reports.on_events([DayEnded(ts=1, date="2026-12-23"), DayEnded(ts=2, date="2026-12-24")])
    t0 = time.monotonic()
    reports.stop(timeout=2.0)
    assert time.monotonic() - t0 < 12  # the run under way ended, the next one never started
    assert [date for date, code in reports.runs] == ["2026-12-23"] and reports.runs[0][1] != 0
