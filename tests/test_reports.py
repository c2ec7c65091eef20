"""Reports from the journal: a small scripted day with known quotes and fills, whose TCA
figures are worked out here by hand; P&L against the positions stream's own code; bad input."""
from __future__ import annotations

import datetime as dt
import re
import time
import sqlite3
from decimal import Decimal
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pytest

from oms import reporting
from oms.config import AccountConfig, Config, InstrumentConfig, SimConfig, VenueConfig
from oms.journal import Journal
from oms.model import EVENT_DECODER, EVENT_ENCODER, SCHEMA, BestPrice, ExecType, MarketData, Side
from oms.positions import Book
from oms.reporting import tables
from oms.reporting.facts import ReportError
from tests.harness import Desk, px

DAY = "2026-11-30"
T0 = int(dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc).timestamp()) * 10**9
S = 10**9
CFG = Config(
    venues=[VenueConfig(name=v, sim=SimConfig(enabled=False)) for v in ("V1", "V2")], default_venue="V1",
    instruments=[InstrumentConfig(symbol=s) for s in ("AAPL", "MSFT", "SPY", "ES", "BOND")],
    accounts=[AccountConfig(id=a) for a in ("ACC1", "ACC2", "OTHER")],
)


def _venue(d: Desk, cl: str, exec_id: str, exec_type: ExecType, qty: int = 0, price: str = "0") -> None:
    """A venue report with its own ExecID, as a venue would resend it after a restart."""
    d._venue(cl, exec_type, exec_id=exec_id, last_qty=qty, last_px=px(price))


def at(seconds: float, action: Callable[[Desk], object]) -> Callable[[Desk], None]:
    def step(d: Desk) -> None:
        d.now = T0 + int(seconds * S)
        action(d)
    return step


# Known quotes and fills (seconds after 10:00 UTC):
# 0       V1 99.98/100.02, V2 99.99/100.03   -> best 99.99/100.02, mid 100.005
# 1       A1 buy 300 AAPL limit 100.05, acked
# 2       A1 fill 100 @ 100.01
# 2.5     V1 100.00/100.04                   -> best 100.00/100.03, mid 100.015
# 3       A1 fill 200 @ 100.03 (filled)
# 10      V2 100.09/100.13, V1 100.10/100.14 -> best 100.10/100.13, mid 100.115
# 20      B1 sell 100 AAPL (ACC2) market, acked at 20.5, 60 @ 100.09 at 21; canceled at 30
# 90      V1 100.20/100.24                   -> best 100.20/100.13 (crossed across venues), mid 100.165
STEPS = [
    at(0, lambda d: d.run(MarketData(symbol="AAPL", venue="V1", bid=px("99.98"), ask=px("100.02")))),
    at(0, lambda d: d.run(MarketData(symbol="AAPL", venue="V2", bid=px("99.99"), ask=px("100.03")))),
    at(1, lambda d: d.nos("A1", 300, "100.05")),
    at(1, lambda d: _venue(d, "A1", "E1", ExecType.NEW)),
    at(2, lambda d: _venue(d, "A1", "E2", ExecType.TRADE, 100, "100.01")),
    at(2.5, lambda d: d.run(MarketData(symbol="AAPL", venue="V1", bid=px("100.00"), ask=px("100.04")))),
    at(3, lambda d: _venue(d, "A1", "E3", ExecType.TRADE, 200, "100.03")),
    at(10, lambda d: d.run(MarketData(symbol="AAPL", venue="V2", bid=px("100.09"), ask=px("100.13")))),
    at(10, lambda d: d.run(MarketData(symbol="AAPL", venue="V1", bid=px("100.10"), ask=px("100.14")))),
    at(20, lambda d: d.nos("B1", 100, None, ord_type="1", side=Side.SELL, account="ACC2")),
    at(20.5, lambda d: _venue(d, "B1", "E4", ExecType.NEW)),
    at(21, lambda d: _venue(d, "B1", "E5", ExecType.TRADE, 60, "100.09")),
    at(30, lambda d: d.cancel("B2", "B1")),
    at(30, lambda d: _venue(d, "B1", "E6", ExecType.CANCELED)),
    at(90, lambda d: d.run(MarketData(symbol="AAPL", venue="V1", bid=px("100.20"), ask=px("100.24")))),
]


def scripted_day(d: Desk) -> None:
    for step in STEPS:
        step(d)


def write_journal(path: Path, events) -> Path:
    with Journal(path, fsync=False) as j:
        j.append([EVENT_ENCODER.encode(ev) for ev in events])
        j.commit()
    return path


@pytest.fixture
def day(tmp_path: Path) -> Path:
    d = Desk()
    scripted_day(d)
    return write_journal(tmp_path / "journal.db", d.events)


def _d(text: str) -> Decimal:
    return Decimal(text)


def test_tca_by_hand(day: Path) -> None:
    facts = reporting.make(CFG, day, DAY)
    t = {r["cl_ord_id"]: r for r in tables.tca_orders(facts).to_pylist()}
    a, b = t["A1"], t["B1"]
    # A1: arrival mid 100.005; average (100 x 100.01 + 200 x 100.03) / 300 = 100.02333...
    assert a["arrival_mid"] == _d("100.005000")
    value, qty, mid = 100 * 100_010_000 + 200 * 100_030_000, 300, 100_005_000
    assert a["arrival_slippage_bps"] == (value - mid * qty) * 10_000 / (mid * qty)
    assert a["arrival_slippage_bps"] == pytest.approx(1.8332, abs=1e-4)  # bought above the mid: a cost
    # interval VWAP, 1 s to 3 s: only A1's own fills -> no slippage against it
    assert a["interval_vwap"] == _d("100.0233333333") and a["vwap_slippage_bps"] == 0.0
    assert a["fill_rate"] == 1.0 and a["first_fill_us"] == 1_000_000 and a["complete_us"] == 2_000_000
    # B1: sold 60 of 100 at 100.09 against the mid 100.115 at 20 s: 2.497 bps below it, a cost
    assert b["arrival_mid"] == _d("100.115000")
    assert b["arrival_slippage_bps"] == -1 * (60 * 100_090_000 - 100_115_000 * 60) * 10_000 / (100_115_000 * 60)
    assert b["fill_rate"] == 0.6 and b["first_fill_us"] == 1_000_000 and b["complete_us"] == 10_000_000
    assert b["status"] == "CANCELED" and b["route"] == "V1"

    ex = tables.executions(facts).to_pylist()
    assert [(e["cl_ord_id"], e["last_qty"], e["last_px"], e["venue"]) for e in ex] == [
        ("A1", 100, _d("100.010000"), "V1"), ("A1", 200, _d("100.030000"), "V1"), ("B1", 60, _d("100.090000"), "V1")]
    assert all(e["venue_exec_id"] and e["child_id"] for e in ex)
    # markouts: the mid 1 s, 5 s and 60 s after each fill, against its price, signed by side
    f1, f2, f3 = ex

    def mo(side: int, later_mid: int, price: int) -> float:
        return side * (later_mid - price) * 10_000 / price

    assert (f1["markout_1s_bps"], f1["markout_5s_bps"], f1["markout_60s_bps"]) == (
        mo(1, 100_015_000, 100_010_000), mo(1, 100_015_000, 100_010_000), mo(1, 100_115_000, 100_010_000))
    assert (f2["markout_1s_bps"], f2["markout_5s_bps"], f2["markout_60s_bps"]) == (
        mo(1, 100_015_000, 100_030_000), mo(1, 100_015_000, 100_030_000), mo(1, 100_115_000, 100_030_000))
    # the sale at 21 s: 100.115 until 90 s; 60 s later is 81 s
    assert (f3["markout_1s_bps"], f3["markout_60s_bps"]) == (mo(-1, 100_115_000, 100_090_000),) * 2

    v = tables.venues(facts).to_pylist()
    assert [(r["venue"], r["children"], r["fills"], r["qty"], r["cum_qty"], r["rejected"]) for r in v] == [
        ("V1", 2, 3, 400, 360, 0)]
    assert v[0]["fill_ratio"] == 0.9 and v[0]["ack_p50_us"] == 0 and v[0]["ack_p99_us"] == 500_000
    gain = (100_015_000 - 100_010_000) * 100 + (100_015_000 - 100_030_000) * 200 - (100_115_000 - 100_090_000) * 60
    assert v[0]["markout_1s_bps"] == gain * 10_000 / (100 * 100_010_000 + 200 * 100_030_000 + 60 * 100_090_000)

    summary = {(r["dimension"], r["key"]): r for r in tables.tca_summary(facts).to_pylist()}
    acc1 = summary[("account", "ACC1")]
    assert acc1["arrival_slippage_bps"] == a["arrival_slippage_bps"] and acc1["orders"] == 1
    sym = summary[("symbol", "AAPL")]
    cost = (value - mid * qty) - (60 * 100_090_000 - 100_115_000 * 60)
    assert sym["arrival_slippage_bps"] == cost * 10_000 / (mid * qty + 100_115_000 * 60)
    assert sym["fill_rate"] == 360 / 400 and summary[("policy", "V1")]["orders"] == 2


def test_blotter_and_compliance(day: Path) -> None:
    facts = reporting.make(CFG, day, DAY)
    orders = tables.orders(facts).to_pylist()
    assert [(r["kind"], r["cl_ord_id"], r["status"], r["cum_qty"]) for r in orders] == [
        ("parent", "A1", "FILLED", 300), ("child", orders[1]["cl_ord_id"], "FILLED", 300),
        ("parent", "B1", "CANCELED", 60), ("child", orders[3]["cl_ord_id"], "CANCELED", 60)]
    assert orders[0]["avg_px"] == _d("100.0233333333") and orders[1]["cum_value"] == _d("30007.000000")
    assert orders[1]["route"] == "V1" and orders[1]["acked"] is not None


def test_positions_tie_out_with_the_stream(day: Path) -> None:
    """The P&L report's closing figures are those the positions stream's code gives for
    the same events and mark; opening + bought - sold = closing."""
    from gateways.nats_stream import NatsStreamer

    facts = reporting.make(CFG, day, DAY)
    rows = {(r["account"], r["symbol"]): r for r in tables.positions(facts).to_pylist()}
    stream = NatsStreamer("nats://127.0.0.1:1", day, day.parent,
                          positions=Book([a.id for a in CFG.accounts], [i.symbol for i in CFG.instruments],
                                         CFG.fx_rates()))
    with Journal(day) as j:
        for _, payload in j.replay():
            list(stream._messages(EVENT_DECODER.decode(payload)))
    book = stream.positions
    i = book.symbols["AAPL"]
    book.prices(np.array([i]), np.array([100_165_000]))  # the closing mid
    for account in ("ACC1", "ACC2"):
        pos = stream.position(account, "AAPL")
        r = rows[(account, "AAPL")]
        assert r["closing_qty"] == pos.qty and r["mark"] == Decimal(pos.mark) / 10**6
        assert r["realized"] == Decimal(pos.realized) / 10**6
        assert r["unrealized_base"] == Decimal(pos.unrealized) / 10**6
        assert r["opening_qty"] + r["bought"] - r["sold"] == r["closing_qty"]
    assert rows[("ACC1", "AAPL")]["bought_value"] == _d("30007")
    assert rows[("ACC2", "AAPL")]["unrealized"] == (Decimal("100.09") - Decimal("100.165")) * 60  # short 60
    assert rows[("ACC1", None)]["unrealized_base"] == rows[("ACC1", "AAPL")]["unrealized_base"]


def test_same_journal_same_bytes(day: Path, tmp_path: Path) -> None:
    out = []
    for k in range(2):
        paths = reporting.write(CFG, day, tmp_path / f"out{k}", DAY, fmt="parquet", chart_fmt="svg")
        out.append([p.read_bytes() for p in paths])
    assert out[0] == out[1] and len(out[0]) == len(reporting.REPORTS) + len(reporting.CHARTS)
    for fmt in ("csv", "json"):
        a = reporting.write(CFG, day, tmp_path / "a", DAY, reports=["blotter"], fmt=fmt)
        b = reporting.write(CFG, day, tmp_path / "b", DAY, reports=["blotter"], fmt=fmt)
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert b"100.010000" in (tmp_path / "a" / f"executions-{DAY}.csv").read_bytes()


def test_bad_input(day: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"no events from 2026-11-29 to 2026-11-29: .* covers {DAY} to {DAY}"):
        reporting.make(CFG, day, "2026-11-29")
    with Journal(day, fsync=False) as j:  # a quote two days later: the 1st is inside the span, without events
        j.append([EVENT_ENCODER.encode(BestPrice(ts=T0 + 2 * 86_400 * S, symbol="AAPL", bid=1, ask=2))])
        j.commit()
    with pytest.raises(ReportError, match=f"no events from 2026-12-01 to 2026-12-01: .* covers {DAY} to 2026-12-02"):
        reporting.make(CFG, day, "2026-12-01")
    assert reporting.make(CFG, day, "2026-12-02").events_read
    with pytest.raises(ReportError, match="not a date"):
        reporting.make(CFG, day, "30/11/2026")
    with pytest.raises(ReportError, match="no such journal"):
        reporting.make(CFG, tmp_path / "none.db", DAY)
    Journal(tmp_path / "empty.db").close()
    with pytest.raises(ReportError, match="the journal is empty"):
        reporting.make(CFG, tmp_path / "empty.db", DAY)
    db = sqlite3.connect(day)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA + 1),))
    db.commit()
    db.close()
    with pytest.raises(ReportError, match=f"written by a newer OMS \\(event schema {SCHEMA + 1}"):
        reporting.make(CFG, day, DAY)
    with pytest.raises(ReportError, match="unknown report"):
        reporting.names(["blotters"])
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ReportError, match="not an OMS journal"):
        reporting.make(CFG, tmp_path / "junk.db", DAY)


def _config_file(tmp_path: Path) -> Path:
    """CFG as a TOML file, for the command line."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('default_venue = "V1"\n' + "".join(f'[[venues]]\nname = "{v}"\nsim = {{enabled = false}}\n'
                                                     for v in ("V1", "V2"))
                   + "".join(f'[[instruments]]\nsymbol = "{s}"\n' for s in ("AAPL", "MSFT", "SPY", "ES", "BOND"))
                   + "".join(f'[[accounts]]\nid = "{a}"\n' for a in ("ACC1", "ACC2", "OTHER")))
    return cfg


def test_cli(day: Path, tmp_path: Path, capsys) -> None:
    from oms.cli import main
    from oms.config import load

    cfg = _config_file(tmp_path)
    assert msgspec.structs.asdict(load(cfg)) == msgspec.structs.asdict(CFG)
    assert main(["report", "--config", str(cfg), "--journal", str(day), "--out", str(tmp_path / "r"),
                 "--report", "tca", "--format", "json"]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        f"{n}-{DAY}.json" for n in reporting.GROUPS["tca"])
    assert main(["report", "--config", str(cfg), "--journal", str(day), "--date", "2026-12-25"]) == 2
    assert "no events from 2026-12-25" in capsys.readouterr().err


def _ids_by_appearance(rows: list[dict]) -> list[dict]:
    """The OMS's own ids (orders, children, executions: [<start>-]<n>) by order of first
    appearance: a restart renumbers them, the facts stay the same."""
    seen: dict[str, str] = {}

    def norm(v):
        if isinstance(v, str) and re.fullmatch(r"(\d+-)?\d+", v):
            return seen.setdefault(v, f"#{len(seen)}")
        return v
    return [{k: norm(v) for k, v in r.items()} for r in rows]


def test_reports_of_a_day_with_a_crash_equal_those_without(tmp_path: Path) -> None:
    """The OMS dies after A1's second fill was handled but before the commit of its last two
    commands: they were never acknowledged, so the venue sends them again after the restart,
    and the venues' quotes come again with their logon snapshots."""
    from oms.engine import Engine, SequentialIds
    from oms.runtime import replay

    clean = Desk()
    scripted_day(clean)
    day_a = write_journal(tmp_path / "a.db", clean.events)

    crash_at, lost = 7, 2  # steps 0..6 handled; the commit of steps 5 and 6 never happened
    before = Desk()
    ends = []
    for step in STEPS[:crash_at]:
        step(before)
        ends.append(len(before.events))
    day_b = write_journal(tmp_path / "b.db", before.events[:ends[crash_at - lost - 1]])
    after = Desk()
    with Journal(day_b, fsync=False) as j:
        after.engine = Engine(after.engine.ref, clock=lambda: after.now, ids=SequentialIds("2-"))
        replay(j, after.engine.state)
    after.now = before.now
    for q in before.engine.quotes["AAPL"].values():  # the venues' snapshots at logon
        after.run(q)
    for step in STEPS[crash_at - lost:]:
        step(after)
    with Journal(day_b, fsync=False) as j:
        j.append([EVENT_ENCODER.encode(ev) for ev in after.events])
        j.commit()

    a, b = reporting.make(CFG, day_a, DAY), reporting.make(CFG, day_b, DAY)
    assert b.events_read > a.events_read  # the restart's quotes, and the same facts
    for name, report in reporting.REPORTS.items():
        assert _ids_by_appearance(report(a).to_pylist()) == _ids_by_appearance(report(b).to_pylist()), name


def test_end_of_day_reports_are_written_by_the_schedule(day: Path, tmp_path: Path) -> None:
    """At the configured time the day's reports land in <reports dir>/<date>/, written by a
    process of their own; a day without events is said so, and nothing is written."""
    from oms.config import ReportsConfig
    from oms.reporting.schedule import EndOfDay, next_run, parse_at

    at = parse_at("22:00")
    t = dt.datetime(2026, 11, 30, 21, 59, 59, tzinfo=dt.timezone.utc).timestamp()
    assert next_run(at, t) == t + 1 and next_run(at, t + 2) == t + 1 + 86_400
    cfg = msgspec.structs.replace(CFG, reports=ReportsConfig(at="22:00", reports=["tca"], format="parquet"))
    eod = EndOfDay(cfg, day, tmp_path / "reports")
    assert eod.run(DAY) == 0
    assert sorted(p.name for p in (tmp_path / "reports" / DAY).iterdir()) == sorted(
        f"{n}-{DAY}.parquet" for n in reporting.GROUPS["tca"])
    assert eod.run("2026-12-01") == 2 and not (tmp_path / "reports" / "2026-12-01").exists()


def test_end_of_day_config_is_checked(tmp_path: Path) -> None:
    from oms.config import ConfigError, load

    for text, key in (('[reports]\nat = "25:00"\n', "reports.at"), ('[reports]\nreports = ["pnl"]\n', "reports.reports")):
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError, match=key):
            load(tmp_path / "c.toml")


def test_the_schedule_runs_at_its_time(day: Path, tmp_path: Path) -> None:
    from oms.config import ReportsConfig
    from oms.reporting.schedule import EndOfDay

    started, fake = time.time(), dt.datetime(2026, 11, 30, 21, 59, 59, 500_000, tzinfo=dt.timezone.utc).timestamp()
    cfg = msgspec.structs.replace(CFG, reports=ReportsConfig(at="22:00:00", reports=["positions"]))
    eod = EndOfDay(cfg, day, tmp_path / "reports", clock=lambda: fake + time.time() - started)
    eod.start()
    deadline = time.monotonic() + 60
    while not eod.runs and time.monotonic() < deadline:
        time.sleep(0.05)
    eod.stop()
    assert eod.runs == [(DAY, 0)] and (tmp_path / "reports" / DAY / f"positions-{DAY}.csv").is_file()


def test_trading_dates_follow_the_calendar_s_time_zone(day: Path) -> None:
    """In New York the scripted day (10:00 UTC) is the morning of the same date; in Tokyo
    (UTC+9) it is 19:00 the same date."""
    from oms.config import CalendarConfig
    from oms.reporting.facts import day_bounds

    start, end = day_bounds("2026-11-30", zone="America/New_York")
    assert (start, end) == (T0 - 5 * 3600 * S, T0 + 19 * 3600 * S)  # EST is UTC-5
    tokyo = msgspec.structs.replace(CFG, calendar=CalendarConfig(time_zone="Asia/Tokyo"))
    assert reporting.make(tokyo, day, "2026-11-30").fills  # 19:00 in Tokyo
    with pytest.raises(ReportError, match="covers 2026-11-30 to 2026-11-30"):
        reporting.make(tokyo, day, "2026-12-01")


def test_a_journal_in_a_folder_this_user_cannot_write_is_read_when_closed_cleanly(day: Path, tmp_path: Path) -> None:
    """SQLite reads a WAL-mode journal through a shared-memory file it must create beside it;
    a backup mount the reader cannot write still gives its reports (the journal opened as
    immutable), or says why not while a write-ahead log is there."""
    import os
    import shutil
    import subprocess
    import sys

    cfg_path = _config_file(tmp_path)
    ro = tmp_path / "backup"
    ro.mkdir()
    shutil.copy(day, ro / "journal.db")
    expected = reporting.write(CFG, day, tmp_path / "expected", DAY)
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: without its capabilities, in a folder it does not own
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
        if subprocess.run([*prefix, "true"], capture_output=True).returncode:
            pytest.skip("setpriv cannot drop root's capabilities here")
        os.chown(ro, 65534, 65534)
    ro.chmod(0o555)

    def report(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", "oms.cli", "report", "--config", str(cfg_path),
                               "--journal", str(ro / "journal.db"), "--date", DAY, "--out", str(out)],
                              capture_output=True, text=True, timeout=120)

    try:
        done = report(tmp_path / "got")
        assert done.returncode == 0, done.stderr
        assert [(tmp_path / "got" / p.name).read_bytes() for p in expected] == [p.read_bytes() for p in expected]
        ro.chmod(0o755)
        (ro / "journal.db-wal").write_bytes(b"\0" * 4096)  # a log SQLite would have to share
        ro.chmod(0o555)
        done = report(tmp_path / "refused")
        assert done.returncode == 2 and "copy the journal and that file to a folder you can write" in done.stderr
    finally:
        ro.chmod(0o755)
