"""The risk and operations API over real HTTP against a running OMS: every role's
refusal (403, journaled as a ComplianceAlert), a risk user's kill switch canceling working
orders and journaled with user and reason, limits with their utilisation, bad input
refused naming the field and changing nothing, and the OpenAPI document."""
from __future__ import annotations

import http.client
import json
import threading
import time

import msgspec
import pytest

from oms.config import Config
from oms.fixed import to_price
from oms.model import ComplianceAlert, Event, NewOrder, OrdType, RiskChanged, SetKillSwitch, Side
from oms.system import System
from tests.fix_client import free_port

TOKENS = {"risk": "risk-token-0123456789", "trader": "trader-token-0123456789", "pm": "pm-token-0123456789",
          "viewer": "viewer-token-0123456789"}
CONFIG = """
run_dir = "run"
default_venue = "V1"
internal_cross = true
[api]
port = {port}
[[api.users]]
name = "risk"
token = "{risk}"
role = "risk"
[[api.users]]
name = "trader"
token = "{trader}"
role = "trader"
accounts = ["ACC1"]
[[api.users]]
name = "pm"
token = "{pm}"
[[api.users]]
name = "viewer"
token = "{viewer}"
role = "viewer"
[[venues]]
name = "V1"
port = 1
[venues.sim]
enabled = false
[[accounts]]
id = "ACC1"
[[accounts]]
id = "ACC2"
[[instruments]]
symbol = "AAPL"
ref_price = "100"
[[fix.sessions]]
comp_id = "DESK"
accounts = ["ACC1", "ACC2"]
[risk]
admins = ["risk"]
"""


class Journaled:
    """The committed events, as a runtime listener sees them; wait for one that matches."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cond = threading.Condition()

    def __call__(self, events: list[Event]) -> None:
        with self.cond:
            self.events.extend(events)
            self.cond.notify_all()

    def wait(self, pred, timeout: float = 5.0) -> Event:
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(e) for e in self.events), timeout), "no such event"
            return next(e for e in self.events if pred(e))


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("risk-api")
    cfg = msgspec.toml.decode(CONFIG.format(port=free_port(), **TOKENS), type=Config)
    s = System(cfg, tmp, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    s.journaled = Journaled()
    s.runtime.listeners.append(s.journaled)
    yield s
    s.stop()


def call(s: System, method: str, path: str, body: object = None, role: str | None = "risk",
         raw: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", s.cfg.api.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if role is not None:
        headers["Authorization"] = f"Bearer {TOKENS[role]}"
    conn.request(method, path, body=raw if raw is not None else None if body is None else json.dumps(body).encode(),
                 headers=headers)
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read() or b"null")
    conn.close()
    return out


def resting(s: System, cl: str, account: str = "ACC1") -> str:
    """A limit order resting in the internal crossing book (working, no venue needed); its id."""
    done = threading.Event()
    s.runtime.submit(NewOrder(session="DESK", cl_ord_id=cl, account=account, symbol="AAPL", side=Side.BUY,
                              ord_type=OrdType.LIMIT, qty=100, price=to_price("99"), ex_destination="CROSS"),
                     lambda _ev: done.set())
    assert done.wait(5)
    return s.runtime.query(lambda e: e.state.find("DESK", cl).order_id)


def eventually(check, timeout: float = 5.0) -> bool:
    """For what the console feed samples once a second, with no event to wait on."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def status(s: System, order_id: str) -> str:
    return s.runtime.query(lambda e: e.state.orders[order_id].status.name)


@pytest.mark.parametrize("role", ["trader", "pm", "viewer"])
def test_only_risk_changes_controls_and_every_refusal_is_journaled(oms, role):
    order_id = resting(oms, f"R-{role}")
    attempts = [("/v1/risk/kill-switch", {"scope": "account", "key": "ACC1", "reason": f"{role} tries"}),
                ("/v1/risk/limits", {"control": "max_qty", "value": 5, "reason": f"{role} tries"}),
                ("/v1/risk/overrides", {"account": "ACC1", "control": "max_qty", "until": "2030-01-01T00:00:00Z",
                                        "reason": f"{role} tries"}),
                ("/v1/risk/reenable", {"symbol": "AAPL", "side": "BUY", "reason": f"{role} tries"})]
    for path, body in attempts:
        got, refused = call(oms, "POST", path, body, role=role)
        assert (got, refused["error"]) == (403, "FORBIDDEN"), (path, refused)
    for kind in ("SetKillSwitch", "SetLimit", "SetOverride", "ReenableExecutions"):
        oms.journaled.wait(lambda e: isinstance(e, ComplianceAlert) and e.control == "authorisation"
                           and e.text == f"{kind} refused: user {role!r} is not authorised")
    assert call(oms, "POST", "/v1/risk/post-trade", role=role)[0] == 403
    if role == "viewer":  # nor anything else
        for path in ("/v1/allocations", "/v1/rebalance"):
            assert call(oms, "POST", path, {}, role=role)[1]["error"] == "FORBIDDEN"
    assert status(oms, order_id) == "NEW"  # nothing was switched
    assert call(oms, "GET", "/v1/risk/controls", role=role)[1]["kill_switches"] == []
    assert not any(isinstance(e, RiskChanged) and e.user == role for e in oms.journaled.events)


def test_a_risk_users_kill_switch_cancels_working_orders_and_is_journaled(oms):
    mine, other = resting(oms, "K1"), resting(oms, "K2", account="ACC2")
    got, body = call(oms, "POST", "/v1/risk/kill-switch",
                     {"scope": "account", "key": "ACC1", "reason": "runaway algo", "user": "someone-else"})
    assert (got, body["error"]) == (400, "BAD_REQUEST") and "user" in body["text"]  # the actor is never a field
    got, body = call(oms, "POST", "/v1/risk/kill-switch", {"scope": "account", "key": "ACC1", "reason": "runaway algo"})
    assert got == 200 and (body["user"], body["reason"]) == ("risk", "runaway algo"), body
    changed = oms.journaled.wait(lambda e: isinstance(e, RiskChanged) and e.reason == "runaway algo")
    assert changed.user == "risk" and changed.change == SetKillSwitch(user="risk", scope="account", key="ACC1",
                                                                      reason="runaway algo")
    assert (status(oms, mine), status(oms, other)) == ("CANCELED", "NEW")
    assert eventually(lambda: oms.metrics.registry.get_sample_value("oms_kill_switches_on") == 1)  # for alerting
    switches = call(oms, "GET", "/v1/risk/controls", role="viewer")[1]["kill_switches"]
    assert switches == [{"scope": "account", "key": "ACC1", "user": "risk", "reason": "runaway algo",
                         "allow_reducing": False, "reduce_only": False}]
    got, body = call(oms, "POST", "/v1/risk/kill-switch", {"scope": "account", "key": "ACC1", "on": False,
                                                           "reason": "algo fixed"})
    assert got == 200 and call(oms, "GET", "/v1/risk/controls")[1]["kill_switches"] == []
    for key in ("DESK", "API:pm"):  # a trader's FIX session, an API user's orders
        switch = {"scope": "session", "key": key, "reason": "check"}
        assert call(oms, "POST", "/v1/risk/kill-switch", switch)[0] == 200
        assert call(oms, "POST", "/v1/risk/kill-switch", {**switch, "on": False})[0] == 200


@pytest.mark.parametrize("path, body, status_, error, field", [
    ("/v1/risk/kill-switch", {"scope": "galaxy", "key": "ACC1", "reason": "x"}, 400, "BAD_REQUEST", "scope"),
    ("/v1/risk/kill-switch", {"scope": "account", "key": "NOPE", "reason": "x"}, 422, "BAD_FIELD", "key"),
    ("/v1/risk/kill-switch", {"scope": "venue", "key": "V9", "reason": "x"}, 422, "BAD_FIELD", "key"),
    ("/v1/risk/kill-switch", {"scope": "session", "key": "API:nobody", "reason": "x"}, 422, "BAD_FIELD", "key"),
    ("/v1/risk/kill-switch", {"scope": "firm"}, 400, "BAD_REQUEST", "reason"),
    ("/v1/risk/kill-switch", {"scope": "firm", "reason": "  "}, 400, "BAD_FIELD", "reason"),
    ("/v1/risk/limits", {"control": "max_qty", "value": -5, "reason": "x"}, 422, "BAD_FIELD", "value"),
    ("/v1/risk/limits", {"control": "credit", "value": "1e40", "reason": "x"}, 422, "BAD_FIELD", "value"),
    ("/v1/risk/limits", {"control": "warp_speed", "value": 1, "reason": "x"}, 422, "BAD_FIELD", "control"),
    ("/v1/risk/limits", {"control": "max_qty", "value": 5, "scope": "account", "account": "NOPE", "reason": "x"},
     422, "BAD_FIELD", "account"),
    ("/v1/risk/overrides", {"account": "ACC1", "control": "max_qty", "until": "tomorrow", "reason": "x"}, 400,
     "BAD_FIELD", "until"),
    ("/v1/risk/reenable", {"symbol": "ZZZ", "side": "BUY", "reason": "x"}, 422, "BAD_FIELD", "symbol"),
])
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(oms, path, body, status_, error, field):
    before = len(oms.journaled.events)
    got, refused = call(oms, "POST", path, body)
    assert (got, refused["error"]) == (status_, error), refused
    assert field in refused["text"]
    assert call(oms, "GET", "/v1/risk/controls")[1]["kill_switches"] == []
    oms.runtime.barrier()
    assert not any(isinstance(e, RiskChanged | ComplianceAlert) for e in oms.journaled.events[before:])


def test_malformed_json_is_refused(oms):
    got, refused = call(oms, "POST", "/v1/risk/kill-switch", raw=b"{scope: firm")
    assert (got, refused["error"]) == (400, "BAD_JSON")


def test_limits_show_their_utilisation_and_a_new_limit_applies(oms):
    resting(oms, "L1", account="ACC2")
    got, body = call(oms, "POST", "/v1/risk/limits", {"control": "max_open_orders", "value": 4, "scope": "account",
                                                      "account": "ACC2", "reason": "tighter for the afternoon"})
    assert got == 200, body
    limits = call(oms, "GET", "/v1/risk/limits", role="viewer")[1]
    assert limits["rules"][-1] == {"control": "max_open_orders", "value": "4", "scope": "account", "account": "ACC2",
                                   "symbol": "", "soft_pct": None}
    rows = limits["utilisation"]
    (row,) = [r for r in rows if (r["account"], r["control"]) == ("ACC2", "max_open_orders")]
    working = oms.runtime.query(lambda e: sum(1 for o in e.state.orders.values()
                                              if o.account == "ACC2" and o.status.name == "NEW"))
    assert (row["figure"], row["limit"], row["pct"]) == (str(working), "4", 100 * working / 4)


def test_overrides_reenable_post_trade_and_sessions(oms):
    got, body = call(oms, "POST", "/v1/risk/overrides", {"account": "ACC1", "control": "max_qty",
                                                         "until": "2030-01-01T00:00:00+00:00", "reason": "block"})
    assert got == 200, body
    assert call(oms, "GET", "/v1/risk/controls")[1]["overrides"] == [
        {"account": "ACC1", "control": "max_qty", "until": "2030-01-01T00:00:00+00:00"}]
    assert call(oms, "POST", "/v1/risk/reenable", {"symbol": "AAPL", "side": "BUY", "reason": "reviewed"})[0] == 200
    got, body = call(oms, "POST", "/v1/risk/post-trade")
    assert got == 200 and body == {"alerts": []}
    got, body = call(oms, "GET", "/v1/sessions", role="viewer")
    assert got == 200 and body["traders"][0]["session"] == "DESK" and body["venues"][0]["venue"] == "V1"


def test_an_openapi_document_describes_the_api(oms):
    got, doc = call(oms, "GET", "/v1/openapi.json", role=None)
    assert got == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/allocations", "/v1/risk/kill-switch", "/v1/risk/limits", "/v1/sessions"} <= set(doc["paths"])


def test_sign_in_sets_a_strict_http_only_cookie_and_changes_on_it_need_the_csrf_token(oms):
    conn = http.client.HTTPConnection("127.0.0.1", oms.cfg.api.port, timeout=10)
    conn.request("POST", "/v1/session", body=json.dumps({"token": "wrong-token-0123456789"}))
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())["error"]) == (401, "UNAUTHORIZED")
    conn.request("POST", "/v1/session", body=json.dumps({"token": TOKENS["risk"]}))
    resp = conn.getresponse()
    body, cookie = json.loads(resp.read()), resp.getheader("set-cookie")
    assert body == {"user": "risk", "role": "risk"} and TOKENS["risk"] not in cookie
    assert {"httponly", "samesite=strict", "path=/"} <= {p.strip().lower() for p in cookie.split(";")}
    session = {"Cookie": cookie.split(";", 1)[0]}
    conn.request("GET", "/v1/session", headers=session)
    me = json.loads(conn.getresponse().read())
    assert (me["user"], me["role"]) == ("risk", "risk") and len(me["csrf"]) > 20
    change = json.dumps({"scope": "instrument", "key": "AAPL", "on": False, "reason": "from the console"})
    conn.request("POST", "/v1/risk/kill-switch", body=change, headers=session)  # as another site would
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())["error"]) == (403, "CSRF")
    conn.request("POST", "/v1/risk/kill-switch", body=change, headers={**session, "X-OMS-CSRF": me["csrf"]})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["user"] == "risk"
    conn.request("DELETE", "/v1/session", headers=session)
    conn.getresponse().read()
    conn.request("GET", "/v1/risk/controls", headers=session)
    assert conn.getresponse().status == 401  # signed out
    conn.close()


def test_the_console_feed_shows_each_user_only_its_accounts(oms):
    resting(oms, "F1", account="ACC1")
    resting(oms, "F2", account="ACC2")

    def snapshot(role: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", oms.cfg.api.port, timeout=10)
        conn.request("GET", "/v1/console/stream", headers={"Authorization": f"Bearer {TOKENS[role]}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
        event = data = None
        while data is None:
            line = resp.fp.readline().decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        conn.close()
        assert event == "snapshot"
        return data

    mine = snapshot("trader")  # accounts ACC1
    assert {o["account"] for o in mine["orders"]} == {"ACC1"} and "F1" in {o["cl_ord_id"] for o in mine["orders"]}
    assert {o["account"] for o in snapshot("viewer")["orders"]} == {"ACC1", "ACC2"}


@pytest.mark.parametrize("api, key", [
    ('[[api.users]]\nname = "boss"\ntoken = "boss-token-0123456789"\nrole = "pm"\n', "api.users[0].role"),  # in admins
    ('[[api.users]]\nname = "ops"\ntoken = "ops-token-0123456789"\nrole = "risk"\n', "api.users[0].role"),  # not
    ('request_timeout_s = 0\n', "api"),
])
def test_config_refuses_roles_out_of_step_with_risk_admins_and_bad_http_limits(tmp_path, api, key):
    from oms.config import ConfigError, load

    p = tmp_path / "oms.toml"
    p.write_text(f'[risk]\nadmins = ["boss"]\n[api]\n{api}')
    with pytest.raises(ConfigError) as err:
        load(p)
    assert err.value.key == key
