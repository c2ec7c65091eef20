"""The trading day over the operations API, real HTTP against a running OMS: start and end
the day, halt and resume a symbol, split a stock (role risk, a reason each); refusals by
the engine are 422 with its reason, other roles 403."""
from __future__ import annotations

from oms.model import DayEnded, DayStarted, HaltChanged, SplitApplied
from tests.test_risk_api import call, oms, resting  # noqa: F401 (oms: the running OMS, a fixture)


def test_an_operator_runs_the_day_halts_and_splits_over_http(oms):
    assert call(oms, "GET", "/v1/day", role="viewer") == (200, {"date": None, "open": False, "halts": {}})
    assert call(oms, "POST", "/v1/day/start", {"date": "2026-12-23", "reason": "open"}, role="trader")[0] == 403
    assert call(oms, "POST", "/v1/day/start", {"date": "2026-12-23", "reason": " "})[0] == 400
    code, out = call(oms, "POST", "/v1/day/start", {"date": "2026-12-23", "reason": "open"})
    assert code == 200 and out["date"] == "2026-12-23" and out["open"] and "DayStarted" in out["events"]
    assert oms.journaled.wait(lambda e: type(e) is DayStarted).user == "risk"
    code, out = call(oms, "POST", "/v1/day/start", {"reason": "again"})
    assert code == 422 and "is open" in out["text"]
    order = resting(oms, "R1")
    code, out = call(oms, "POST", "/v1/halts", {"symbol": "AAPL", "halted": True, "reason": "news"})
    assert code == 200 and out["halts"] == {"AAPL": ["operator"]}
    assert oms.journaled.wait(lambda e: type(e) is HaltChanged).reason == "news"
    assert call(oms, "POST", "/v1/halts", {"symbol": "ZZZ", "halted": True, "reason": "x"})[0] == 422
    assert call(oms, "POST", "/v1/halts", {"symbol": "AAPL", "halted": False, "reason": "news out"})[1]["halts"] == {}
    code, out = call(oms, "POST", "/v1/splits", {"symbol": "AAPL", "new": 2, "old": 1, "reason": "2 for 1"})
    assert code == 200 and "SplitApplied" in out["events"] and "ExecutionReport" in out["events"]
    assert oms.journaled.wait(lambda e: type(e) is SplitApplied).new == 2
    assert oms.runtime.query(lambda e: e.state.orders[order].order_qty) == 200
    assert call(oms, "POST", "/v1/splits", {"symbol": "AAPL", "new": 0, "old": 1, "reason": "x"})[0] == 422
    code, out = call(oms, "POST", "/v1/day/end", {"reason": "close"})
    assert code == 200 and not out["open"] and oms.journaled.wait(lambda e: type(e) is DayEnded)
    assert call(oms, "POST", "/v1/day/end", {"reason": "again"})[0] == 422
