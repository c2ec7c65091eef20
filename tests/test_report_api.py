"""Reports over real HTTP from a running OMS: the same bytes as `oms report`, only the
user's accounts for a restricted user, charts, and clear refusals."""
from __future__ import annotations

import datetime as dt
import http.client
import io
import json

import msgspec
import pyarrow.parquet as pq
import pytest

from oms import reporting
from oms.config import Config
from oms.fixed import to_price
from oms.model import MarketData, NewOrder, OrdType, Side
from oms.system import System
from tests.fix_client import free_port
from tests.test_risk_api import CONFIG, TOKENS


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-api")
    cfg = msgspec.toml.decode(CONFIG.format(port=free_port(), **TOKENS), type=Config)
    s = System(cfg, tmp, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    r = s.runtime
    r.submit(MarketData(symbol="AAPL", venue="V1", bid=to_price("99.9"), ask=to_price("100.1")))
    for cl, account, side in (("S1", "ACC1", Side.SELL), ("B1", "ACC2", Side.BUY)):  # B1 crosses S1 internally
        r.submit(NewOrder(session="DESK", cl_ord_id=cl, account=account, symbol="AAPL", side=side,
                          ord_type=OrdType.LIMIT, qty=100, price=to_price("100"), ex_destination="CROSS"))
    assert r.barrier()
    yield s
    s.stop()


def get(s: System, path: str, role: str = "risk") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", s.cfg.api.port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKENS[role]}"})
    resp = conn.getresponse()
    out = resp.status, resp.getheader("Content-Type") or "", resp.read()
    conn.close()
    return out


def test_a_report_over_http_is_the_cli_s_bytes(oms: System) -> None:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    status, _, body = get(oms, "/v1/reports")
    catalogue = json.loads(body)
    assert status == 200 and catalogue["last_date"] == today and "tca-summary" in catalogue["reports"]
    status, kind, body = get(oms, f"/v1/reports/executions?date={today}&format=csv")
    assert status == 200 and kind.startswith("text/csv")
    journal = oms.cfg.journal_path(oms.base)
    facts = reporting.make(oms.cfg, journal, today)
    assert body == reporting.encode(reporting.REPORTS["executions"](facts), "csv")
    assert body.count(b"\n") == 3  # the header and both sides of the cross
    status, _, body = get(oms, "/v1/reports/tca-orders?format=parquet")  # default date: the journal's last
    table = pq.read_table(io.BytesIO(body))
    assert status == 200 and sorted(table.column("cl_ord_id").to_pylist()) == ["B1", "S1"]
    assert table.column("fill_rate").to_pylist() == [1.0, 1.0]
    status, kind, body = get(oms, "/v1/reports/charts/slippage?format=png")
    assert status == 200 and kind == "image/png" and body.startswith(b"\x89PNG")


def test_a_restricted_user_sees_only_its_accounts(oms: System) -> None:
    status, _, body = get(oms, "/v1/reports/orders?format=json", role="trader")  # trader: ACC1 only
    assert status == 200 and {r["account"] for r in json.loads(body)} == {"ACC1"}
    status, _, body = get(oms, "/v1/reports/venues", role="trader")
    assert status == 403 and json.loads(body)["error"] == "FORBIDDEN"
    status, _, body = get(oms, "/v1/reports/orders?format=json", role="viewer")  # every account
    assert status == 200 and {r["account"] for r in json.loads(body)} == {"ACC1", "ACC2"}


@pytest.mark.parametrize("path, status_, error", [
    ("/v1/reports/orders?date=2001-01-01", 404, "NO_DATA"),
    ("/v1/reports/orders?date=yesterday", 400, "BAD_REQUEST"),
    ("/v1/reports/orders?format=xlsx", 400, "BAD_REQUEST"),
    ("/v1/reports/blotters", 404, "NOT_FOUND"),
    ("/v1/reports/charts/pie", 404, "NOT_FOUND"),
    ("/v1/reports/orders?to=2001-01-01", 400, "BAD_REQUEST"),
])
def test_bad_requests_are_refused_clearly(oms: System, path: str, status_: int, error: str) -> None:
    status, _, body = get(oms, path)
    assert status == status_ and json.loads(body)["error"] == error


def test_the_oms_writes_the_day_s_reports_at_the_configured_time(tmp_path) -> None:
    import time

    from oms.config import ReportsConfig

    now = dt.datetime.now(dt.timezone.utc)
    if now.hour == 23 and now.minute == 59 and now.second > 50:  # the run's date and the events' must agree
        time.sleep(11)
    at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)).strftime("%H:%M:%S")
    cfg = msgspec.toml.decode(CONFIG.format(port=free_port(), **TOKENS), type=Config)
    cfg = msgspec.structs.replace(cfg, reports=ReportsConfig(at=at, reports=["tca-summary"]),
                                  api=msgspec.structs.replace(cfg.api, enabled=False))
    s = System(cfg, tmp_path, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    try:
        s.runtime.submit(MarketData(symbol="AAPL", venue="V1", bid=to_price("99.9"), ask=to_price("100.1")))
        deadline = time.monotonic() + 60
        while not s.end_of_day.runs and time.monotonic() < deadline:
            time.sleep(0.1)
        date = s.end_of_day.runs[0][0]
        assert s.end_of_day.runs == [(date, 0)]
        assert (tmp_path / "run" / "reports" / date / f"tca-summary-{date}.csv").is_file()
    finally:
        s.stop()
