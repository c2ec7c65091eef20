"""Ranges: no figure overflows. An order whose notional is out of range is refused naming
the limit and changes nothing; the kernels equal their references and never raise over
the extreme ranges (saturating); money has its own range, a config error names the
range; numbers are plain text; positions without a fresh mark are valued at a stated
fallback, never at zero."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms.config import ConfigError, load
from gateways.fix_venue import _status_fields
from oms.fixed import (
    MAX_FIGURE, MAX_MONEY, MAX_NOTIONAL, MAX_PRICE, MAX_QTY, FixedPointError, to_money, to_price, to_qty, to_rounded_price,
)
from gateways.fix_trader import BadField, _price, _qty
from gateways.http_api import AllocationIn, ApiError, _decode
from oms.model import ComplianceAlert, MarketData, NewOrder, OrderRejected, OrdStatus, OrdType, Side, Timer
from oms.positions import apply_prices, mark_to_market, mark_to_market_ref
from oms.reasons import Reason
from oms.saturating import ceil_bps, clamp, mul_div
from risk.config import LimitRule, PostTradeRule, RiskConfig
from risk.controls import KERNEL_CONTROLS, UNLIMITED, Control
from risk.kernel import check_orders, check_orders_ref, new_arena, views
from risk.posttrade import RULES, evaluate, evaluate_ref
from tests.harness import Desk
from tests.test_bad_input import GOOD

F = MAX_FIGURE
money = st.one_of(st.integers(-F, F), st.sampled_from([-F, F, 0, MAX_MONEY, -MAX_MONEY, F - 1, 1 - F]))


# ---------------------------------------------------------------- the order that overflowed


def _risk_desk(**cfg: object) -> Desk:
    limits = [LimitRule(control=c, value=v) for c, v in (("price_collar", "500"), ("credit", "5000000000"),
                                                        ("gross_exposure", "5000000000"), ("net_exposure", "5000000000"),
                                                        ("firm_gross", "5000000000"))]
    return Desk(RiskConfig(limits=limits, **cfg))  # type: ignore[arg-type]


def _state(d: Desk) -> tuple:
    c = d.engine.compliance
    return dict(d.engine.state.orders), c.arena.copy().tobytes(), dict(c.tracked)


def test_the_order_that_overflowed_is_refused_naming_the_limit_and_changes_nothing():
    d = _risk_desk()
    d.run(MarketData(symbol="MSFT", venue="V1", bid=419_990_000, ask=420_010_000))
    before = _state(d)
    for qty in (95_000, 9_000):
        reps = d.nos(f"BIG{qty}", qty, "970881267.04", symbol="MSFT")
        assert len(reps) == 1 and reps[0].ord_status is OrdStatus.REJECTED
        rej = d.events[-1]
        assert isinstance(rej, OrderRejected) and rej.reason == Reason.NOTIONAL_TOO_LARGE.name
        assert "exceeds 100000000000" in rej.text and "970881267.04" in rej.text
    assert _state(d) == before
    assert d.nos("OK", 100, "420", symbol="MSFT")[0].ord_status is OrdStatus.PENDING_NEW


def test_a_market_order_out_of_range_at_the_reference_is_refused_by_max_notional():
    d = _risk_desk()
    d.run(MarketData(symbol="MSFT", venue="V1", bid=969_999_990_000_000, ask=970_000_010_000_000))
    before = _state(d)
    reps = d.nos("MKT", 1_000_000, None, ord_type=OrdType.MARKET, symbol="MSFT")
    assert reps[0].ord_status is OrdStatus.REJECTED
    rej = d.events[-1]
    assert isinstance(rej, OrderRejected) and rej.reason == Reason.RISK_MAX_NOTIONAL.name
    assert "100,000,000,000" in rej.text
    assert _state(d) == before


def test_the_price_collar_sees_a_price_far_from_the_reference():
    """abs(px - ref) * 10000 wrapped past int64: the collar passed an order 5 million times the price."""
    d = _risk_desk()
    d.run(MarketData(symbol="MSFT", venue="V1", bid=199_990_000, ask=200_010_000))
    reps = d.nos("FAR", 100, "970881267.04", symbol="MSFT")
    assert reps[0].ord_status is OrdStatus.REJECTED and d.events[-1].reason == Reason.RISK_PRICE_COLLAR.name


# ---------------------------------------------------------------- kernels over the extreme ranges


@given(money, st.integers(0, 10**4), st.integers(1, (1 << 62) - 1))
def test_mul_div_is_exact_and_saturates(x, m, d):
    assert mul_div(x, m, d) == clamp(x * m // d)
    if x >= 0:
        assert ceil_bps(x, d) == clamp(-(-x * 10000 // d))


@given(money, st.integers(0, 10**18), st.integers(1, 10**18))
def test_mul_div_with_large_multipliers(x, m, d):
    assert mul_div(x, m, d) == clamp(x * m // d)


@st.composite
def extreme_cases(draw):
    accounts, instruments = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    limit = st.one_of(st.just(UNLIMITED), st.integers(0, MAX_MONEY), st.just(MAX_NOTIONAL))
    lim = np.array([[[draw(limit) for _ in range(instruments)] for _ in range(accounts)]
                    for _ in range(KERNEL_CONTROLS)], np.int64)
    lim[Control.PRICE_MIN] = draw(st.integers(0, MAX_PRICE))  # the lowest price: never unlimited
    soft = np.array([draw(st.sampled_from([0, 5000, 10000])) for _ in range(KERNEL_CONTROLS)], np.int64)
    book = np.array([[[draw(money) if p in (0, 4) else draw(st.integers(0, F)) for _ in range(instruments)]
                      for _ in range(accounts)] for p in range(5)], np.int64)
    acct = np.array([[draw(st.integers(0, F)) for _ in range(accounts)], [draw(st.integers(0, F)) for _ in range(accounts)],
                     [draw(st.integers(0, 10**6)) for _ in range(accounts)], [draw(money) for _ in range(accounts)]],
                    np.int64)
    inst = np.array([[draw(st.integers(0, MAX_PRICE)) for _ in range(instruments)],
                     [draw(st.integers(0, MAX_QTY)) for _ in range(instruments)]], np.int64)
    orders = np.array([[draw(st.integers(0, accounts - 1)), draw(st.integers(0, instruments - 1)),
                        draw(st.sampled_from([1, -1])), draw(st.integers(0, 1)), draw(st.integers(1, MAX_QTY)),
                        draw(st.integers(1, MAX_PRICE)), draw(st.integers(0, 1))]
                       for _ in range(draw(st.integers(1, 5)))], np.int64)
    orders[orders[:, 2] > 0, 3] = 0
    return orders, lim, soft, book, acct, inst


@given(extreme_cases(), st.booleans())
def test_pre_trade_kernel_equals_reference_over_the_extreme_ranges(case, restore):
    orders, lim, soft, book, acct, inst = case
    expected = check_orders_ref(orders, lim, soft, book, acct, inst)
    arena = new_arena(lim.shape[1], lim.shape[2])
    for view, drawn in zip(views(arena), (lim, soft, book, acct, inst)):
        view[:] = drawn
    before = arena.copy()
    out = np.zeros((len(orders), 4), np.int64)
    check_orders(arena, orders, out, 0, restore)
    assert [tuple(int(x) for x in r) for r in out] == expected
    assert all(abs(int(x)) <= F for x in out[:, 2])
    if restore:
        assert np.array_equal(arena, before)


@given(st.data())
def test_post_trade_kernel_equals_reference_over_the_extreme_ranges(data):
    n_a, n_i = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))

    def grid(values):
        return np.array([[data.draw(values) for _ in range(n_i)] for _ in range(n_a)], np.int64)

    pos, cash = grid(money), grid(money)
    ref = np.array([data.draw(st.integers(0, MAX_PRICE)) for _ in range(n_i)], np.int64)
    nav = np.array([data.draw(st.integers(0, MAX_MONEY)) for _ in range(n_a)], np.int64)
    issuer = np.array([data.draw(st.integers(0, 2)) for _ in range(n_i)], np.int64)
    sector = np.array([data.draw(st.integers(0, 1)) for _ in range(n_i)], np.int64)
    long_lim, short_lim = grid(st.integers(0, UNLIMITED)), grid(st.integers(0, UNLIMITED))
    level = st.integers(0, UNLIMITED)
    warn = np.array([[data.draw(level) for _ in range(n_a)] for _ in range(RULES)], np.int64)
    hard = np.array([[data.draw(level) for _ in range(n_a)] for _ in range(RULES)], np.int64)
    priced = np.array([[data.draw(st.integers(0, 10)) for _ in range(n_i)],
                       [data.draw(st.integers(0, MAX_PRICE)) for _ in range(n_i)],
                       [data.draw(st.integers(0, MAX_PRICE)) for _ in range(n_i)]], np.int64)
    arrays = (pos, cash, ref, priced, data.draw(st.integers(0, 11)), nav, issuer, sector, long_lim, short_lim, warn, hard)
    levels, figures = np.zeros((RULES, n_a), np.int64), np.zeros((RULES, n_a), np.int64)
    evaluate(*arrays, -1, levels, figures)
    expected = evaluate_ref(*arrays, -1)
    assert {(r, a): (int(levels[r, a]), int(figures[r, a])) for r, a in expected} == expected


@given(st.data())
def test_marks_equal_reference_over_the_extreme_ranges(data):
    n_a, n_i = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))

    def grid(values):
        return np.array([[data.draw(values) for _ in range(n_i)] for _ in range(n_a)], np.int64)

    qty, cost, rates = grid(st.integers(-MAX_QTY, MAX_QTY)), grid(money), grid(st.integers(1, 10**18))
    marks = np.array([data.draw(st.integers(0, MAX_PRICE)) for _ in range(n_i)], np.int64)
    unrealized, totals = np.zeros((n_a, n_i), np.int64), np.zeros(n_a, np.int64)
    mark_to_market(qty, cost, marks, rates, unrealized, totals)
    cells, sums = mark_to_market_ref(qty, cost, marks, rates)
    assert unrealized.tolist() == cells and totals.tolist() == sums
    new = np.array([data.draw(st.integers(0, MAX_PRICE)) for _ in range(n_i)], np.int64)
    apply_prices(qty, cost, marks, rates, unrealized, totals, np.arange(n_i, dtype=np.int64), new)
    assert unrealized.tolist() == mark_to_market_ref(qty, cost, new, rates)[0]  # a cell is exact, whatever the path


# ---------------------------------------------------------------- numbers are plain text


@pytest.mark.parametrize("text", [" 100", "100 ", "1 00", "+100", "1_000", "\u0661\u0660\u0660", "100\n", "0x10", "--1"])
def test_numbers_with_spaces_or_other_forms_are_refused(text):
    for parse in (to_qty, to_price, to_money, to_rounded_price):
        with pytest.raises(FixedPointError):
            parse(text)


def test_the_fix_gateway_refuses_a_spaced_quantity_or_price():
    with pytest.raises(BadField, match="OrderQty"):
        _qty({38: " 100"})
    with pytest.raises(BadField, match="Price"):
        _price({44: "100 "}, 44, "Price")
    assert _qty({38: "100"}) == 100


@pytest.mark.parametrize("qty", [-5, 0, MAX_QTY + 1])
def test_an_allocation_quantity_out_of_range_is_a_bad_request_naming_the_field(qty):
    body = b'{"alloc_id": "A1", "order_id": "1-1", "targets": [{"account": "ACC1", "qty": %d}]}' % qty
    with pytest.raises(ApiError) as err:
        _decode(body, AllocationIn)
    assert err.value.status == 400 and err.value.body["error"] == "BAD_REQUEST"
    assert "targets[0].qty" in err.value.body["text"]


def test_a_venue_average_price_is_rounded_once_and_a_malformed_one_is_no_price():
    assert to_rounded_price("190.1234565") == 190_123_456 and to_rounded_price("190.1234575") == 190_123_458
    for text in ("abc", "1e30", " 190"):
        assert _status_fields({14: "100", 6: text, 39: "2"})["avg_px"] == 0  # raised InvalidOperation before


def test_plain_numbers_parse():
    assert to_qty("100") == 100 and to_price("-1.5") == -1_500_000 and to_price(".5") == 500_000
    assert to_money("5000000000") == 5 * 10**15 and to_qty("1e3") == 1000


# ---------------------------------------------------------------- money range in the config


def _load(tmp_path, extra: str):
    p = tmp_path / "c.toml"
    p.write_text(GOOD + extra)
    return load(p)


@pytest.mark.parametrize("control", ["credit", "gross_exposure", "net_exposure", "firm_gross", "max_notional"])
def test_money_limits_above_a_billion_load(tmp_path, control):
    cfg = _load(tmp_path, f"\n[[risk.limits]]\ncontrol = '{control}'\nvalue = '5000000000'\n"
                          "[risk.nav]\nA = '5000000000'\n[[risk.post_trade]]\nrule = 'daily_loss'\nhard = '5000000000'\n")
    assert cfg.risk.nav["A"] == "5000000000"


BAD_RANGES = [
    ("money limit", "\n[[risk.limits]]\ncontrol = 'credit'\nvalue = '1000000000001'\n", "risk.limits[0].value",
     "1000000000000"),
    ("price limit", "\n[[risk.limits]]\ncontrol = 'price_max'\nvalue = '1000000001'\n", "risk.limits[0].value",
     "1000000000"),
    ("count limit", "\n[[risk.limits]]\ncontrol = 'max_qty'\nvalue = '10000000000000'\n", "risk.limits[0].value",
     str(MAX_QTY)),
    ("spaced limit", "\n[[risk.limits]]\ncontrol = 'max_qty'\nvalue = ' 100'\n", "risk.limits[0].value", "' 100'"),
    ("soft level", "\n[[risk.limits]]\ncontrol = 'max_qty'\nvalue = '100'\nsoft_pct = 1000\n",
     "risk.limits[0].soft_pct", "100"),
    ("NAV too large", "\n[risk.nav]\nA = '5000000000000'\n", "risk.nav.A", "1000000000000"),
    ("negative NAV", "\n[risk.nav]\nA = '-5'\n", "risk.nav.A", "positive"),
    ("NAV of no account", "\n[risk.nav]\nNOBODY = '5'\n", "risk.nav.NOBODY", "unknown account"),
    ("daily loss", "\n[[risk.post_trade]]\nrule = 'daily_loss'\nhard = '2000000000000'\n", "risk.post_trade[0].hard",
     "1000000000000"),
    ("fx rate", "\n[fx]\nEUR = '2000000'\n", "fx.EUR", "1000000"),
    ("adv", "\n[risk.adv]\nAAPL = 10000000000000\n", "risk.adv.AAPL", str(MAX_QTY)),
    ("locate", "\n[[risk.locates]]\naccount = 'A'\nsymbol = 'AAPL'\nqty = -1\n", "risk.locates[0].qty", str(MAX_QTY)),
]


@pytest.mark.parametrize("what,extra,key,says", BAD_RANGES, ids=[b[0] for b in BAD_RANGES])
def test_a_value_out_of_range_names_the_key_and_the_range(tmp_path, what, extra, key, says):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, extra)
    assert err.value.key == key and says in err.value.reason, err.value.reason


# ---------------------------------------------------------------- daily loss without a market price


def _loss_desk(hard: str = "1000") -> Desk:
    return Desk(RiskConfig(post_trade=[PostTradeRule(rule="daily_loss", hard=hard)], nav={"ACC1": "10000000"}))


def _buy(d: Desk, cl: str, qty: int, price: str) -> None:
    d.nos(cl, qty, price)
    d.v_fill(cl, qty, price)


def test_no_market_data_is_no_loss_and_no_reduce_only():
    """27 buys of 100 at 189 with no quote: the positions are worth what they cost at the
    last fill, not nothing."""
    d = _loss_desk()
    for n in range(27):
        _buy(d, f"B{n}", 100, "189")
    assert not [e for e in d.events if isinstance(e, ComplianceAlert)]
    assert d.nos("LATER", 100, "189")[0].ord_status is OrdStatus.PENDING_NEW


def test_without_a_mark_the_last_fill_values_the_position_and_the_alert_says_so():
    d = _loss_desk()
    _buy(d, "B1", 100, "200")
    _buy(d, "B2", 100, "180")  # worth 36,000 at the last fill: 2,000 lost
    breach = [e for e in d.events if isinstance(e, ComplianceAlert)][-1]
    assert breach.level == "hard" and "2,000 > hard level 1,000" in breach.text
    assert "AAPL at its last fill 180" in breach.text
    d.run(MarketData(symbol="AAPL", venue="V1", bid=199_990_000, ask=200_010_000))  # a mark: back to even
    d.run(Timer())
    assert [e for e in d.events if isinstance(e, ComplianceAlert)][-1].level == "clear"


def test_the_configured_reference_price_is_the_fallback_before_any_fill():
    c = _loss_desk().engine.compliance
    i = c.symbols["AAPL"]
    c.static_ref[i] = 150_000_000
    marks, fresh = c.marks(0)
    assert marks[i] == 150_000_000 and not fresh[i]
    c.last_fill[i] = 180_000_000
    assert c.marks(0)[0][i] == 180_000_000


def test_a_stale_mark_falls_back_to_the_last_fill():
    d = Desk(RiskConfig(post_trade=[PostTradeRule(rule="daily_loss", hard="1000")], stale_price_s=5))
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    _buy(d, "B1", 100, "100")
    d.now += 10 * 10**9
    c = d.engine.compliance
    assert c.marks(d.now)[0][c.symbols["AAPL"]] == 100_000_000 and not c.marks(d.now)[1][c.symbols["AAPL"]]


def test_a_basket_order_beyond_the_ranges_is_refused_not_an_overflow():
    """A rebalance may propose more shares than the ranges hold: refused by max_qty."""
    d = _risk_desk()
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    big = NewOrder(session="S", cl_ord_id="", account="ACC1", symbol="AAPL", side=Side.BUY, ord_type=OrdType.MARKET,
                   qty=10**24)
    (v,) = d.engine.compliance.check_basket([big], d.now)
    assert v.control is Control.MAX_QTY
