"""Streams against a real nats-server: orders, compliance, positions and prices published;
a late JetStream consumer replays; the server killed and restarted mid-stream loses and
duplicates nothing."""
from __future__ import annotations

import asyncio
import logging
import signal
import statistics
import time
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from oms.config import Config
from oms.model import (
    Allocate, AllocationTarget, CancelAllocation, ExecType, MarketData, NewOrder, OrdType, Side, VenueExecReport,
)
from oms.natsd import EmbeddedNats
from oms.system import System
from tests.fix_client import free_port

CONFIG = """
run_dir = "run"
default_venue = "V1"
[api]
enabled = false
[nats]
port = {port}
[[venues]]
name = "V1"
port = 1
[venues.sim]
enabled = false
[[venues]]
name = "V2"
port = 2
[venues.sim]
enabled = false
[[accounts]]
id = "ACC1"
[[accounts]]
id = "ACC2"
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


def config_text(port: int, nats: str = "") -> str:
    """The test config; nats: more lines for its [nats] section."""
    head = f"[nats]\nport = {port}\n"
    return CONFIG.format(port=port).replace(head, head + nats, 1)


def config(port: int, nats: str = "") -> Config:
    return msgspec.toml.decode(config_text(port, nats), type=Config)


def start(tmp: Path, port: int, nats: str = "") -> System:
    cfg = config(port, nats)
    s = System(cfg, tmp, venues=False, fix=False, serve_metrics=False)
    s.start()
    assert s.streamer is not None and s.streamer.connected.wait(10)
    return s


def order(s: System, cl: str, qty: int = 100, side: Side = Side.BUY, venue: str | None = None) -> None:
    s.runtime.submit(NewOrder(session="C1", cl_ord_id=cl, account="ACC1", symbol="AAPL", side=side,
                              ord_type=OrdType.LIMIT, qty=qty, price=100_000_000, ex_destination=venue))


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


def streamed_orders(port: int, n: int) -> list[str]:
    """ClOrdIDs of the first n messages a late consumer of oms.orders.ACC1 gets, in stream order."""
    return [d["order"]["cl_ord_id"] for _i, _t, d in asyncio.run(replay(port, "oms.orders.ACC1", expect=n))]


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


async def child_of(s: System, cl: str, timeout: float = 10):
    """The child order the router made for the parent with ClOrdID cl."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parents = {o.order_id for o in s.engine.state.orders.values() if o.cl_ord_id == cl}
        for child in s.engine.state.children.values():
            if child.order_id in parents:
                return child
        await asyncio.sleep(0.02)
    raise AssertionError(f"no child for {cl}")


def fill(s: System, child, exec_id: str, qty: int, px: int) -> None:
    s.runtime.submit(VenueExecReport(venue=child.venue, cl_ord_id=child.cl_ord_id, exec_id=exec_id,
                                     exec_type=ExecType.TRADE, last_qty=qty, last_px=px))


async def positions_until(port: int, trade, done, quiet: float = 0.5, timeout: float = 15) -> tuple[list, list]:
    """(Position messages on oms.positions.ACC1 with their arrival times, the snapshot reply
    after) while `trade()` runs, until `done(last message)` and then `quiet` s of silence."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    sub = await nc.subscribe("oms.positions.ACC1")
    got: list = []
    trading = asyncio.create_task(trade())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = await sub.next_msg(timeout=quiet)
        except nats.errors.TimeoutError:
            if got and trading.done() and done(got[-1][1]):
                break
            continue
        assert msg.headers["Oms-Type"] == "Position" and msg.headers["Oms-Schema"] == "2"
        got.append((time.monotonic(), msgspec.msgpack.decode(msg.data)))
    await trading
    reply = await nc.request("oms.positions.snapshot", b'{"account": "ACC1"}', timeout=5)
    await nc.close()
    return got, msgspec.msgpack.decode(reply.data)


def test_an_allocation_streams_to_both_accounts_and_moves_the_position_at_the_block_price(tmp_path):
    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "AL0", qty=300)
        child = asyncio.run(child_of(s, "AL0"))
        fill(s, child, "x1", 100, 100_000_000)
        fill(s, child, "x2", 200, 100_010_000)
        s.runtime.submit(Allocate(user="pm", alloc_id="AL-1", order_id=child.order_id, method="ratio",
                                  targets=(AllocationTarget("ACC2", 1),)))
        assert s.runtime.barrier()
        wait_published(s)
        for account in ("ACC1", "ACC2"):
            (_id, kind, booked), = asyncio.run(replay(port, f"oms.allocations.{account}", expect=1))
            assert kind == "AllocationBooked" and booked["shares"] == [
                {"account": "ACC2", "qty": 300, "value": 30_002_000_000}]

        async def snapshot() -> list:
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            reply = await nc.request("oms.positions.snapshot", b"{}", timeout=5)
            await nc.close()
            return msgspec.msgpack.decode(reply.data)

        (acc2,) = asyncio.run(snapshot())  # ACC1 is flat: only ACC2 holds a position
        assert (acc2["account"], acc2["qty"], acc2["avg_px"], acc2["realized"]) == ("ACC2", 300, 100_006_666, 0)
        assert acc2["venues"] == [{"venue": "allocation", "qty": 300, "bought": 300, "sold": 0,
                                   "buy_value": 30_002_000_000, "sell_value": 0}]
        s.runtime.submit(CancelAllocation(user="pm", alloc_id="AL-1"))  # and back
        assert s.runtime.barrier()
        wait_published(s)
        (acc1,) = asyncio.run(snapshot())
        assert (acc1["account"], acc1["qty"], acc1["avg_px"], acc1["realized"]) == ("ACC1", 300, 100_006_666, 0)
        assert [t for _i, t, _d in asyncio.run(replay(port, "oms.allocations.ACC2", expect=2))] == [
            "AllocationBooked", "AllocationCanceled"]
    finally:
        s.stop()


def test_positions_per_venue_sum_to_the_account(tmp_path):
    port = free_port()
    s = start(tmp_path, port)

    async def trade() -> None:
        order(s, "P1")
        order(s, "P2", qty=60, venue="V2")
        order(s, "P3", qty=40, side=Side.SELL, venue="V2")
        c1, c2, c3 = [await child_of(s, cl) for cl in ("P1", "P2", "P3")]
        assert (c1.venue, c2.venue, c3.venue) == ("V1", "V2", "V2")
        fill(s, c1, "f1", 30, 100_500_000)
        fill(s, c1, "f2", 70, 100_500_000)
        fill(s, c2, "f3", 60, 101_000_000)
        fill(s, c3, "f4", 40, 102_000_000)
        while s.streamer.published < s.journal.last_seq:  # the fills are out
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # and their positions, at most one interval (100 ms) later
        s.streamer.on_market_data(MarketData(symbol="AAPL", venue="V1", bid=103_000_000, ask=105_000_000))

    try:
        got, snapshot = asyncio.run(positions_until(port, trade, lambda p: p["mark"] is not None))
        assert [p["mark"] for _t, p in got[-2:]] == [None, 104_000_000]  # a new mark republishes the position
        last = got[-1][1]
        assert (last["account"], last["symbol"], last["qty"]) == ("ACC1", "AAPL", 120)
        cost = (100 * 100_500_000 + 60 * 101_000_000) * 120 // 160  # average cost: 40 of 160 sold
        assert last["unrealized"] == 120 * 104_000_000 - cost and last["realized"] == 40 * 102_000_000 - (
            100 * 100_500_000 + 60 * 101_000_000) * 40 // 160
        venues = {v["venue"]: v for v in last["venues"]}
        assert venues == {
            "V1": {"venue": "V1", "qty": 100, "bought": 100, "sold": 0, "buy_value": 100 * 100_500_000,
                   "sell_value": 0},
            "V2": {"venue": "V2", "qty": 20, "bought": 60, "sold": 40, "buy_value": 60 * 101_000_000,
                   "sell_value": 40 * 102_000_000},
        }
        assert sum(v["qty"] for v in last["venues"]) == last["qty"]
        assert snapshot == [last]  # the reply carries the same breakdown
    finally:
        s.stop()


def test_positions_are_coalesced_and_end_with_the_latest(tmp_path):
    port = free_port()
    s = start(tmp_path, port, "positions_interval_ms = 200\n")
    fills = [(10, 100_000_000 + 1_000 * n) for n in range(50)]

    span: list[float] = []

    async def trade() -> None:
        order(s, "B1", qty=500)
        child = await child_of(s, "B1")
        span.append(time.monotonic())
        for n, (q, px) in enumerate(fills):  # over about half a second: each fill its own journal commit
            fill(s, child, f"b{n}", q, px)
            await asyncio.sleep(0.01)
        span.append(time.monotonic())

    try:
        got, snapshot = asyncio.run(positions_until(port, trade, lambda p: p["qty"] == 500))
        # a burst of 50 fills: one publish at once, then at most one per interval (200 ms) of
        # the burst (however long a busy machine makes it), and the latest state at the end
        assert 2 <= len(got) <= (span[1] - span[0]) / 0.2 + 2 and len(got) < len(fills) // 2
        gaps = [b - a for (a, _), (b, _) in zip(got, got[1:])]
        # at most one per interval (200 ms); a late delivery can bunch two at the subscriber, not most
        assert statistics.median(gaps) > 0.1, gaps
        last = got[-1][1]
        assert last["qty"] == 500 and last["avg_px"] == sum(q * px for q, px in fills) // 500
        assert snapshot == [last]  # the final state was published, not lost in the coalescing
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
    n_orders = 400
    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        for n in range(5):
            order(s, f"K{n}")
        wait_published(s)
        server.proc.send_signal(signal.SIGSTOP)  # the server hangs ...
        for n in range(5, 300):  # ... while a burst goes out: messages sent, none acknowledged ...
            order(s, f"K{n}")
        time.sleep(0.5)
        server.proc.kill()  # ... and dies (SIGKILL) with them: trading goes on
        server.proc.wait()
        for n in range(300, n_orders):
            order(s, f"K{n}")
        deadline = time.monotonic() + 10
        while len(s.engine.state.orders) < n_orders and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(s.engine.state.orders) == n_orders
        assert s.streamer.published < s.journal.last_seq  # type: ignore[union-attr]  # some were not out
        server.start()  # same port, same JetStream directory
        wait_published(s, timeout=30)
        got = asyncio.run(replay(port, "oms.orders.ACC1", expect=n_orders))
        seqs = [int(i.split(":")[0]) for i, _t, _d in got]
        assert len(seqs) == n_orders and seqs == sorted(set(seqs))  # each order once and in order: none lost
        assert [d["order"]["cl_ord_id"] for _i, _t, d in got] == [f"K{n}" for n in range(n_orders)]
    finally:
        s.stop()
        server.stop()


def test_a_dropped_last_commit_is_found_in_the_journal_without_another_commit(tmp_path):
    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "T0")
        wait_published(s)
        s.runtime.followers = []  # the hand-over drops the last commit, and no commit follows
        order(s, "T1")
        wait_published(s, timeout=5)  # the publisher looks at the journal's end when idle
        assert streamed_orders(port, 2) == ["T0", "T1"]
    finally:
        s.stop()


def test_a_torn_mark_republishes_from_the_start_and_the_server_drops_the_duplicates(tmp_path, caplog):
    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "R0")
        wait_published(s)
    finally:
        s.stop()
    (s.run_dir / "nats-published.seq").write_text("")  # a kill mid-write, in an older version
    s = start(tmp_path, port)
    try:
        order(s, "R1")
        wait_published(s)
        assert streamed_orders(port, 2) == ["R0", "R1"]  # once each
        assert any("unreadable" in r.message for r in caplog.records)
    finally:
        s.stop()


def test_a_publisher_that_fails_inside_is_restarted(tmp_path, caplog):
    port = free_port()
    s = start(tmp_path, port)
    try:
        (s.run_dir / "nats-published.tmp").mkdir()  # its mark cannot be written: the publisher fails
        order(s, "F0")
        deadline = time.monotonic() + 30
        while not s.metrics.registry.get_sample_value("oms_stream_publisher_restarts_total") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.metrics.registry.get_sample_value("oms_stream_publisher_restarts_total") >= 1
        assert any("stream publisher failed in _drain" in r.message for r in caplog.records)
        (s.run_dir / "nats-published.tmp").rmdir()  # fixed: the restarted one carries on
        order(s, "F1")
        wait_published(s, timeout=15)
        assert streamed_orders(port, 2) == ["F0", "F1"]
    finally:
        s.stop()


def test_a_message_whose_predecessor_was_lost_in_flight_is_refused_then_all_go_in_order(tmp_path):
    """The window's guard, made to happen: the chain names a predecessor the server never stored
    (as if it died in a dead socket while later ones were still buffered)."""
    from gateways.nats_stream import STREAMS, NatsStreamer, _Acks
    from oms.model import OrderAccepted

    server = EmbeddedNats("127.0.0.1", free_port(), tmp_path / "nats")
    server.start()
    streamer = NatsStreamer(server.url, tmp_path / "journal.db", tmp_path)
    for seq in (1, 2, 3):
        new = NewOrder(session="C1", cl_ord_id=f"W{seq}", account="ACC1", symbol="AAPL", side=Side.BUY,
                       ord_type=OrdType.LIMIT, qty=100, price=100_000_000)
        ev = OrderAccepted(ts=0, order_id=f"O{seq}", exec_id=f"X{seq}", order=new, venue="V1")
        streamer.backlog.append((seq, list(streamer._messages(ev))))

    async def run() -> tuple:
        nc = await nats.connect(server.url)
        for name, subject in STREAMS.items():
            await nc.jetstream().add_stream(name=name, subjects=[subject])
        acks = _Acks(nc)
        await acks.start()
        refused = await streamer._send_window(acks, {"OMS_ORDERS": "0:lost"})
        sent = await streamer._send_window(acks, {})  # as _drain does: a new chain from the first unacknowledged
        info = await nc.jetstream().stream_info("OMS_ORDERS")
        await nc.close()
        return refused, sent, info.state.messages

    try:
        (acked, failure), sent, stored = asyncio.run(run())
        assert acked == 0 and failure is not None  # nothing stored after a gap
        assert sent == (3, None) and stored == 3
        got = asyncio.run(replay(server.port, "oms.orders.ACC1", expect=3))
        assert [i for i, _t, _d in got] == ["1:oms.orders.ACC1", "2:oms.orders.ACC1", "3:oms.orders.ACC1"]
    finally:
        server.stop()


def test_a_window_asks_one_answer_per_stream_and_a_refused_stream_holds_back_only_what_follows(tmp_path):
    """Only each stream's last message of a window asks for an acknowledgement; when one
    stream refuses (its chain names a message it never stored), the events before its
    first message in the window count as published, and the rest go again, in order."""
    from gateways.nats_stream import STREAMS, NatsStreamer, _Acks
    from oms.model import ComplianceAlert, OrderAccepted

    server = EmbeddedNats("127.0.0.1", free_port(), tmp_path / "nats")
    server.start()
    streamer = NatsStreamer(server.url, tmp_path / "journal.db", tmp_path)
    for seq in range(1, 7):  # orders, with a compliance alert as the third event
        if seq == 3:
            ev = ComplianceAlert(ts=0, control="fat_finger", text="soft", account="ACC1", symbol="AAPL")
        else:
            ev = OrderAccepted(ts=0, order_id=f"O{seq}", exec_id=f"X{seq}", venue="V1", order=NewOrder(
                session="C1", cl_ord_id=f"W{seq}", account="ACC1", symbol="AAPL", side=Side.BUY,
                ord_type=OrdType.LIMIT, qty=100, price=100_000_000))
        streamer.backlog.append((seq, list(streamer._messages(ev))))

    class Counted(_Acks):
        asked = 0

        async def publish(self, subject, data, headers):
            Counted.asked += 1
            return await super().publish(subject, data, headers)

    async def run() -> tuple:
        nc = await nats.connect(server.url)
        for name, subject in STREAMS.items():
            await nc.jetstream().add_stream(name=name, subjects=[subject])
        acks = Counted(nc)
        await acks.start()
        first = await streamer._send_window(acks, {"OMS_COMPLIANCE": "0:lost"})
        asked_first = Counted.asked
        for _ in range(first[0]):  # as _drain does
            streamer.backlog.popleft()
        second = await streamer._send_window(acks, {})
        js = nc.jetstream()
        stored = [(await js.stream_info(name)).state.messages for name in ("OMS_ORDERS", "OMS_COMPLIANCE")]
        await nc.close()
        return first, asked_first, second, stored

    try:
        (acked, failure), asked, second, stored = asyncio.run(run())
        assert asked == 2  # six messages in two streams: two answers asked for
        assert acked == 2 and failure is not None  # the orders before the refused alert are done
        assert second == (4, None) and stored == [5, 1]
        got = asyncio.run(replay(server.port, "oms.orders.ACC1", expect=5))
        assert [i for i, _t, _d in got] == [f"{n}:oms.orders.ACC1" for n in (1, 2, 4, 5, 6)]  # no gap, no double
    finally:
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
        live = subprocess.run([sys.executable, "-m", "oms.cli", "tail", "oms.positions.>", "--config", str(cfg_file),
                               "--replay"], capture_output=True, text=True, timeout=30)
        assert live.returncode == 2 and "NotFoundError" not in live.stderr, live.stderr
        assert "oms.positions.> is not kept in a JetStream stream" in live.stderr
        assert "oms.orders.>" in live.stderr and "oms.compliance.>" in live.stderr  # what can be replayed
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


def seed_file(path: Path) -> str:
    """A new user nkey seed in path; its public key."""
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path.write_bytes(seed)
    return nkeys.from_seed(bytearray(seed)).public_key.decode()


def test_nkey_authentication(tmp_path):
    port = free_port()
    seed_file(tmp_path / "oms.nk")
    reader = seed_file(tmp_path / "reader.nk")
    seed_file(tmp_path / "stranger.nk")  # a valid seed the server does not know
    s = start(tmp_path, port, f'nkey_seed = "{tmp_path / "oms.nk"}"\n'  # the OMS signs with its own seed
              f'[[nats.users]]\nnkey = "{reader}"\nsubscribe = ["oms.orders.>", "_INBOX.>"]\n'
              '[[nats.users]]\nuser = "compliance"\npassword = "c-secret"\nsubscribe = ["oms.compliance.>"]\n')
    url = f"nats://127.0.0.1:{port}"

    async def refused(**auth) -> bool:
        try:
            nc = await nats.connect(url, **auth, connect_timeout=2, allow_reconnect=False)
        except Exception:
            return True
        await nc.close()
        return False

    async def probe() -> dict:
        out = {"stranger": await refused(nkeys_seed=str(tmp_path / "stranger.nk")),
               "anonymous": await refused(),
               "password user": not await refused(user="compliance", password="c-secret")}
        nc = await nats.connect(url, nkeys_seed=str(tmp_path / "reader.nk"))
        sub = await nc.subscribe("oms.orders.ACC1")
        await nc.flush()
        order(s, "N1")
        out["received"] = (await sub.next_msg(timeout=10)).headers["Oms-Type"]
        await nc.close()
        return out

    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        assert asyncio.run(probe()) == {"stranger": True, "anonymous": True, "password user": True,
                                        "received": "OrderAccepted"}
    finally:
        s.stop()


def test_bounded_backlog_while_the_server_is_down(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateways.nats_stream")
    port = free_port()
    server = EmbeddedNats("127.0.0.1", port, tmp_path / "external-nats")
    server.start()
    s = System(config(port, f'url = "nats://127.0.0.1:{port}"\nmax_backlog = 3\n'), tmp_path, venues=False, fix=False,
               serve_metrics=False)
    s.start()
    gauge = s.metrics.registry.get_sample_value
    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        order(s, "D0")
        wait_published(s)
        server.stop()
        for n in range(1, 13):  # trading goes on: every order is accepted and journaled
            order(s, f"D{n}")
        deadline = time.monotonic() + 10
        while (len(s.engine.state.orders) < 13 or not gauge("oms_stream_backlog_full")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(s.engine.state.orders) == 13
        assert gauge("oms_stream_backlog_full") == 1 and gauge("oms_stream_backlog_events") == 3
        assert s.streamer.published < s.journal.last_seq - 3  # type: ignore[union-attr]  # the journal holds the rest
        server.start()
        wait_published(s, timeout=30)
        got = asyncio.run(replay(port, "oms.orders.ACC1", expect=13))
        ids = [i for i, _t, _d in got]
        assert len(ids) == 13 and len(set(ids)) == 13  # each order exactly once
        assert {d["order"]["cl_ord_id"] for _i, _t, d in got} == {f"D{n}" for n in range(13)}
        deadline = time.monotonic() + 5
        while gauge("oms_stream_backlog_full") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gauge("oms_stream_backlog_full") == 0 and gauge("oms_stream_backlog_events") == 0
        warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING and "backlog full" in r.message]
        assert len(warnings) == 1  # one alert per episode, not one per event
        assert any("backlog drained" in r.message for r in caplog.records)
    finally:
        s.stop()
        server.stop()


def test_live_events_come_in_memory_and_a_gap_is_read_from_the_journal(tmp_path):
    port = free_port()
    s = start(tmp_path, port)
    read = lambda: s.metrics.registry.get_sample_value("oms_stream_journal_read_events")  # noqa: E731
    try:
        order(s, "M0")
        wait_published(s)
        at_start = read()
        for n in range(1, 5):
            order(s, f"M{n}")
        wait_published(s)
        assert read() == at_start  # kept up: every event was handed over, none read back
        followers = s.runtime.followers
        s.runtime.followers = []  # the hand-over misses a commit
        order(s, "M5")
        # a query reads after the journal thread is done with every batch before it: M5's
        # commit has been handed to no follower
        assert s.runtime.query(lambda e: len(e.state.orders)) == 6
        s.runtime.followers = followers
        order(s, "M6")
        wait_published(s)
        assert read() > at_start  # the gap came from the journal
        got = asyncio.run(replay(port, "oms.orders.ACC1", expect=7))
        ids = [int(i.split(":")[0]) for i, _t, _d in got]
        assert ids == sorted(ids) and len(set(ids)) == 7  # in journal order, each once
        assert [d["order"]["cl_ord_id"] for _i, _t, d in got] == [f"M{n}" for n in range(7)]
    finally:
        s.stop()


def test_a_publisher_process_that_dies_is_restarted_and_loses_nothing(tmp_path, caplog):
    import os
    import signal

    port = free_port()
    s = start(tmp_path, port)
    try:
        order(s, "K0")
        wait_published(s)
        assert s.streamer is not None
        os.kill(s.streamer.pid, signal.SIGKILL)
        for n in range(1, 4):  # trading goes on meanwhile
            order(s, f"K{n}")
        wait_published(s, timeout=30)
        assert streamed_orders(port, 4) == ["K0", "K1", "K2", "K3"]  # each once, in order
        assert s.metrics.registry.get_sample_value("oms_stream_publisher_restarts_total") == 1
        assert any("stream publisher exited" in r.message and r.levelname == "ERROR" for r in caplog.records)
    finally:
        s.stop()


def test_an_existing_cluster_is_used_and_nothing_embedded(tmp_path):
    port, dead = free_port(), free_port()
    server = EmbeddedNats("127.0.0.1", port, tmp_path / "external-nats")
    server.start()
    s = System(config(port + 1, f'url = "nats://127.0.0.1:{dead}, nats://127.0.0.1:{port}"\n'), tmp_path,
               venues=False, fix=False, serve_metrics=False)  # the embedded port would be port + 1
    s.start()
    try:
        assert s.streamer.connected.wait(10)  # type: ignore[union-attr]
        assert s.nats is None and not (s.run_dir / "nats").exists()
        order(s, "E1")
        wait_published(s)
        assert [t for _i, t, _d in asyncio.run(replay(port, "oms.orders.ACC1", expect=1))] == ["OrderAccepted"]
    finally:
        s.stop()
        server.stop()


@pytest.mark.parametrize("nats, key", [
    ('[[nats.users]]\nuser = "a"\npassword = "p"\nnkey = "UABC"\n', "nats.users[0]"),
    ('[[nats.users]]\nnkey = "SUABC"\n', "nats.users[0].nkey"),  # a seed where the public key belongs
    ('user = "oms"\npassword = "p"\nnkey_seed = "oms.nk"\n', "nats.nkey_seed"),
    ("max_backlog = 0\n", "nats"),
])
def test_bad_nats_security_or_limits_are_refused(tmp_path, nats, key):
    from oms.config import ConfigError, load

    path = tmp_path / "bad.toml"
    path.write_text(config_text(4222, nats))
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load(path)
