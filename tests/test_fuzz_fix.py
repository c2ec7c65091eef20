"""Fuzz the trader acceptor's business fields over a real FIX session.

Hypothesis builds NewOrderSingle, OrderCancelRequest and OrderCancelReplaceRequest
messages from valid, extreme and malformed field values. The OMS must answer each with
a success or a reject that says why (Text), stay up, and end with a state that a replay
of its journal gives exactly.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways.fix_session import field, msg_type, new_message, utc_timestamp
from oms.config import load
from oms.journal import Journal
from oms.runtime import rebuild
from tests.test_fix_trader import Desk

NUMBERS = st.one_of(
    st.sampled_from(["100", "1", "0", "-5", "1e20", "NaN", "Infinity", "0x10", " 100", "100 ", "1.5", "99.999999",
                     "970881267.04", "999999999.99", "95000", "9" * 30, "", "abc", "1,000"]),
    st.integers(min_value=-10**12, max_value=10**20).map(str),
    st.decimals(min_value=-10**10, max_value=10**10, places=4, allow_nan=False).map(str),
)
# any character but SOH, which ends a field: a value holding one is a framing error, not a business field
CODES = st.one_of(st.sampled_from(["1", "2", "3", "4", "5", "6", "9", "0", "A", "Z", ""]),
                  st.text(st.characters(blacklist_characters="\x01"), max_size=3))
SYMBOLS = st.sampled_from(["AAPL", "MSFT", "NOPE", "", "A" * 200, "AAPL\u00e9"])
ACCOUNTS = st.sampled_from(["DEMO1", "DEMO2", "DEMO3", "OTHER", "", None])
TIMES = st.sampled_from([None, "20991231-23:59:59", "19700101-00:00:00", "garbage", "20261301-25:61:61"])

_ids = itertools.count(1)


@st.composite
def messages(draw) -> tuple[str, dict[int, str | None]]:
    kind = draw(st.sampled_from(["D", "D", "F", "G"]))
    f: dict[int, str | None] = {55: draw(SYMBOLS), 54: draw(CODES), 38: draw(NUMBERS)}
    if kind == "D":
        f.update({1: draw(ACCOUNTS), 40: draw(CODES), 44: draw(st.none() | NUMBERS), 99: draw(st.none() | NUMBERS),
                  59: draw(st.none() | CODES), 126: draw(TIMES), 100: draw(st.sampled_from([None, "TV", "BEST", "X"]))})
    else:
        f[41] = draw(st.sampled_from(["Z1", "Z2", "NOPE", "Z1000000"]))
        if kind == "G":
            f.update({40: draw(CODES), 44: draw(st.none() | NUMBERS)})
    return kind, f


def test_fuzzed_business_fields_get_an_answer_and_the_state_replays(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    try:
        with desk.trader() as t:
            answers: list[tuple[str, dict]] = []

            @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
            @given(messages())
            def run(message: tuple[str, dict[int, str | None]]) -> None:
                kind, fields = message
                m = new_message(kind)
                cl = f"Z{next(_ids)}"
                m.setField(11, cl)
                m.setField(60, utc_timestamp())
                for tag, value in fields.items():
                    if value:  # quickfix itself refuses an empty value at the session level
                        m.setField(tag, value)
                t.send(m)
                got = t.expect(None, timeout=10)
                while msg_type(got) not in ("3", "j") and field(got, 11) != cl:
                    got = t.expect(None, timeout=10)  # later reports of earlier orders: not this answer
                kinds = {"D": ("8", "3", "j"), "F": ("9", "8", "3", "j"), "G": ("9", "8", "3", "j")}[kind]
                assert msg_type(got) in kinds, (kind, fields, got.toString())
                if msg_type(got) == "8" and field(got, 39) not in ("8",):
                    assert field(got, 11) == cl  # a success: the order is the one sent
                else:
                    assert field(got, 58), (kind, fields, got.toString())  # a reject says why
                answers.append((kind, fields))

            run()
            # still up: a plain order is accepted
            t.new_order("LAST", "AAPL", "1", "100", "100.00", account="DEMO1")
            assert field(t.expect("8", t11="LAST"), 39) == "A"
    finally:
        desk.close()
    live = desk.system.engine.state.state_hash()
    cfg = desk.system.cfg
    with Journal(cfg.journal_path(tmp_path)) as j:
        assert rebuild(cfg, j).state.state_hash() == live
