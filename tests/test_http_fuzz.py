"""Fuzz of the HTTP API's bodies against a running OMS: hypothesis-made JSON (and bytes
that are not JSON) for every endpoint that takes a body. The server stays up, every
answer is a success or a 4xx refusal naming what is wrong, never a 5xx, and afterwards the
engine's state hash equals a replay of its journal (nothing half-applied)."""
from __future__ import annotations

import http.client
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oms.config import Config
from oms.journal import Journal
from oms.runtime import rebuild
from oms.system import System
from tests.fix_client import free_port
from tests.test_risk_api import CONFIG, TOKENS, resting

FIELDS = {
    "/v1/allocations": ("alloc_id", "order_id", "targets", "qty"),
    "/v1/rebalance": ("accounts", "weights", "submit", "id", "route"),
    "/v1/risk/kill-switch": ("scope", "key", "on", "allow_reducing", "reduce_only", "reason"),
    "/v1/risk/limits": ("control", "value", "scope", "account", "symbol", "soft_pct", "reason"),
    "/v1/risk/overrides": ("account", "control", "until", "reason"),
    "/v1/risk/reenable": ("symbol", "side", "reason"),
    "/v1/session": ("token",),
}
WORDS = ["ACC1", "ACC2", "NOPE", "AAPL", "ZZZ", "V1", "DESK", "firm", "account", "instrument", "venue", "max_qty",
         "credit", "BUY", "1", "0.5", "-5", " 100", "1e999", "1e-9", "NaN", "2030-01-01T00:00:00Z", "", "x" * 70]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.sampled_from(WORDS), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["account", "qty", "weight", "capital", "AAPL", "x"]), inner, max_size=3), max_leaves=8)
bodies = st.sampled_from(sorted(FIELDS)).flatmap(lambda path: st.tuples(st.just(path), st.one_of(
    st.fixed_dictionaries({}, optional={f: values for f in FIELDS[path]}).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=40))))


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-fuzz")
    cfg = msgspec.toml.decode(CONFIG.format(port=free_port(), **TOKENS), type=Config)
    s = System(cfg, tmp, venues=False, fix=False, streams=False, serve_metrics=False)
    s.start()
    s.base = tmp
    yield s
    s.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=bodies, role=st.sampled_from(["risk", "pm", "viewer"]))
def test_every_body_gets_a_success_or_a_refusal_naming_what_is_wrong(oms, request, role):
    path, body = request
    conn = http.client.HTTPConnection("127.0.0.1", oms.cfg.api.port, timeout=10)
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {TOKENS[role]}"})
    resp = conn.getresponse()
    status, answer = resp.status, json.loads(resp.read())
    conn.close()
    assert status in (200, 201) or 400 <= status < 500, (path, body, status, answer)
    if status >= 400:
        assert answer["error"] and answer["text"], answer


def test_after_the_fuzz_the_state_is_what_the_journal_replays_to(oms):
    resting(oms, "AFTER")  # and the engine still takes orders
    live = oms.runtime.query(lambda e: e.state.state_hash())
    with Journal(oms.cfg.journal_path(oms.base), fsync=False) as journal:
        assert rebuild(oms.cfg, journal).state.state_hash() == live
