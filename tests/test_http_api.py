"""The allocation API over real HTTP on loopback, against a running OMS: allocations,
look-ups, rebalancing proposals and their submission, and every refusal with its status
and reason, the server answering on after each."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import msgspec
import pytest

from oms.config import Config
from oms.fixed import to_price
from oms.model import ExecType, NewOrder, OrdType, SetKillSwitch, Side, VenueExecReport
from oms.system import System
from tests.fix_client import free_port

PM = "pm-token-0123456789"
JUNIOR = "junior-token-0123456789"
CONFIG = """
run_dir = "run"
default_venue = "V1"
fx = {{ USD = "1", EUR = "2" }}
[api]
port = {port}
request_timeout_s = 2
[[api.users]]
name = "pm"
token = "{pm}"
[[api.users]]
name = "junior"
token = "{junior}"
accounts = ["BLOCK", "ACC1"]
[[venues]]
name = "V1"
port = 1
[venues.sim]
enabled = false
[[accounts]]
id = "BLOCK"
[[accounts]]
id = "ACC1"
[[accounts]]
id = "ACC2"
[[instruments]]
symbol = "AAPL"
ref_price = "100"
[[instruments]]
symbol = "MSFT"
ref_price = "50"
[[instruments]]
symbol = "SAP"
ref_price = "100"
currency = "EUR"
[[fix.sessions]]
comp_id = "DESK"
accounts = ["BLOCK"]
[risk]
admins = ["risk"]
restricted_by_account = {{ ACC2 = ["MSFT"] }}
"""


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    cfg = msgspec.toml.decode(CONFIG.format(port=free_port(), pm=PM, junior=JUNIOR), type=Config)
    s = System(cfg, tmp, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    yield s
    s.stop()


def call(s: System, method: str, path: str, body: object = None, token: str | None = PM,
         raw: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", s.cfg.api.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def block(s: System, cl: str, fills: list[tuple[int, str]], symbol: str = "AAPL") -> str:
    """A BLOCK order filled at the venue in these fills; its order id."""
    done = threading.Event()
    qty = sum(q for q, _ in fills)
    s.runtime.submit(NewOrder(session="DESK", cl_ord_id=cl, account="BLOCK", symbol=symbol, side=Side.BUY,
                              ord_type=OrdType.LIMIT, qty=qty, price=to_price("101")), lambda _ev: done.set())
    assert done.wait(5)
    order_id, child = s.runtime.query(lambda e: (o := e.state.find("DESK", cl)).order_id and
                                      (o.order_id, e.state.children[o.children[-1]]))
    for n, (q, price) in enumerate(fills):
        s.runtime.submit(VenueExecReport(venue=child.venue, cl_ord_id=child.cl_ord_id, exec_id=f"{cl}-{n}",
                                         exec_type=ExecType.TRADE, last_qty=q, last_px=to_price(price)))
    assert s.runtime.barrier()
    return order_id


def test_a_block_is_allocated_by_weight_and_looked_up(oms):
    order_id = block(oms, "B1", [(100, "100"), (200, "100.01")])
    status, booked = call(oms, "POST", "/v1/allocations", {
        "alloc_id": "AL-1", "order_id": order_id,
        "targets": [{"account": "ACC1", "weight": "1"}, {"account": "ACC2", "weight": "2"}]})
    assert status == 201, booked
    assert [(x["account"], x["qty"], x["value"]) for x in booked["shares"]] == [
        ("ACC1", 100, "10000.666667"), ("ACC2", 200, "20001.333333")]
    assert booked["avg_px"] == "100.0066666667" and booked["value"] == "30002"
    status, order = call(oms, "GET", f"/v1/orders/{order_id}")
    assert status == 200 and (order["cum_qty"], order["allocated_qty"], order["unallocated_qty"]) == (300, 300, 0)
    assert call(oms, "GET", "/v1/allocations/AL-1") == (200, {k: v for k, v in booked.items() if k != "alerts"})
    status, held = call(oms, "GET", "/v1/accounts/ACC2/positions")
    assert status == 200 and held["positions"][0]["qty"] == 200 and held["positions"][0]["symbol"] == "AAPL"
    assert call(oms, "GET", "/v1/accounts/BLOCK/positions")[1]["positions"] == []  # all of it went out


def test_refusals_carry_their_status_and_reason_and_change_nothing(oms):
    order_id = block(oms, "B2", [(50, "99.5")])
    cases = [
        ({"alloc_id": "X", "order_id": "none", "targets": [{"account": "ACC1", "qty": 1}]}, 404, "UNKNOWN_ORDER"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "qty": 51}]}, 422, "OVER_ALLOCATION"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "qty": -5}]}, 400, "BAD_REQUEST"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "weight": " 1"}]}, 400, "BAD_NUMBER"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "NOPE", "qty": 1}]}, 422, "UNKNOWN_ACCOUNT"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "qty": 1, "weight": "1"}]}, 400,
         "BAD_ALLOCATION"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "weight": 0.5}]}, 400, "BAD_REQUEST"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [{"account": "ACC1", "weight": "1e999999"}]}, 400,
         "BAD_NUMBER"),
        ({"alloc_id": "X", "order_id": order_id, "targets": [], "colour": "red"}, 400, "BAD_REQUEST"),
    ]
    for body, status, error in cases:
        got = call(oms, "POST", "/v1/allocations", body)
        assert (got[0], got[1]["error"]) == (status, error), (body, got)
        assert got[1]["text"]
    assert call(oms, "POST", "/v1/allocations", raw=b"{not json")[1]["error"] == "BAD_JSON"
    assert call(oms, "PUT", "/v1/allocations", raw=b"{}")[0] == 405
    assert call(oms, "GET", "/v1/nothing")[0] == 404
    assert call(oms, "GET", f"/v1/orders/{order_id}")[1]["unallocated_qty"] == 50
    # a duplicate id is a conflict that shows what was booked under it
    assert call(oms, "POST", "/v1/allocations", {"alloc_id": "AL-2", "order_id": order_id,
                                                   "targets": [{"account": "ACC1", "qty": 20}]})[0] == 201
    status, body = call(oms, "POST", "/v1/allocations", {"alloc_id": "AL-2", "order_id": order_id,
                                                         "targets": [{"account": "ACC1", "qty": 20}]})
    assert status == 409 and body["existing"]["shares"][0]["qty"] == 20
    assert call(oms, "GET", "/v1/health")[0] == 200


def test_a_target_that_fails_a_holding_control_refuses_the_whole_allocation(oms):
    order_id = block(oms, "B3", [(40, "50")], symbol="MSFT")
    status, body = call(oms, "POST", "/v1/allocations", {
        "alloc_id": "AL-3", "order_id": order_id,
        "targets": [{"account": "ACC1", "qty": 20}, {"account": "ACC2", "qty": 20}]})
    assert (status, body["error"], body["account"]) == (422, "RISK_RESTRICTED", "ACC2")
    assert call(oms, "GET", f"/v1/orders/{order_id}")[1]["unallocated_qty"] == 40


def test_an_allocation_is_canceled_once_and_its_shares_go_back(oms):
    order_id = block(oms, "B5", [(60, "100")])
    assert call(oms, "POST", "/v1/allocations", {"alloc_id": "AL-5", "order_id": order_id,
                                                   "targets": [{"account": "ACC2", "qty": 60}]})[0] == 201
    assert call(oms, "DELETE", "/v1/allocations/AL-5", token=JUNIOR)[0] == 403  # ACC2 is not junior's
    status, body = call(oms, "DELETE", "/v1/allocations/AL-5")
    assert (status, body["status"]) == (200, "canceled")
    assert call(oms, "GET", "/v1/allocations/AL-5")[1]["status"] == "canceled"
    assert call(oms, "GET", f"/v1/orders/{order_id}")[1]["unallocated_qty"] == 60
    status, body = call(oms, "DELETE", "/v1/allocations/AL-5")
    assert (status, body["error"]) == (409, "ALLOCATION_CANCELED")
    assert call(oms, "DELETE", "/v1/allocations/NOPE")[0] == 404


def test_users_need_a_token_and_act_only_for_their_accounts(oms):
    order_id = block(oms, "B4", [(10, "100")])
    body = {"alloc_id": "AL-4", "order_id": order_id, "targets": [{"account": "ACC2", "qty": 10}]}
    assert call(oms, "POST", "/v1/allocations", body, token=None)[0] == 401
    assert call(oms, "POST", "/v1/allocations", body, token="wrong-token-0123456789")[0] == 401
    status, refused = call(oms, "POST", "/v1/allocations", body, token=JUNIOR)
    assert (status, refused["error"], refused["account"]) == (403, "FORBIDDEN", "ACC2")
    assert call(oms, "GET", "/v1/accounts/ACC2/positions", token=JUNIOR)[0] == 403
    assert call(oms, "POST", "/v1/allocations", {**body, "targets": [{"account": "ACC1", "qty": 10}]},
                token=JUNIOR)[0] == 201


def test_rebalance_proposes_checked_orders_and_submits_them_once(oms):
    held = {p["symbol"]: p["qty"] for p in call(oms, "GET", "/v1/accounts/ACC2/positions")[1]["positions"]}
    request = {"accounts": [{"account": "ACC2", "capital": "100000"}], "weights": {"AAPL": "0.5", "MSFT": "0.25"}}
    status, plan = call(oms, "POST", "/v1/rebalance", request)
    assert status == 200 and plan["submitted"] is False
    rows = {p["symbol"]: p for p in plan["accounts"][0]["proposals"]}
    # 50,000 buys 500 AAPL at 100; 25,000 buys 500 MSFT at 50, which ACC2 may not hold
    assert (rows["AAPL"]["side"], rows["AAPL"]["qty"], rows["AAPL"]["passed"]) == ("BUY", 500 - held["AAPL"], True)
    assert (rows["MSFT"]["qty"], rows["MSFT"]["passed"], rows["MSFT"]["control"]) == (500, False, "restricted")
    assert plan["accounts"][0]["invested"] == "75000"
    status, sent = call(oms, "POST", "/v1/rebalance", {**request, "submit": True, "id": "RB1"})
    assert status == 201
    rows = {p["symbol"]: p for p in sent["accounts"][0]["proposals"]}
    assert rows["AAPL"]["order"]["status"] == "accepted" and "order" not in rows["MSFT"]
    # the working order counts: proposing again proposes no more AAPL; a retry sends nothing twice
    again = call(oms, "POST", "/v1/rebalance", request)[1]["accounts"][0]["proposals"]
    assert [p["symbol"] for p in again] == ["MSFT"]
    status, retry = call(oms, "POST", "/v1/rebalance", {**request, "weights": {"AAPL": "0.6"}, "submit": True,
                                                        "id": "RB1"})
    order = retry["accounts"][0]["proposals"][0]["order"]
    assert (order["status"], order["reason"]) == ("rejected", "DUPLICATE_CL_ORD_ID")
    assert order["order_id"] == rows["AAPL"]["order"]["order_id"]


@pytest.mark.parametrize("body, status, error", [
    ({"accounts": [{"account": "ACC1"}], "weights": {"AAPL": "0.7", "MSFT": "0.4"}}, 422, "BAD_WEIGHTS"),
    ({"accounts": [{"account": "ACC1"}], "weights": {"ZZZ": "0.1"}}, 422, "UNKNOWN_SYMBOL"),
    ({"accounts": [{"account": "ACC1", "capital": "-5"}], "weights": {"AAPL": "0.1"}}, 422, "BAD_CAPITAL"),
    ({"accounts": [{"account": "ACC1"}], "weights": {"AAPL": "0.1"}, "submit": True}, 400, "BAD_REBALANCE"),
    ({"accounts": [], "weights": {"AAPL": "0.1"}}, 400, "BAD_REBALANCE"),
])
def test_bad_rebalance_requests_are_refused(oms, body, status, error):
    got = call(oms, "POST", "/v1/rebalance", body)
    assert (got[0], got[1]["error"]) == (status, error), got


def test_api_requests_are_counted(oms):
    call(oms, "GET", "/v1/health")
    assert oms.metrics.registry.get_sample_value("oms_api_requests_total", {"method": "GET", "status": "200"}) >= 1


def test_an_api_open_to_the_network_without_users_is_refused(tmp_path: Path):
    from oms.config import ConfigError, load

    p = tmp_path / "oms.toml"
    p.write_text('[api]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError) as err:
        load(p)
    assert err.value.key == "api.users"


def test_a_duplicate_id_shows_the_existing_booking_only_to_who_may_see_it(oms):
    order_id = block(oms, "B6", [(10, "100")])
    assert call(oms, "POST", "/v1/allocations", {"alloc_id": "AL-6", "order_id": order_id,
                                                   "targets": [{"account": "ACC2", "qty": 10}]})[0] == 201
    status, body = call(oms, "POST", "/v1/allocations", {"alloc_id": "AL-6", "order_id": "x",
                                                         "targets": [{"account": "ACC1", "qty": 1}]}, token=JUNIOR)
    assert (status, body["error"]) == (409, "DUPLICATE_ALLOC_ID") and "existing" not in body
    bad = {"alloc_id": "desk/2026/1", "order_id": order_id, "targets": [{"account": "ACC1", "qty": 1}]}
    assert call(oms, "POST", "/v1/allocations", bad)[1]["error"] == "BAD_ALLOCATION"  # not an id a path can carry


def raw(s: System, data: bytes) -> bytes:
    """What the server answers to these bytes on one connection, until it closes it or goes quiet."""
    with socket.create_connection(("127.0.0.1", s.cfg.api.port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
                if got.count(b"HTTP/1.1 ") >= data.count(b"HTTP/1.1\r\n"):
                    break
        except TimeoutError:
            pass
    return got


def test_requests_that_would_put_a_connection_out_of_step_are_refused_and_it_is_closed(oms):
    auth = f"Authorization: Bearer {PM}\r\n".encode()
    health = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + auth
    # a body on a GET is read, so the next request on the connection is answered as itself
    got = raw(oms, health + b"Content-Length: 5\r\n\r\nhello" + health + b"\r\n")
    assert got.count(b"HTTP/1.1 200") == 2
    for headers in (b"Transfer-Encoding: chunked\r\n", b"Content-Length: 2\r\nContent-Length: 9\r\n",
                    "Content-Length: \u00b2\r\n".encode()):
        got = raw(oms, b"POST /v1/allocations HTTP/1.1\r\nHost: x\r\n" + auth + headers + b"\r\n2\r\n{}\r\n" + health
                  + b"\r\n")
        assert got.startswith(b"HTTP/1.1 400") and got.count(b"HTTP/1.1 ") == 1, got  # and closed
    assert call(oms, "GET", "/v1/health")[0] == 200


def test_rebalance_proposals_respect_kill_switches_and_large_capital(oms):
    def switch(on: bool) -> None:
        oms.runtime.submit(SetKillSwitch(user="risk", scope="account", key="ACC1", on=on))
        assert oms.runtime.barrier()

    switch(True)
    try:
        status, plan = call(oms, "POST", "/v1/rebalance", {"accounts": [{"account": "ACC1", "capital": "5000000000"}],
                                                           "weights": {"AAPL": "0.1"}})
    finally:
        switch(False)
    assert status == 200, plan
    (row,) = [p for p in plan["accounts"][0]["proposals"] if p["symbol"] == "AAPL"]
    assert (row["passed"], row["control"]) == (False, "kill_switch") and row["target"] == 5_000_000


def test_rebalance_sizes_in_the_instruments_currency(oms):
    """Half of 100,000 USD in a EUR stock at 100 EUR, one EUR being 2 USD: 250 shares."""
    status, plan = call(oms, "POST", "/v1/rebalance", {"accounts": [{"account": "ACC1", "capital": "100000"}],
                                                       "weights": {"SAP": "0.5"}})
    (row,) = [p for p in plan["accounts"][0]["proposals"] if p["symbol"] == "SAP"]
    assert (status, row["target"], row["qty"]) == (200, 250, 250)
    assert plan["accounts"][0]["invested"] == "50000"


def test_every_refusal_is_json_including_the_protocols_own(oms):
    auth = f"Authorization: Bearer {PM}\r\n".encode()
    for method, path, status in (("TRACE", "/v1/health", 405), ("HEAD", "/v1/allocations", 405),
                                 ("GET", "/v1/nothing", 404), ("DELETE", "/v1/health", 405),
                                 ("GET", "/v1/openapi.json/x", 404), ("GET", "/nothing", 404)):
        got = raw(oms, f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n")
        assert got.startswith(f"HTTP/1.1 {status}".encode()) and b"content-type: application/json" in got.lower(), got
    cases = ((b"GET /v1/" + b"x" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, b"URI_TOO_LONG"),
             (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20_000 + b"\r\n\r\n", 431,
              b"HEADERS_TOO_LARGE"),
             (b"GET /v1/health HTTP/1.1\r\nHost x\r\n\r\n", 400, b"BAD_REQUEST"),
             (b"POST /v1/allocations HTTP/1.1\r\nHost: x\r\n\r\n", 411, b"LENGTH_REQUIRED"))
    for data, status, error in cases:
        with socket.create_connection(("127.0.0.1", oms.cfg.api.port), timeout=5) as sock:
            sock.sendall(data)
            got = b""
            while chunk := sock.recv(65536):  # each is answered, then the connection closed
                got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode()) and msgspec.json.decode(body)["error"] == error.decode()
    assert call(oms, "GET", "/v1/health")[0] == 200


def test_a_slow_loris_flood_does_not_keep_a_real_client_out(oms):
    """64 connections trickling a request a byte at a time: a real client is served
    throughout, and each trickler gets 408 and is closed at the request deadline."""
    deadline = oms.cfg.api.request_timeout_s
    flood = [socket.create_connection(("127.0.0.1", oms.cfg.api.port), timeout=5) for _ in range(64)]
    try:
        started, waits = time.monotonic(), []
        for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n":  # one byte a round, never a whole request
            if time.monotonic() - started > deadline + 0.5:
                break
            for s in flood:
                try:
                    s.sendall(bytes([byte]))
                except OSError:  # closed at its deadline
                    pass
            t0 = time.monotonic()
            assert call(oms, "GET", "/v1/health")[0] == 200
            waits.append(time.monotonic() - t0)
            time.sleep(0.1)  # the flood's pace
        assert len(waits) >= 10 and max(waits) < 1.0, waits
        for s in flood:
            got = b""
            while chunk := s.recv(4096):
                got += chunk
            assert got.startswith(b"HTTP/1.1 408") and b'"TIMEOUT"' in got, got
    finally:
        for s in flood:
            s.close()
