"""A command applies all of its events or none; a journal that cannot be replayed says
where; the state hash covers all derived state.

Failures are injected where no message could cause them today (a handler raising
half-way), since every such bug found so far has been fixed at its cause.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from oms.cli import main as cli
from oms.config import load
from oms.journal import Journal
from oms.model import (
    EVENT_ENCODER,
    Anomaly,
    CancelRejected,
    ChildUpdated,
    NewOrder,
    OrderAccepted,
    OrderRejected,
    OrdStatus,
    OrdType,
    SetKillSwitch,
    Side,
)
from oms.reasons import Reason
from oms.runtime import ReplayError, Runtime, open_engine, rebuild
from tests.harness import SESSION, Desk, px
from tests.test_crash import CONFIG as CRASH_CONFIG

ROOT = Path(__file__).resolve().parent.parent
CONFIG = CRASH_CONFIG.replace('commit = "group"', 'commit = "group"\nfsync = false')  # one OMS, one venue


def fail_routing(engine) -> None:
    """Make routing raise: a NewOrder then fails after its OrderAccepted was applied."""
    def boom(*_a, **_k):
        raise RuntimeError("injected")
    engine._route = boom


def test_a_failed_new_order_leaves_no_trace_but_its_refusal():
    d = Desk()
    d.nos("A1", 100)  # something before, which must survive
    before = d.engine.state.state_hash()
    fail_routing(d.engine)
    d.nos("BAD", 200)
    anomaly, refusal = d.events[-2:]
    assert type(anomaly) is Anomaly and anomaly.kind == "internal_error" and '"cl_ord_id":"BAD"' in anomaly.detail
    assert type(refusal) is OrderRejected and refusal.reason == Reason.INTERNAL_ERROR.name
    assert not any(type(e) is OrderAccepted and e.order.cl_ord_id == "BAD" for e in d.events)
    assert d.engine.state.find(SESSION, "BAD") is None and d.engine.state.find(SESSION, "A1") is not None
    # exactly the state a replay of the journaled events gives (the refusal counts in the throttle windows)
    assert d.engine.state.state_hash() == d.replayed().state.state_hash() != before
    assert d.reports[-1].ord_status is OrdStatus.REJECTED and d.reports[-1].order_qty == 200


def test_a_failed_cancel_is_refused_and_the_order_keeps_working():
    d = Desk()
    d.nos("A1", 100)
    d.v_ack("A1")
    d.engine._cancel_children = lambda o: (_ for _ in ()).throw(KeyError("injected"))
    d.cancel("C1", "A1")
    assert type(d.events[-1]) is CancelRejected and d.events[-1].reason == Reason.INTERNAL_ERROR.name
    assert d.engine.state.find(SESSION, "A1").status is OrdStatus.NEW
    assert d.engine.state.state_hash() == d.replayed().state.state_hash()


def test_an_engine_without_a_failure_keeps_every_event():
    d = Desk()
    d.nos("A1", 100)
    d.v_fill("A1", 100)
    assert not any(type(e) is Anomaly for e in d.events)
    assert d.engine.state.state_hash() == d.replayed().state.state_hash()


def new(cl: str, qty: int = 100) -> NewOrder:
    return NewOrder(session="C1", cl_ord_id=cl, account="A", symbol="AAPL", side=Side.BUY, ord_type=OrdType.LIMIT,
                    qty=qty, price=px("100"))


def test_a_failure_inside_a_group_commit_undoes_that_command_only(tmp_path: Path):
    """Three commands in one batch; the middle one fails after applying events. The engine
    rebuilds from the journal plus the batch's first command, which is not yet durable."""
    (tmp_path / "oms.toml").write_text(CONFIG)
    cfg = load(tmp_path / "oms.toml")
    engine, journal = open_engine(cfg, tmp_path)
    runtime = Runtime(engine, journal, cfg)
    original = engine._route

    def route_or_fail(o, qty, avoid=frozenset()):
        if o.cl_ord_id == "O2":
            raise RuntimeError("injected")
        original(o, qty, avoid)
    engine._route = route_or_fail
    replies: dict[str, list] = {}
    done = threading.Event()
    for cl in ("O1", "O2", "O3"):  # queued before the engine starts: one batch
        runtime.submit(new(cl), lambda evs, cl=cl: (replies.__setitem__(cl, evs), len(replies) == 3 and done.set()))
    runtime.start()
    assert done.wait(10)
    live = engine.state.state_hash()
    runtime.stop()
    assert [type(e) for e in replies["O2"]] == [Anomaly, OrderRejected]
    assert OrderAccepted in {type(e) for e in replies["O1"]} and OrderAccepted in {type(e) for e in replies["O3"]}
    assert engine.state.find("C1", "O1") and engine.state.find("C1", "O3") and not engine.state.find("C1", "O2")
    with Journal(cfg.journal_path(tmp_path)) as j:
        assert rebuild(cfg, j).state.state_hash() == live


def bad_journal(tmp_path: Path) -> tuple[Path, int]:
    """A journal whose third record names a child that does not exist."""
    (tmp_path / "oms.toml").write_text(CONFIG)
    path = load(tmp_path / "oms.toml").journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    d = Desk()
    d.nos("A1", 100)
    good = d.events[:2]
    with Journal(path, fsync=False) as j:
        j.append([EVENT_ENCODER.encode(e) for e in good])
        j.append([EVENT_ENCODER.encode(ChildUpdated(1, "no-such-child", OrdStatus.NEW, "x", 100, 0, None))])
        j.append([EVENT_ENCODER.encode(e) for e in d.events[2:]])
        j.commit()
    return path, len(good) + 1


def test_a_journal_that_cannot_be_replayed_stops_start_up_and_says_where(tmp_path: Path, capsys):
    path, bad = bad_journal(tmp_path)
    cfg = load(tmp_path / "oms.toml")
    with pytest.raises(ReplayError) as err:
        open_engine(cfg, tmp_path)
    assert err.value.seq == bad and "no-such-child" in str(err.value)

    assert cli(["replay", str(path), "--config", str(tmp_path / "oms.toml")]) == 3
    out = capsys.readouterr()
    assert f"journal record {bad} cannot be applied" in out.err and f"--until {bad - 1}" in out.err
    assert cli(["replay", str(path), "--config", str(tmp_path / "oms.toml"), "--until", str(bad - 1)]) == 0
    out = capsys.readouterr().out
    assert f"records      {bad - 1}" in out and "orders       1" in out

    run = subprocess.run([sys.executable, "-m", "oms.cli", "run", "--config", str(tmp_path / "oms.toml"), "--stdio",
                          "--no-metrics", "--no-venues", "--no-nats", "--no-api"], cwd=tmp_path, input=b"",
                         capture_output=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 3
    assert f"record {bad} cannot be applied".encode() in run.stderr and f"--until {bad - 1}".encode() in run.stderr


def busy_desk() -> Desk:
    """Orders resting in the crossing book, fills, a kill switch, throttle windows."""
    from risk.config import RiskConfig
    from oms.router import CROSS
    d = Desk(risk=RiskConfig(admins=("risk",), throttle_new_per_s=100))
    d.engine.ref = __import__("msgspec").structs.replace(d.engine.ref, internal_cross=True)
    d.nos("B1", 100, "100", ex_destination=CROSS)
    d.nos("B2", 100, "100", ex_destination=CROSS)
    d.nos("S1", 300, "101", side=Side.SELL, account="ACC2")
    d.v_fill("S1", 100, "101")
    d.run(SetKillSwitch(user="risk", scope="instrument", key="MSFT"))
    return d


MUTATIONS = {
    "exposure": lambda e: e.compliance.book.__setitem__((0, 0, 0), e.compliance.book[0, 0, 0] + 1),
    "open orders": lambda e: e.compliance.acct.__setitem__((0, 0), e.compliance.acct[0, 0] + 1),
    "kill switches": lambda e: e.compliance.kill.clear(),
    "throttle window": lambda e: e.compliance.windows[(SESSION, "new")].append(1),
    "limit changes": lambda e: e.compliance.rules.append(e.compliance.rules[0] if e.compliance.rules else None),
    "overrides": lambda e: e.compliance.overrides.__setitem__(("ACC1", 0), 1),
    "crossing book order": lambda e: e.state.internal.__setitem__("AAPL", dict.fromkeys(reversed(e.state.internal["AAPL"]))),
    "ClOrdID index": lambda e: e.state.by_cl_ord_id.popitem(),
    "an order": lambda e: setattr(next(iter(e.state.orders.values())), "cum_qty", 1),
}


@pytest.mark.parametrize("part", MUTATIONS)
def test_the_state_hash_notices_every_part(part: str):
    d = busy_desk()
    assert len(d.engine.state.internal["AAPL"]) == 2 and d.engine.compliance.kill
    live = d.engine.state.state_hash()
    fresh = d.replayed()
    assert fresh.state.state_hash() == live
    MUTATIONS[part](fresh)
    assert fresh.state.state_hash() != live, part

