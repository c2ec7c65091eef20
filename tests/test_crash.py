"""Kill the OMS with SIGKILL mid-stream; every acknowledged order survives, exactly.

The OMS prints an event only after it is durable, so what the test has read is what
was acknowledged. After the kill the journal must begin with exactly those events,
and a restarted OMS must answer a status request for each acknowledged order with
the state those events give it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from oms.journal import Journal
from oms.model import (
    EVENT_DECODER,
    ChildOrderSent,
    Event,
    ExecType,
    ExecutionReport,
    NewOrder,
    OrderAccepted,
    OrdType,
    Side,
    StatusRequest,
    VenueExecReport,
)
from oms.config import load
from oms.runtime import rebuild
from oms.state import OmsState

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
run_dir = "run"
default_venue = "V1"
[journal]
commit = "group"
[[venues]]
name = "V1"
port = 19999
[[accounts]]
id = "A"
[[instruments]]
symbol = "AAPL"
tick_size = "0.01"
[[fix.sessions]]
comp_id = "C1"
accounts = ["A"]
"""
EVENTS = msgspec.json.Decoder(Event)
ENC = msgspec.json.Encoder()


def start_oms(tmp: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "oms.cli", "run", "--config", str(tmp / "oms.toml"), "--stdio", "--no-metrics", "--no-venues", "--no-nats",
         "--no-api"],
        cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_sigkill_mid_stream_loses_no_acknowledged_order(tmp_path: Path) -> None:
    (tmp_path / "oms.toml").write_text(CONFIG)
    proc = start_oms(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    printed: list[Event] = []
    lock = threading.Lock()
    n_orders = 5000

    def write(cmd: object) -> None:
        with lock:
            proc.stdin.write(ENC.encode(cmd) + b"\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]

    def feed() -> None:
        try:
            for i in range(n_orders):
                write(NewOrder(session="C1", cl_ord_id=f"O{i}", account="A", symbol="AAPL", side=Side.BUY,
                               ord_type=OrdType.LIMIT, qty=100 + i, price=100_000_000 + 10_000 * (i % 50)))
        except (BrokenPipeError, ValueError):
            pass  # killed under us: that is the point

    def read() -> None:
        """Play the venue: ack every child and fill part of it, from the durable events."""
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.strip() == b"[]":
                    continue
                ev = EVENTS.decode(line)
                printed.append(ev)
                if type(ev) is ChildOrderSent:
                    write(VenueExecReport(venue=ev.venue, cl_ord_id=ev.cl_ord_id, exec_id=f"a{ev.child_id}",
                                          exec_type=ExecType.NEW))
                    write(VenueExecReport(venue=ev.venue, cl_ord_id=ev.cl_ord_id, exec_id=f"f{ev.child_id}",
                                          exec_type=ExecType.TRADE, last_qty=ev.qty // 3, last_px=ev.price or 1))
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    feeder.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(type(e) is ExecutionReport for e in printed) < 2000:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    acknowledged = list(printed)
    accepted = [e for e in acknowledged if type(e) is OrderAccepted]
    assert len(accepted) > 500, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    assert any(type(e) is ExecutionReport and e.exec_type is ExecType.TRADE for e in acknowledged)

    journal_path = tmp_path / "run" / "journal.db"
    with Journal(journal_path) as j:
        journaled = [EVENT_DECODER.decode(p) for _, p in j.replay()]
    assert journaled[: len(acknowledged)] == acknowledged  # nothing acknowledged is lost or altered

    expected = OmsState()
    for ev in acknowledged:
        expected.apply(ev)
    touched_later = {getattr(e, "order_id", None) for e in journaled[len(acknowledged):]}

    # restart and ask for every acknowledged order
    proc2 = start_oms(tmp_path)
    queries = b"".join(ENC.encode(StatusRequest(session="C1", cl_ord_id=a.order.cl_ord_id)) + b"\n"
                       for a in accepted)
    out, err = proc2.communicate(queries, timeout=120)
    assert proc2.returncode == 0, err.decode()[-2000:]
    answers = [EVENTS.decode(line) for line in out.splitlines() if line.strip() != b"[]"]
    assert len(answers) == len(accepted)
    durable = OmsState()
    for ev in journaled:
        durable.apply(ev)
    checked = 0
    for ans in answers:
        assert type(ans) is ExecutionReport and ans.exec_type is ExecType.ORDER_STATUS
        o = durable.orders[ans.order_id]  # the restarted OMS answers with the journal's state
        assert (ans.ord_status, ans.order_qty, ans.cum_qty, ans.cum_value) == (o.status, o.order_qty, o.cum_qty, o.cum_value)
        if ans.order_id not in touched_later:  # and that is exactly what the trader was told
            seen = expected.orders[ans.order_id]
            assert (seen.status, seen.cum_qty, seen.cum_value) == (o.status, o.cum_qty, o.cum_value)
            checked += 1
    assert checked == len(accepted) - len(touched_later & expected.orders.keys())
    assert b"replayed" in err

    # the replay command agrees with the restarted engine
    rep = subprocess.run([sys.executable, "-m", "oms.cli", "replay", str(journal_path), "--config",
                          str(tmp_path / "oms.toml")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert rep.returncode == 0
    with Journal(journal_path) as j:
        assert f"state hash   {rebuild(load(tmp_path / 'oms.toml'), j).state.state_hash()}" in rep.stdout


def test_sigint_stops_the_whole_system_cleanly(tmp_path: Path) -> None:
    """`oms run` with FIX, NATS and metrics: a Ctrl-C (SIGINT to the whole process group, as a
    terminal sends it) stops everything in order, the publisher process and the embedded
    nats-server too, with nothing alarming in the log."""
    from tests.fix_client import free_port

    text = CONFIG.replace("port = 19999", f"port = {free_port()}") + (
        f"[fix]\nport = {free_port()}\n[metrics]\nport = {free_port()}\n[nats]\nport = {free_port()}\n"
        f"[api]\nport = {free_port()}\n")
    (tmp_path / "oms.toml").write_text(text)
    proc = subprocess.Popen([sys.executable, "-m", "oms.cli", "run", "--config", str(tmp_path / "oms.toml"),
                             "--no-venues"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True, start_new_session=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "SIGINT or SIGTERM stops it" in line:
            break
    nats_conf = tmp_path / "run" / "nats" / "nats-server.conf"
    assert nats_conf.exists(), "".join(lines)
    time.sleep(1)  # the publisher has connected
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped; journal at seq" in out
    assert not [line for line in out.splitlines() if "WARNING" in line or "Traceback" in line or "ERROR" in line], out
    deadline = time.monotonic() + 5
    while (left := subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True, text=True).stdout) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == "", left  # nothing of it left
    left = subprocess.run(["pgrep", "-f", str(nats_conf)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "nats-server still running"
