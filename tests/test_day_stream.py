"""The trading day on the streams, against a real nats-server: start and end of day, a
halt and its resumption and a split, each on its subject of the OMS_DAY stream, in
journal order, replayable by a late consumer."""
from __future__ import annotations

import asyncio

import msgspec

from oms.config import Config
from oms.model import EndOfDay, StartOfDay, StockSplit, TradingHalt
from oms.system import System
from tests.fix_client import free_port
from tests.test_nats import config_text, replay, wait_published


def test_day_halt_and_split_events_are_streamed_on_the_day_subjects(tmp_path):
    port = free_port()
    cfg = msgspec.toml.decode(config_text(port).replace("[risk]\n", '[risk]\nadmins = ["ops"]\n', 1), type=Config)
    s = System(cfg, tmp_path, venues=False, fix=False, serve_metrics=False)
    s.start()
    try:
        assert s.streamer is not None and s.streamer.connected.wait(10)
        for cmd in (StartOfDay(user="ops", date="2026-12-23"),
                    TradingHalt(symbol="AAPL", halted=True, user="ops", reason="news pending"),
                    TradingHalt(symbol="AAPL", halted=False, user="ops", reason="news out"),
                    StockSplit(user="ops", symbol="AAPL", new=2, old=1, reason="2 for 1"),
                    EndOfDay(user="ops", reason="close")):
            s.runtime.submit(cmd)
        assert s.runtime.barrier()
        wait_published(s)
        got = asyncio.run(replay(port, "oms.day.>", expect=5))
        assert [(i.split(":", 1)[1], t) for i, t, _d in got] == [
            ("oms.day.started", "DayStarted"), ("oms.day.halts.AAPL", "HaltChanged"),
            ("oms.day.halts.AAPL", "HaltChanged"), ("oms.day.splits.AAPL", "SplitApplied"),
            ("oms.day.ended", "DayEnded")]  # and nothing more
        started, halted, resumed, split, ended = (d for _i, _t, d in got)
        assert (started["date"], started["user"]) == ("2026-12-23", "ops")
        assert (halted["symbol"], halted["venue"], halted["halted"], halted["reason"]) == ("AAPL", "", True,
                                                                                          "news pending")
        assert not resumed["halted"]
        assert (split["symbol"], split["new"], split["old"], split["user"]) == ("AAPL", 2, 1, "ops")
        assert (ended["type"], ended["date"], ended["user"]) == ("DayEnded", "2026-12-23", "ops")
    finally:
        s.stop()
