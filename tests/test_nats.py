"""Streams against a real nats-server: orders, compliance, positions and prices published;
a late JetStream consumer replays; the server killed and restarted mid-stream loses and
duplicates nothing."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from oms.config import Config
from oms.model import NewOrder, OrdType, Side, VenueExecReport, ExecType
from oms.natsd import EmbeddedNats
from oms.system import System
from tests.fix_client import free_port

CONFIG = """
run_dir = "run"
default_venue = "V1"
[nats]
port = {port}
[[venues]]
name = "V1"
port = 1
[venues.sim]
enabled = false
[[accounts]]
id = "ACC1"
[[instruments]]
symbol = "AAPL"
[[fix.sessions]]
comp_id = "C1"
accounts = ["ACC1"]
[risk]
[[risk.limits]]
control = "max_qty"
value = "1000"
"""


def start(tmp: Path, port: int) -> System:
    cfg = msgspec.toml.decode(CONFIG.format(port=port), type=Config)
    s = System(cfg, tmp, venues=False, fix=False, serve_metrics=False)
    s.start()
    assert s.streamer is not None and s.streamer.connected.wait(10)
    return s


def order(s: System, cl: str, qty: int = 100) -> None:
    s.runtime.submit(NewOrder(session="C1", cl_ord_id=cl, account="ACC1", symbol="AAPL", side=Side.BUY,
                              ord_type=OrdType.LIMIT, qty=qty, price=100_000_000))


def wait_published(s: System, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.streamer.published == s.journal.last_seq and s.journal.last_seq > 0:  # type: ignore[union-attr]
            return
        time.sleep(0.05)
    raise AssertionError(f"published {s.streamer.published} of {s.journal.last_seq}")  # type: ignore[union-attr]


async def replay(port: int, subject: str, expect: int, timeout: float = 10) -> list:
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    got: list = []
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                continue
            got.append((msg.headers.get("Nats-Msg-Id"), msg.headers.get("Oms-Type"),
                        msgspec.msgpack.decode(msg.data)))
        try:  # nothing beyond what was expected
            extra = await sub.next_msg(timeout=0.5)
            got.append((extra.headers.get("Nats-Msg-Id"), "EXTRA", None))
        except nats.errors.TimeoutError:
            pass
    finally:
        await nc.close()
    return got


def test_orders_and_compliance_streams_replay_for_a_late_consumer(tmp_path):
    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "A1")
        order(s, "A2", qty=5000)  # over max_qty: a compliance reject
        wait_published(s)
        orders = asyncio.run(replay(port, "oms.orders.ACC1", expect=2))
        assert [t for _id, t, _d in orders] == ["OrderAccepted", "OrderRejected"]  # and nothing more
        compliance = asyncio.run(replay(port, "oms.compliance.>", expect=1))
        assert [t for _id, t, _d in compliance] == ["OrderRejected"]
        assert compliance[0][2]["reason"] == "RISK_MAX_QTY"
    finally:
        s.stop()


def test_positions_follow_the_fills(tmp_path):
    port = free_port()
    s = start(tmp_path, port)

    async def collect() -> list:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        got: list = []
        sub = await nc.subscribe("oms.positions.>")
        order(s, "P1")
        deadline = time.monotonic() + 10
        while not s.engine.state.children and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        child = next(iter(s.engine.state.children.values()))
        for n, q in enumerate((30, 70)):
            s.runtime.submit(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{n}",
                                             exec_type=ExecType.TRADE, last_qty=q, last_px=100_500_000))
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
                got.append(msgspec.msgpack.decode(msg.data))
            except nats.errors.TimeoutError:
                pass
        reply = await nc.request("oms.positions.snapshot", b'{"account": "ACC1"}', timeout=5)
        got.append(msgspec.msgpack.decode(reply.data))
        await nc.close()
        return got

    try:
        got = asyncio.run(collect())
        snapshot = got.pop()
        assert [(p["symbol"], p["qty"]) for p in snapshot] == [("AAPL", 100)]
        assert [(p["qty"], p["avg_px"], p["realized"]) for p in got] == [(30, 100_500_000, 0), (100, 100_500_000, 0)]
        assert got[-1]["account"] == "ACC1" and got[-1]["symbol"] == "AAPL"
    finally:
        s.stop()


def test_server_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(tmp_path):
    port = free_port()
    server = EmbeddedNats("127.0.0.1", port, tmp_path / "external-nats")
    server.start()
    cfg = msgspec.toml.decode(CONFIG.format(port=port), type=Config)
    cfg = msgspec.structs.replace(cfg, nats=msgspec.structs.replace(cfg.nats, url=f"nats://127.0.0.1:{port}"))
    s = System(cfg, tmp_path, venues=False, fix=False, serve_metrics=False)
    s.start()
    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        for n in range(5):
            order(s, f"K{n}")
        wait_published(s)
        server.stop()  # the server dies: trading goes on
        for n in range(5, 10):
            order(s, f"K{n}")
        deadline = time.monotonic() + 10
        while len(s.engine.state.orders) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(s.engine.state.orders) == 10
        server.start()  # same port, same JetStream directory
        wait_published(s, timeout=30)
        got = asyncio.run(replay(port, "oms.orders.ACC1", expect=10))
        ids = [i for i, _t, _d in got]
        assert len(ids) == 10 and len(set(ids)) == 10  # each order once: none lost, none twice
        assert {d["order"]["cl_ord_id"] for _i, t, d in got if t == "OrderAccepted"} == {f"K{n}" for n in range(10)}
    finally:
        s.stop()
        server.stop()


def test_tail_prints_a_stream(tmp_path):
    import subprocess
    import sys

    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "T1", qty=5000)
        wait_published(s)
        cfg_file = tmp_path / "tail.toml"
        cfg_file.write_text(CONFIG.format(port=port))
        out = subprocess.run([sys.executable, "-m", "oms.cli", "tail", "oms.compliance.>", "--config", str(cfg_file),
                              "--replay", "--count", "1"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert '"RISK_MAX_QTY"' in out.stdout and "oms.compliance.reject" in out.stdout
    finally:
        s.stop()


def test_authentication_and_a_read_only_compliance_user(tmp_path):
    port = free_port()
    text = CONFIG.format(port=port).replace(
        f"port = {port}\n", f'port = {port}\nuser = "oms"\npassword = "oms-secret"\n'
        '[[nats.users]]\nuser = "compliance"\npassword = "c-secret"\n'
        'subscribe = ["oms.compliance.>", "_INBOX.>"]\npublish = ["$JS.API.>"]\n', 1)
    cfg = msgspec.toml.decode(text, type=Config)
    s = System(cfg, tmp_path, venues=False, fix=False, serve_metrics=False)
    s.start()
    url = f"nats://127.0.0.1:{port}"

    async def probe() -> dict:
        out: dict = {}
        try:
            await nats.connect(url, user="compliance", password="wrong", connect_timeout=2,
                               max_reconnect_attempts=0, allow_reconnect=False)
            out["wrong password"] = "connected"
        except Exception as exc:
            out["wrong password"] = type(exc).__name__
        errors: list = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(url, user="compliance", password="c-secret", error_cb=on_error)
        feed = await nc.subscribe("oms.compliance.>")
        await nc.subscribe("oms.orders.>")  # not allowed: the server refuses
        await nc.publish("oms.orders.ACC1", b"forged")  # not allowed either
        await nc.flush()
        order(s, "X1", qty=5000)
        msg = await feed.next_msg(timeout=10)
        out["feed"] = msg.subject
        await asyncio.sleep(0.5)
        out["errors"] = " ".join(errors).lower()
        await nc.close()
        return out

    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        out = asyncio.run(probe())
        assert out["wrong password"] != "connected"
        assert out["feed"] == "oms.compliance.reject"
        assert "permissions violation" in out["errors"] and "oms.orders" in out["errors"]
    finally:
        s.stop()
