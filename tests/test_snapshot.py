"""Snapshots and bounded start-up: a snapshot at every end of day (and on demand), start-up
from the latest usable one plus the journal after it, `oms replay --verify-snapshot`;
replay from any snapshot equals replay from the beginning."""
from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oms.cli import main as cli
from oms.config import load
from oms.journal import Journal
from oms.engine import SequentialIds
from oms.model import (
    EVENT_ENCODER,
    Anomaly,
    CancelRequest,
    DayEnded,
    EndOfDay,
    ExecType,
    ExecutionReport,
    MarketData,
    NewOrder,
    OrderRejected,
    OrdStatus,
    OrdType,
    Side,
    StartOfDay,
    StockSplit,
    TimeInForce,
    Timer,
    TradingHalt,
    VenueExecReport,
)
from oms.runtime import Runtime, open_engine, rebuild
from oms.snapshot import Snapshots, directory
from tests.harness import px

CONFIG = """
run_dir = "run"
default_venue = "V1"
[journal]
fsync = false
[[venues]]
name = "V1"
port = 19999
[[accounts]]
id = "A"
[[accounts]]
id = "B"
[[instruments]]
symbol = "AAPL"
[[instruments]]
symbol = "MSFT"
[[fix.sessions]]
comp_id = "C1"
accounts = ["A", "B"]
[risk]
admins = ["ops"]
max_order_to_trade = 1000
[[risk.limits]]
control = "credit"
value = "10000000"
"""


def config(tmp_path: Path, text: str = CONFIG):
    (tmp_path / "oms.toml").write_text(text)
    return load(tmp_path / "oms.toml")


class Flow:
    """Commands of a few trading days through an engine, journaled as the runtime would."""

    def __init__(self, cfg, journal: Journal) -> None:
        self.engine = rebuild(cfg, journal)
        self.journal = journal
        self.now = 1_766_000_000_000_000_000
        self.engine.clock = lambda: self.now
        self.n = 0

    def run(self, cmd) -> list:
        self.now += 1_000_000
        events = self.engine.handle(cmd)
        self.journal.append([EVENT_ENCODER.encode(e) for e in events])
        self.journal.commit()
        return events

    def order(self, kind: int) -> None:
        self.n += 1
        cl = f"O{self.n}"
        tif = (TimeInForce.DAY, TimeInForce.GTC)[kind % 2]
        events = self.run(NewOrder(session="C1", cl_ord_id=cl, account="AB"[kind % 2], symbol=("AAPL", "MSFT")[kind % 3 % 2],
                                   side=(Side.BUY, Side.SELL)[kind % 5 % 2], ord_type=OrdType.LIMIT, qty=100 * (1 + kind % 4),
                                   price=px("100"), tif=tif))
        child = events[-1]
        if kind % 7 == 0 or not hasattr(child, "cl_ord_id"):
            return
        self.run(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"a{self.n}", exec_type=ExecType.NEW))
        if kind % 3:
            self.run(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{self.n}",
                                     exec_type=ExecType.TRADE, last_qty=100, last_px=px("100.5")))
        if kind % 4 == 1:
            self.run(CancelRequest(session="C1", cl_ord_id=f"{cl}c", orig_cl_ord_id=cl))

    def step(self, kind: int) -> None:
        if kind == 0:
            self.run(EndOfDay(user="ops") if self.engine.state.day_open else StartOfDay(user="ops"))
        elif kind == 1:
            self.run(MarketData(symbol="AAPL", venue="V1", bid=px("99") + self.n, ask=px("101")))
        else:
            self.order(kind)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.integers(0, 40), min_size=1, max_size=60), cut=st.floats(0, 1))
def test_replay_from_any_snapshot_equals_replay_from_the_beginning(tmp_path_factory, steps, cut):
    tmp = tmp_path_factory.mktemp("snap")
    cfg = config(tmp)
    path = cfg.journal_path(tmp)
    path.parent.mkdir(parents=True)
    with Journal(path, fsync=False) as journal:
        flow = Flow(cfg, journal)
        at = int(len(steps) * cut)
        for k, kind in enumerate(steps):
            if k == at:
                Snapshots(journal, cfg).take(flow.engine)
            flow.step(kind)
        live = flow.engine.state.state_hash()
        assert rebuild(cfg, journal).state.state_hash() == live
        resumed = rebuild(cfg, journal, snapshots=True)
        assert resumed.base_seq <= journal.last_seq and resumed.state.state_hash() == live
        assert resumed.compliance.digest() == flow.engine.compliance.digest()


def test_end_of_day_writes_a_snapshot_and_start_up_replays_only_what_follows_it(tmp_path: Path, capsys):
    cfg = config(tmp_path)
    engine, journal = open_engine(cfg, tmp_path)
    runtime = Runtime(engine, journal, cfg)
    runtime.start()
    done = threading.Event()
    runtime.submit(StartOfDay(user="ops", date="2026-12-23"))
    for i in range(20):
        runtime.submit(NewOrder(session="C1", cl_ord_id=f"G{i}", account="A", symbol="AAPL", side=Side.BUY,
                                ord_type=OrdType.LIMIT, qty=100, price=px("100"), tif=TimeInForce.GTC))
    runtime.submit(EndOfDay(user="ops"), lambda evs: done.set())
    assert done.wait(10)
    runtime.barrier()
    assert runtime.barrier()  # the snapshot was requested after the DayEnded was durable
    snaps = sorted(directory(journal.path).glob("*.snapshot"))
    assert len(snaps) == 1
    ended = runtime.query(lambda e: e.state.state_hash())
    runtime.submit(NewOrder(session="C1", cl_ord_id="after", account="A", symbol="AAPL", side=Side.BUY,
                            ord_type=OrdType.LIMIT, qty=100, price=px("100")))
    assert runtime.barrier()
    live = runtime.query(lambda e: e.state.state_hash())
    runtime.stop()
    assert live != ended

    engine2, journal2 = open_engine(cfg, tmp_path)
    with journal2:
        assert engine2.base_seq == int(snaps[0].stem) and engine2.state.state_hash() == live
        assert rebuild(cfg, journal2).state.state_hash() == live
        # an undo after a start from a snapshot rebuilds from it, not from nothing
        runtime2 = Runtime(engine2, journal2, cfg)
        original = engine2._route
        engine2._route = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("injected"))
        runtime2.start()
        replies: list = []
        got = threading.Event()
        runtime2.submit(NewOrder(session="C1", cl_ord_id="boom", account="A", symbol="AAPL", side=Side.BUY,
                                 ord_type=OrdType.LIMIT, qty=100, price=px("100")),
                        lambda evs: (replies.extend(evs), got.set()))
        assert got.wait(10)
        assert [type(e) for e in replies] == [Anomaly, OrderRejected]
        engine2._route = original
        undone = runtime2.query(lambda e: e.state.state_hash())
        assert len(runtime2.query(lambda e: e.state.orders)) == 21
        runtime2.stop()
    with Journal(cfg.journal_path(tmp_path)) as j:
        assert rebuild(cfg, j).state.state_hash() == undone

    assert cli(["replay", str(cfg.journal_path(tmp_path)), "--config", str(tmp_path / "oms.toml"),
                "--verify-snapshot"]) == 0
    out = capsys.readouterr().out
    assert "equals the full replay's up to it" in out and f"state hash   {undone}" in out and "DIFFERS" not in out


def test_a_snapshot_that_does_not_match_its_journal_or_config_is_passed_over(tmp_path: Path, capsys):
    cfg = config(tmp_path)
    path = cfg.journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    with Journal(path, fsync=False) as journal:
        flow = Flow(cfg, journal)
        for kind in (0, 2, 3, 4, 0, 0, 5):
            flow.step(kind)
        good = Snapshots(journal, cfg).take(flow.engine)
        flow.step(6)
    assert cli(["snapshot", str(path), "--config", str(tmp_path / "oms.toml")]) == 0
    newest = max(directory(path).glob("*.snapshot"))
    capsys.readouterr()

    damaged = bytearray(newest.read_bytes())
    damaged[-5] ^= 0xFF
    newest.write_bytes(bytes(damaged))
    with Journal(path) as journal:
        assert rebuild(cfg, journal, snapshots=True).base_seq == int(good.stem)  # the damaged one is passed over
    (tmp_path / "other").mkdir()
    other = config(tmp_path / "other", CONFIG.replace('value = "10000000"', 'value = "20000000"'))
    with Journal(path) as journal:
        assert rebuild(other, journal, snapshots=True).base_seq == 0  # another config: replayed in full


DAYS = CONFIG + """
[calendar]
time_zone = "America/New_York"
holidays = ["2026-12-25"]
"""


class Oms:
    """An engine on a journal with the clock of the test; `restart` takes it down and up
    again from its latest snapshot, as `oms run` starts."""

    def __init__(self, cfg, journal: Journal, restarts: bool) -> None:
        self.cfg, self.journal, self.restarts = cfg, journal, restarts
        self.now = 0
        self.ids = SequentialIds()
        self.engine = rebuild(cfg, journal, self.ids, clock=lambda: self.now)
        self.reports: list[tuple] = []

    def at(self, date: str, hhmm: str) -> None:
        h, m = hhmm.split(":")
        self.now = self.cfg.reference_data().calendar.at(date, int(h) * 60 + int(m))

    def run(self, cmd) -> list:
        events = self.engine.handle(cmd)
        self.journal.append([EVENT_ENCODER.encode(e) for e in events])
        self.journal.commit()
        self.reports += [(e.order_id, e.exec_type, e.ord_status, e.order_qty, e.cum_qty, e.leaves_qty, e.price)
                         for e in events if type(e) is ExecutionReport]
        if any(type(e) is DayEnded for e in events):
            Snapshots(self.journal, self.cfg).take(self.engine)  # as the runtime does at every end of day
            if self.restarts:
                self.engine = rebuild(self.cfg, self.journal, self.ids, clock=lambda: self.now, snapshots=True)
                assert self.engine.base_seq == self.journal.last_seq
        return events

    def venue(self, cl: str, exec_type: ExecType, **kw) -> None:
        o = self.engine.state.find("C1", cl)
        ch = self.engine.state.children[o.children[-1]]
        self.run(VenueExecReport(venue="V1", cl_ord_id=ch.pending_cl_ord_id or ch.cl_ord_id,
                                 exec_id=f"v{len(self.reports)}-{cl}", exec_type=exec_type, **kw))


def three_days(oms: Oms) -> None:
    """Wednesday, Thursday, a holiday, Monday: GTC, GTD and DAY orders filled in part each
    day, a 2-for-1 split of AAPL on day two, a venue halt of MSFT on day three."""
    oms.at("2026-12-23", "09:30")
    oms.run(Timer())
    oms.run(NewOrder(session="C1", cl_ord_id="GTC", account="A", symbol="AAPL", side=Side.BUY,
                     ord_type=OrdType.LIMIT, qty=1000, price=px("100.02"), tif=TimeInForce.GTC))
    oms.run(NewOrder(session="C1", cl_ord_id="GTD", account="B", symbol="MSFT", side=Side.SELL,
                     ord_type=OrdType.LIMIT, qty=500, price=px("400"), tif=TimeInForce.GTD,
                     expire_time=oms.cfg.reference_data().calendar.at("2026-12-28", 15 * 60)))
    oms.run(NewOrder(session="C1", cl_ord_id="DAY", account="A", symbol="AAPL", side=Side.BUY,
                     ord_type=OrdType.LIMIT, qty=300, price=px("99")))
    for cl in ("GTC", "GTD", "DAY"):
        oms.venue(cl, ExecType.NEW)
    oms.venue("GTC", ExecType.TRADE, last_qty=200, last_px=px("100.01"))
    oms.venue("GTD", ExecType.TRADE, last_qty=100, last_px=px("400.5"))
    oms.venue("DAY", ExecType.TRADE, last_qty=100, last_px=px("99"))
    oms.at("2026-12-23", "16:00")
    oms.run(Timer())  # DAY done for day; GTC, GTD carried
    oms.venue("DAY", ExecType.CANCELED)
    oms.at("2026-12-24", "09:30")
    oms.run(Timer())
    oms.run(StockSplit(user="ops", symbol="AAPL", new=2, old=1))
    oms.venue("GTC", ExecType.TRADE, last_qty=600, last_px=px("50"))
    oms.venue("GTD", ExecType.TRADE, last_qty=100, last_px=px("401"))
    oms.at("2026-12-24", "16:00")
    oms.run(Timer())
    oms.at("2026-12-25", "10:00")
    oms.run(Timer())  # a holiday: no day
    oms.at("2026-12-28", "09:30")
    oms.run(Timer())
    oms.run(TradingHalt(symbol="MSFT", halted=True, venue="V1"))
    oms.run(NewOrder(session="C1", cl_ord_id="HELD", account="B", symbol="MSFT", side=Side.BUY,
                     ord_type=OrdType.LIMIT, qty=100, price=px("399")))
    oms.run(TradingHalt(symbol="MSFT", halted=False, venue="V1"))
    oms.venue("HELD", ExecType.TRADE, last_qty=100, last_px=px("399"))
    oms.venue("GTC", ExecType.TRADE, last_qty=500, last_px=px("50.01"))
    oms.at("2026-12-28", "16:00")
    oms.run(Timer())  # the GTD order's date: expired


def test_three_days_with_a_holiday_a_split_and_a_halt_give_the_same_state_with_and_without_restarts(tmp_path):
    finals = []
    for restarts in (False, True):
        folder = tmp_path / str(restarts)
        folder.mkdir()
        cfg = config(folder, DAYS)
        path = cfg.journal_path(folder)
        path.parent.mkdir(parents=True)
        with Journal(path, fsync=False) as journal:
            oms = Oms(cfg, journal, restarts)
            three_days(oms)
            assert rebuild(cfg, journal).state.state_hash() == oms.engine.state.state_hash()
            finals.append((oms.engine.state.state_hash(), oms.reports, oms.engine.compliance.digest()))
    assert finals[0] == finals[1]
    reports = finals[0][1]
    gtc = [r[1:] for r in reports if r[0] == reports[0][0]]
    RS, PF = ExecType.RESTATED, OrdStatus.PARTIALLY_FILLED
    assert (RS, PF, 1000, 200, 800, px("100.02")) in gtc  # GT renewal on day two (H.1.a)
    assert (RS, PF, 2000, 400, 1600, px("50.01")) in gtc  # the split (H.1.b)
    assert gtc[-1][:5] == (ExecType.TRADE, PF, 2000, 1500, 500)  # filled in part each day, carried
    statuses = {r[0]: r[2] for r in reports}
    assert OrdStatus.EXPIRED in statuses.values() and OrdStatus.DONE_FOR_DAY in statuses.values()
