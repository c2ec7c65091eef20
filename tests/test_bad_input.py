"""Bad input gets a typed rejection and leaves the state unchanged."""
from __future__ import annotations

import math
import subprocess
import sys

import msgspec
import pytest

from gateways.stdio import _decoder as stdio_decoder
from oms.config import ConfigError, load
from oms.fixed import MAX_PRICE, MAX_QTY, FixedPointError, avg_px, to_price, to_qty
from oms.model import NewOrder, OrderRejected, OrdType, Side, TimeInForce
from oms.reasons import Reason
from tests.harness import SESSION, Desk, px

BASE = dict(session=SESSION, cl_ord_id="B1", account="ACC1", symbol="AAPL", side=Side.BUY,
            ord_type=OrdType.LIMIT, qty=100, price=px("100"))

BAD_ORDERS = [
    ("zero quantity", dict(qty=0), Reason.BAD_QUANTITY, 13),
    ("negative quantity", dict(qty=-100), Reason.BAD_QUANTITY, 13),
    ("float quantity", dict(qty=100.0), Reason.BAD_QUANTITY, 13),
    ("quantity off lot", dict(symbol="BOND", qty=1500, price=px("99.5")), Reason.BAD_QUANTITY, 13),
    ("huge quantity", dict(qty=MAX_QTY + 1), Reason.QUANTITY_TOO_LARGE, 13),
    ("absurd quantity", dict(qty=10**40), Reason.QUANTITY_TOO_LARGE, 13),
    ("price off tick", dict(price=px("100.005")), Reason.PRICE_OFF_TICK, 18),
    ("futures price off tick", dict(symbol="ES", price=px("5000.1")), Reason.PRICE_OFF_TICK, 18),
    ("zero price", dict(price=0), Reason.BAD_PRICE, 99),
    ("negative price", dict(price=-px("1")), Reason.BAD_PRICE, 99),
    ("limit without price", dict(price=None), Reason.BAD_PRICE, 99),
    ("NaN price", dict(price=math.nan), Reason.BAD_PRICE, 99),
    ("huge price", dict(price=MAX_PRICE + 1), Reason.BAD_PRICE, 99),
    ("stop without stop price", dict(ord_type=OrdType.STOP, price=None), Reason.BAD_PRICE, 99),
    ("unknown instrument", dict(symbol="ZZZZ"), Reason.UNKNOWN_SYMBOL, 1),
    ("unknown account", dict(account="NOPE"), Reason.UNKNOWN_ACCOUNT, 15),
    ("account of another desk", dict(account="OTHER"), Reason.NOT_ENTITLED, 15),
    ("session not entitled", dict(session="CLIENT2"), Reason.NOT_ENTITLED, 15),
    ("unknown session", dict(session="INTRUDER"), Reason.NOT_ENTITLED, 15),
    ("unknown venue", dict(ex_destination="NOWHERE"), Reason.NO_VENUE, 0),
    ("GTD without expiry", dict(tif=TimeInForce.GTD), Reason.BAD_EXPIRE_TIME, 99),
    ("GTD in the past", dict(tif=TimeInForce.GTD, expire_time=1), Reason.BAD_EXPIRE_TIME, 99),
]


@pytest.mark.parametrize("what,fields,reason,fix_code", BAD_ORDERS, ids=[b[0] for b in BAD_ORDERS])
def test_bad_new_order_is_rejected_with_reason_and_changes_nothing(what, fields, reason, fix_code):
    d = Desk()
    d.nos("GOOD", 100)
    before = d.book()
    events = d.engine.handle(NewOrder(**{**BASE, **fields}))
    assert [type(e) for e in events] == [OrderRejected]
    assert events[0].reason == reason.name and events[0].text
    assert reason.ord_rej_reason == fix_code
    assert d.book() == before
    assert len(d.engine.state.orders) == 1


def test_bad_replace_is_refused_and_the_order_is_untouched():
    d = Desk()
    d.nos("X", 1000)
    d.v_ack("X")
    before = d.engine.state.state_hash()
    for qty, price in ((0, "100"), (-5, "100"), (1000, "100.001"), (1000, "-1"), (MAX_QTY * 10, "100")):
        rep = d.replace("Y", "X", qty, price)
        assert rep[0].msg_type == "9" and rep[0].cxl_rej_response_to == "2" and rep[0].text
    assert d.engine.state.state_hash() == before


def test_a_market_order_drops_a_stray_price():
    d = Desk()
    d.nos("M", 100, "123.45", ord_type=OrdType.MARKET)
    assert d.engine.state.find(SESSION, "M").price is None  # type: ignore[union-attr]


@pytest.mark.parametrize("line", [
    b'{"type":"NewOrder","session":"CLIENT1","cl_ord_id":"A","account":"ACC1","symbol":"AAPL",'
    b'"side":"1","ord_type":"2","qty":100,"price":NaN}',
    b'{"type":"NewOrder","session":"CLIENT1","cl_ord_id":"A","account":"ACC1","symbol":"AAPL",'
    b'"side":"1","ord_type":"2","qty":"100"}',
    b'{"type":"NewOrder","session":"CLIENT1","cl_ord_id":"A","account":"ACC1","symbol":"AAPL",'
    b'"side":"9","ord_type":"2","qty":100}',
    b'{"type":"Nope"}',
    b"not json",
])
def test_malformed_commands_are_refused_at_the_edge(line):
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        stdio_decoder.decode(line)


@pytest.mark.parametrize("text", ["NaN", "inf", "-Infinity", "1e400000", "1e999999", "-1e-999999", "abc", "", "1.0000001"])
def test_non_finite_or_inexact_prices_are_refused(text):
    with pytest.raises(FixedPointError):
        to_price(text)


def test_floats_never_enter_fixed_point():
    with pytest.raises(FixedPointError):
        to_price(100.25)  # type: ignore[arg-type]
    with pytest.raises(FixedPointError):
        to_qty("100.5")
    assert to_price("100.25") == 100_250_000 and to_qty("1e3") == 1000


def test_avg_px_rounds_once_half_even():
    assert str(avg_px(3 * px("1"), 3)) == "1.0000000000"
    assert str(avg_px(px("1"), 3)) == "0.3333333333"
    assert str(avg_px(px("2"), 3)) == "0.6666666667"
    assert avg_px(0, 0) == 0


# ---------------------------------------------------------------- config

GOOD = """
default_venue = "V1"
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

BAD_CONFIGS = [
    ("unknown key", "colour = 'blue'\n" + GOOD, "colour"),
    ("unknown nested key", GOOD + "\ncolour = 'blue'\n", "fix.sessions[0].colour"),
    ("wrong type", GOOD.replace('tick_size = "0.01"', "tick_size = 0.01"), "instruments[0].tick_size"),
    ("bad tick", GOOD.replace('"0.01"', '"zero"'), "instruments[0].tick_size"),
    ("negative tick", GOOD.replace('"0.01"', '"-0.01"'), "instruments[0].tick_size"),
    ("port out of range", GOOD + "\n[metrics]\nport = 70000\n", "metrics.port"),
    ("unknown account in session", GOOD.replace('accounts = ["A"]', 'accounts = ["B"]'), "fix.sessions[0].accounts"),
    ("default venue missing", GOOD.replace('default_venue = "V1"', 'default_venue = "V9"'), "default_venue"),
    ("bad commit mode", GOOD + "\n[journal]\ncommit = 'sometimes'\n", "journal.commit"),
    ("not TOML", "this is = = not toml", "-"),
    ("unknown control", GOOD + "\n[[risk.limits]]\ncontrol = 'max_fun'\nvalue = '1'\n", "risk.limits[0].control"),
    ("bad limit value", GOOD + "\n[[risk.limits]]\ncontrol = 'max_qty'\nvalue = 'lots'\n", "risk.limits[0].value"),
    ("limit for unknown account", GOOD + "\n[[risk.limits]]\ncontrol = 'max_qty'\nvalue = '5'\nscope = 'account'\n"
     "account = 'ZZ'\n", "risk.limits[0].account"),
    ("default account not the session's", GOOD.replace('accounts = ["A"]', 'accounts = ["A"]\ndefault_account = "B"'),
     "fix.sessions[0].default_account"),
    ("FIX port open without passwords", GOOD + '\n[fix]\nhost = "0.0.0.0"\n', "fix.sessions[0].password"),
    ("simulated venue off loopback", GOOD.replace("port = 19999", 'port = 19999\nhost = "0.0.0.0"'), "venues[0].host"),
    ("embedded NATS open without credentials", GOOD + '\n[nats]\nhost = "0.0.0.0"\n', "nats.host"),
    ("FIX message cap below a Logon", GOOD + "\n[fix]\nmax_message_bytes = 100\n", "fix"),
]


def test_a_fix_port_beyond_loopback_loads_with_a_password_for_every_session(tmp_path):
    p = tmp_path / "open.toml"
    p.write_text(GOOD.replace('accounts = ["A"]', 'accounts = ["A"]\nusername = "c1"\npassword = "secret"')
                 + '\n[fix]\nhost = "0.0.0.0"\n')
    assert load(p).fix.host == "0.0.0.0"


def test_good_config_loads(tmp_path):
    p = tmp_path / "ok.toml"
    p.write_text(GOOD)
    ref = load(p).reference_data()
    assert ref.instruments["AAPL"].tick_size == px("0.01") and ref.entitlements["C1"] == {"A"}


@pytest.mark.parametrize("what,text,key", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_names_file_key_and_reason(tmp_path, what, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(p)
    assert err.value.path == str(p) and err.value.key == key and err.value.reason


def test_cli_refuses_a_bad_config_with_a_message_and_nonzero_exit(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(GOOD + "\n[metrics]\nport = 70000\n")
    proc = subprocess.run([sys.executable, "-m", "oms.cli", "run", "--config", str(p)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert str(p) in proc.stderr and "metrics.port" in proc.stderr and "65535" in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "oms.cli", "run", "--config", str(tmp_path / "none.toml")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "none.toml" in missing.stderr


@pytest.mark.parametrize("cmd", [["--help"], ["run", "--help"], ["replay", "--help"], ["sim-venue", "--help"]])
def test_every_command_has_help(cmd):
    proc = subprocess.run([sys.executable, "-m", "oms.cli", *cmd], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: oms" in proc.stdout
