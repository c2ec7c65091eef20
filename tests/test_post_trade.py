"""Post-trade rules: the Numba kernel equals its reference; breach and clear events from
fills and prices; a hard breach makes the account reduce-only; wash trades; replay."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from oms.model import ComplianceAlert, EvaluatePostTrade, MarketData, OrdStatus, SetLimit, Side, Timer
from oms.reasons import Reason
from risk.config import LimitRule, PostTradeRule, RiskConfig
from risk.controls import UNLIMITED
from risk.posttrade import RULES, evaluate, evaluate_ref
from tests.harness import Desk


@st.composite
def portfolios(draw):
    n_a, n_i = draw(st.integers(1, 3)), draw(st.integers(1, 4))

    def grid(values):
        return np.array([[draw(values) for _ in range(n_i)] for _ in range(n_a)], np.int64)

    pos = grid(st.integers(-1000, 1000))
    cash = grid(st.integers(-10**5, 10**5)) * 10**6
    ref = np.array([draw(st.sampled_from([0, 10, 100, 250])) * 10**6 for _ in range(n_i)], np.int64)
    priced = np.array([[draw(st.sampled_from([0, 5, 10])) for _ in range(n_i)],  # when each reference arrived,
                       [draw(st.sampled_from([0, 90, 110])) * 10**6 for _ in range(n_i)],  # the last fill,
                       [draw(st.sampled_from([0, 100])) * 10**6 for _ in range(n_i)]], np.int64)  # the configured price
    since = draw(st.sampled_from([-(1 << 62), 5, 11]))
    nav = np.array([draw(st.sampled_from([0, 10**5, 10**6])) * 10**6 for _ in range(n_a)], np.int64)
    issuer = np.array([draw(st.integers(0, 2)) for _ in range(n_i)], np.int64)
    sector = np.array([draw(st.integers(0, 1)) for _ in range(n_i)], np.int64)
    long_lim = grid(st.sampled_from([UNLIMITED, 0, 500]))
    short_lim = grid(st.sampled_from([UNLIMITED, 0, 300]))
    level = st.sampled_from([UNLIMITED, 0, 100, 2000, 10**9])
    warn = np.array([[draw(level) for _ in range(n_a)] for _ in range(RULES)], np.int64)
    hard = np.array([[draw(level) for _ in range(n_a)] for _ in range(RULES)], np.int64)
    return (pos, cash, ref, priced, since, nav, issuer, sector, long_lim, short_lim, warn, hard,
            draw(st.integers(-1, n_a - 1)))


@given(portfolios())
def test_kernel_equals_reference(p):
    *arrays, account = p
    n_a = arrays[0].shape[0]
    levels = np.zeros((RULES, n_a), np.int64)
    figures = np.zeros((RULES, n_a), np.int64)
    evaluate(*arrays, account, levels, figures)
    expected = evaluate_ref(*arrays, account)
    got = {(r, a): (int(levels[r, a]), int(figures[r, a])) for r, a in expected}
    assert got == expected


ADMIN = "risk-officer"


def desk(*rules: PostTradeRule, **cfg: object) -> Desk:
    cfg.setdefault("nav", {"ACC1": "100000", "ACC2": "100000"})
    return Desk(RiskConfig(post_trade=list(rules), admins=[ADMIN], **cfg))  # type: ignore[arg-type]


def alerts(d: Desk, control: str | None = None) -> list[ComplianceAlert]:
    return [e for e in d.events if isinstance(e, ComplianceAlert) and (control is None or e.control == control)]


def buy(d: Desk, cl: str, qty: int, price: str = "100", **kw: object) -> None:
    d.nos(cl, qty, price, **kw)
    d.v_ack(cl)
    d.v_fill(cl, qty, price)


def test_concentration_warn_hard_and_clear_on_fills():
    d = desk(PostTradeRule(rule="concentration", warn="2000", hard="3000"))  # 20% and 30% of NAV
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    buy(d, "B1", 200)  # 20,000 = 20%: at the warn level, no alert
    assert alerts(d, "post_concentration") == []
    buy(d, "B2", 1)
    warn = alerts(d, "post_concentration")[-1]
    assert warn.level == "warn" and warn.account == "ACC1" and "2010 bps of NAV > warn level 2000" in warn.text
    buy(d, "B3", 100)
    hard = alerts(d, "post_concentration")[-1]
    assert hard.level == "hard" and "3010 bps" in hard.text
    # hard breach: reduce-only until it clears
    rejected = d.nos("B4", 1)
    assert rejected[0].ord_status is OrdStatus.REJECTED and "reduce" in rejected[0].text
    assert d.events[-1].reason == Reason.RISK_REDUCE_ONLY.name  # type: ignore[union-attr]
    d.nos("S1", 200, side=Side.SELL)
    d.v_ack("S1")
    d.v_fill("S1", 200)
    assert alerts(d, "post_concentration")[-1].level == "clear"
    assert d.nos("B5", 1)[0].ord_status is OrdStatus.PENDING_NEW


def test_daily_loss_from_prices_on_the_timer_and_on_demand():
    d = desk(PostTradeRule(rule="daily_loss", warn="500", hard="1000"))
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    buy(d, "B1", 100)
    d.run(MarketData(symbol="AAPL", venue="V1", bid=93_990_000, ask=94_010_000))  # -600
    d.run(Timer())
    assert alerts(d, "post_daily_loss")[-1].level == "warn"
    d.run(MarketData(symbol="AAPL", venue="V1", bid=88_990_000, ask=89_010_000))  # -1,100
    d.run(EvaluatePostTrade(user=ADMIN))
    assert alerts(d, "post_daily_loss")[-1].level == "hard"
    assert "1,100 > hard level 1,000" in alerts(d, "post_daily_loss")[-1].text
    d.run(Timer())  # no change, no new alert
    assert len(alerts(d, "post_daily_loss")) == 2


def test_leverage_and_sector_exposure():
    d = desk(PostTradeRule(rule="leverage", hard="5000"), PostTradeRule(rule="sector", warn="3000"),
             sectors={"AAPL": "tech", "MSFT": "tech", "SPY": "etf"})
    for sym in ("AAPL", "MSFT", "SPY"):
        d.run(MarketData(symbol=sym, venue="V1", bid=99_990_000, ask=100_010_000))
    buy(d, "A", 200)
    buy(d, "M", 200, symbol="MSFT")
    assert alerts(d, "post_sector")[-1].level == "warn"  # 40,000 tech = 40%
    buy(d, "S", 200, symbol="SPY")
    assert alerts(d, "post_leverage")[-1].level == "hard"  # 60,000 gross = 60%


def test_position_limit_breach_after_trade():
    d = desk(PostTradeRule(rule="position", warn="0"), limits=[LimitRule(control="position_long", value="100")])
    buy(d, "B1", 100)
    d.run(SetLimit(user=ADMIN, control="position_long", value="50"))
    d.run(Timer())
    assert "50 shares > warn level 0 shares" in alerts(d, "post_position")[-1].text


def test_wash_trade_is_reported():
    d = desk(wash_window_ms=1000)
    buy(d, "B1", 10)
    d.nos("S1", 10, side=Side.SELL)
    d.v_ack("S1")
    d.v_fill("S1", 10)
    wash = alerts(d, "post_wash_trade")
    assert len(wash) == 1 and "ACC1 bought and sold AAPL" in wash[0].text


def test_breach_state_is_rebuilt_from_events():
    d = desk(PostTradeRule(rule="concentration", hard="1000"))
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_990_000, ask=100_010_000))
    buy(d, "B1", 200)
    assert d.engine.compliance.reduce_only_accounts == {0}
    fresh = desk(PostTradeRule(rule="concentration", hard="1000"))
    for ev in d.events:
        fresh.engine.state.apply(ev)
    c = fresh.engine.compliance
    assert (c.breach == d.engine.compliance.breach).all() and c.breach.any() and c.reduce_only_accounts == {0}
    assert (c.cash == d.engine.compliance.cash).all()
