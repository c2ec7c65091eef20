"""The P&L report ties out with the positions stream: a running OMS with a real nats-server
trades, allocates and gets quotes; the snapshot the stream answers equals the report over
the journal the OMS wrote."""
from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
import nats

from oms import reporting
from oms.model import Allocate, AllocationTarget, MarketData, Side
from oms.reporting import tables
from tests.fix_client import free_port
from tests.test_nats import child_of, fill, order, start, wait_published


def test_the_p_and_l_report_ties_out_with_the_positions_stream(tmp_path) -> None:
    port = free_port()
    s = start(tmp_path, port)
    try:
        quotes = [MarketData(symbol="AAPL", venue="V1", bid=99_980_000, ask=100_020_000),
                  MarketData(symbol="AAPL", venue="V2", bid=99_990_000, ask=100_040_000)]
        for q in quotes:  # to the engine (journaled best price) and to the stream (its marks), as venue links do
            s.runtime.submit(q)
            s.streamer.on_market_data(q)
        order(s, "T1", qty=300)
        order(s, "T2", qty=120, side=Side.SELL, venue="V2")
        c1, c2 = asyncio.run(child_of(s, "T1")), asyncio.run(child_of(s, "T2"))
        fill(s, c1, "f1", 100, 100_010_000)
        fill(s, c1, "f2", 200, 100_030_000)
        fill(s, c2, "f3", 120, 100_050_000)
        s.runtime.submit(Allocate(user="pm", alloc_id="AL-1", order_id=c1.order_id, method="qty",
                                  targets=(AllocationTarget("ACC2", 100),)))
        last = MarketData(symbol="AAPL", venue="V1", bid=100_100_000, ask=100_140_000)  # the closing mark
        s.runtime.submit(last)
        s.streamer.on_market_data(last)
        assert s.runtime.barrier()
        wait_published(s)

        async def snapshot() -> list:
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            for _ in range(50):  # until the closing mark has reached the stream's positions
                reply = msgspec.msgpack.decode((await nc.request("oms.positions.snapshot", b"{}", timeout=5)).data)
                if reply and all(p["mark"] == 100_070_000 for p in reply):
                    break
                await asyncio.sleep(0.1)
            await nc.close()
            return reply

        streamed = {(p["account"], p["symbol"]): p for p in asyncio.run(snapshot())}
    finally:
        s.stop()
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    facts = reporting.make(s.cfg, s.cfg.journal_path(tmp_path), today)
    report = {(r["account"], r["symbol"]): r for r in tables.positions(facts).to_pylist() if r["symbol"]}
    assert set(streamed) == {k for k, r in report.items() if r["closing_qty"]} == {("ACC1", "AAPL"), ("ACC2", "AAPL")}
    for key, p in streamed.items():
        r = report[key]
        assert r["closing_qty"] == p["qty"] and r["mark"] * 10**6 == p["mark"]
        assert r["closing_avg_px"] * 10**6 == p["avg_px"]
        assert r["realized"] * 10**6 == p["realized"] and r["unrealized_base"] * 10**6 == p["unrealized"]
        bought = sum(v["bought"] for v in p["venues"])
        sold = sum(v["sold"] for v in p["venues"])
        assert (r["bought"], r["sold"]) == (bought, sold)
        assert r["bought_value"] * 10**6 == sum(v["buy_value"] for v in p["venues"])
        assert r["sold_value"] * 10**6 == sum(v["sell_value"] for v in p["venues"])
    assert report[("ACC1", "AAPL")]["realized"] != 0  # the sale closed part of what the buy opened
