"""Each pre-trade control at the engine: accepted at its limit, rejected just past it with
its reason; soft levels; throttles over a window; the kill switch; runtime changes; and
the compliance state rebuilt from the journaled events."""
from __future__ import annotations

import pytest

from oms.model import (
    ComplianceAlert, MarketData, OrderRejected, OrdStatus, OrdType, ReenableExecutions, RiskChanged, SetKillSwitch, SetLimit,
    SetOverride, Side,
)
from oms.reasons import Reason
from oms.state import OmsState
from risk.config import LimitRule, Locate, RiskConfig
from tests.harness import Desk

ADMIN = "risk-officer"


def desk(*rules: LimitRule, **cfg: object) -> Desk:
    cfg.setdefault("admins", [ADMIN])
    return Desk(RiskConfig(limits=list(rules), **cfg))  # type: ignore[arg-type]


def rule(control: str, value: str, **kw: str) -> LimitRule:
    return LimitRule(control=control, value=value, **kw)  # type: ignore[arg-type]


def rejected(reps, reason: Reason) -> str:
    """The Text of a NewOrderSingle rejected for `reason` (fails otherwise)."""
    assert len(reps) == 1 and reps[0].ord_status is OrdStatus.REJECTED, reps
    assert reps[0].ord_rej_reason == reason.ord_rej_reason
    return reps[0].text


def accepted(reps) -> bool:
    return bool(reps) and reps[0].ord_status is OrdStatus.PENDING_NEW


def reason_of(d: Desk) -> str:
    return [e for e in d.events if isinstance(e, OrderRejected)][-1].reason


# (rule, order at the limit, order just past it, reason) ------------------------------------
CASES = [
    ("max_qty", rule("max_qty", "1000"), dict(qty=1000), dict(qty=1001), "RISK_MAX_QTY", "1001 > 1000"),
    ("max_notional", rule("max_notional", "100000"), dict(qty=1000, price="100"), dict(qty=1000, price="100.01"),
     "RISK_MAX_NOTIONAL", "100,010 > 100,000"),
    ("price_max", rule("price_max", "150", scope="instrument", symbol="AAPL"), dict(price="150"),
     dict(price="150.01"), "RISK_PRICE_MAX", "150.01 > 150"),
    ("price_min", rule("price_min", "50"), dict(price="50"), dict(price="49.99"), "RISK_PRICE_MIN", "49.99 < 50"),
    ("max_open_orders", rule("max_open_orders", "1", scope="account", account="ACC1"), dict(), dict(),
     "RISK_MAX_OPEN_ORDERS", "2 > 1"),
    ("position_long", rule("position_long", "500"), dict(qty=500), dict(qty=1), "RISK_POSITION_LONG", "501 > 500"),
    ("credit", rule("credit", "50000", scope="account", account="ACC1"), dict(qty=500, price="100"),
     dict(qty=1, price="100"), "RISK_CREDIT", "50,100 > 50,000"),
    ("gross_exposure", rule("gross_exposure", "20000"), dict(qty=200, price="100"), dict(qty=1, price="100"),
     "RISK_GROSS_EXPOSURE", "20,100 > 20,000"),
    ("firm_gross", rule("firm_gross", "20000"), dict(qty=200, price="100"), dict(qty=1, price="100", account="ACC2"),
     "RISK_FIRM_GROSS", "20,100 > 20,000"),
]


@pytest.mark.parametrize("name,limit,at,past,reason,figures", CASES, ids=[c[0] for c in CASES])
def test_control_accepts_at_the_limit_and_rejects_past_it(name, limit, at, past, reason, figures):
    d = desk(limit)
    assert accepted(d.nos("A1", **{"qty": 100, **at}))
    reps = d.nos("A2", **{"qty": 100, **past})
    text = rejected(reps, Reason[reason])
    assert name in text and figures in text, text
    assert reason_of(d) == reason


def test_net_exposure_counts_buys_against_sells():
    d = desk(rule("net_exposure", "10000"))
    assert accepted(d.nos("B1", 100, "100"))
    assert accepted(d.nos("S1", 200, "100", side=Side.SELL))  # net -10,000: at the limit
    text = rejected(d.nos("S2", 1, "100", side=Side.SELL), Reason.RISK_NET_EXPOSURE)
    assert "10,100 > 10,000" in text


def test_position_short_and_locates():
    d = desk(rule("position_short", "300"), locates=[Locate(account="ACC1", symbol="AAPL", qty=200)])
    assert accepted(d.nos("S1", 200, side=Side.SELL_SHORT))
    assert "201 > 200" in rejected(d.nos("S2", 1, side=Side.SELL_SHORT), Reason.RISK_LOCATE)
    assert accepted(d.nos("S3", 100, side=Side.SELL))  # a long sale needs no locate...
    assert "301 > 300" in rejected(d.nos("S4", 1, side=Side.SELL), Reason.RISK_POSITION_SHORT)  # ...but counts
    rejected(d.nos("S5", 1, side=Side.SELL_SHORT, symbol="MSFT"), Reason.RISK_LOCATE)  # none located


def test_restricted_globally_and_per_account():
    d = desk(restricted=["MSFT"], restricted_by_account={"ACC2": ["AAPL"]})
    assert "restricted" in rejected(d.nos("R1", 10, symbol="MSFT"), Reason.RISK_RESTRICTED)
    rejected(d.nos("R2", 10, account="ACC2"), Reason.RISK_RESTRICTED)
    assert accepted(d.nos("R3", 10))


def test_price_collar_against_the_market_and_the_stale_price_guard():
    d = desk(rule("price_collar", "500"), stale_price_s=5)  # 5% around the reference
    text = rejected(d.nos("C0", 10, "100"), Reason.RISK_STALE_PRICE)  # no market data yet
    assert "AAPL" in text
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_950_000, ask=100_050_000))
    assert accepted(d.nos("C1", 10, "105"))
    assert "500" in rejected(d.nos("C2", 10, "105.01"), Reason.RISK_PRICE_COLLAR)
    assert accepted(d.nos("C3", 10, "95"))
    d.now += 6 * 10**9
    rejected(d.nos("C4", 10, "100"), Reason.RISK_STALE_PRICE)


def test_market_orders_are_valued_at_the_reference():
    d = desk(rule("max_notional", "10000"))
    d.run(MarketData(symbol="AAPL", venue="V1", bid=99_000_000, ask=101_000_000))
    assert accepted(d.nos("M1", 100, None, ord_type=OrdType.MARKET))  # 100 x 100 = 10,000
    assert "10,100 > 10,000" in rejected(d.nos("M2", 101, None, ord_type=OrdType.MARKET), Reason.RISK_MAX_NOTIONAL)


def test_max_adv():
    d = desk(rule("max_adv", "100"), adv={"AAPL": 100_000})  # 1% of ADV
    assert accepted(d.nos("V1", 1000))
    rejected(d.nos("V2", 1001), Reason.RISK_MAX_ADV)


def test_hierarchy_most_restrictive_wins():
    d = desk(rule("max_qty", "1000"), rule("max_qty", "500", scope="account", account="ACC2"),
             rule("max_qty", "200", scope="account_instrument", account="ACC2", symbol="MSFT"))
    assert accepted(d.nos("H1", 1000))
    assert accepted(d.nos("H2", 500, account="ACC2"))
    rejected(d.nos("H3", 501, account="ACC2"), Reason.RISK_MAX_QTY)
    rejected(d.nos("H4", 201, account="ACC2", symbol="MSFT"), Reason.RISK_MAX_QTY)


def test_soft_level_passes_with_an_alert():
    d = desk(rule("max_qty", "1000", soft_pct=80))
    assert accepted(d.nos("S1", 800))
    assert not [e for e in d.events if isinstance(e, ComplianceAlert)]
    assert accepted(d.nos("S2", 801))
    alert = [e for e in d.events if isinstance(e, ComplianceAlert)][-1]
    assert alert.control == "max_qty" and alert.level == "soft" and alert.account == "ACC1"
    rejected(d.nos("S3", 1001), Reason.RISK_MAX_QTY)


def test_limits_are_released_on_cancel_reject_and_consumed_by_fills():
    d = desk(rule("position_long", "100"))
    d.nos("P1", 100)
    rejected(d.nos("P2", 1), Reason.RISK_POSITION_LONG)
    d.cancel("P1c", "P1")
    d.v_canceled("P1")
    assert accepted(d.nos("P3", 60))
    d.v_ack("P3")
    d.v_fill("P3", 60)
    assert accepted(d.nos("P4", 40))  # 60 held + 40 working = 100
    d.v_reject("P4")
    assert accepted(d.nos("P5", 40))
    rejected(d.nos("P6", 1), Reason.RISK_POSITION_LONG)


def test_replace_that_breaches_is_refused_with_a_cancel_reject():
    d = desk(rule("max_qty", "1000"))
    d.nos("R1", 500)
    d.v_ack("R1")
    before = d.engine.compliance.arena.copy()
    reps = d.replace("R2", "R1", 1001, "100")
    assert reps[0].msg_type == "9" and "1001 > 1000" in reps[0].text
    assert (d.engine.compliance.arena == before).all()  # the what-if gave back the working quantity it released
    assert d.replace("R3", "R1", 1000, "100")[0].exec_type.name == "PENDING_REPLACE"


def test_throttle_over_a_one_second_window():
    d = desk(throttle_new_per_s=3)
    for n in range(3):
        assert accepted(d.nos(f"T{n}", 10))
    rejected(d.nos("T3", 10), Reason.RISK_THROTTLE)
    d.now += 10**9 + 1
    assert accepted(d.nos("T4", 10))


def test_duplicate_order_detection_within_its_window():
    d = desk(duplicate_window_ms=500)
    assert accepted(d.nos("D1", 100, "100"))
    rejected(d.nos("D2", 100, "100"), Reason.RISK_DUPLICATE_ORDER)
    assert accepted(d.nos("D3", 101, "100"))
    d.now += 501 * 10**6
    assert accepted(d.nos("D4", 100, "100"))


def test_order_to_trade_ratio():
    d = desk(max_order_to_trade=50)
    assert all(accepted(d.nos(f"O{n}", 1)) for n in range(100))
    assert "100 orders, 0 executions" in rejected(d.nos("O100", 1), Reason.RISK_ORDER_TO_TRADE)


def test_repeated_execution_throttle_stays_off_until_re_enabled():
    d = desk(repeated_execution_max=3, repeated_execution_window_ms=1000)
    d.nos("E1", 300)
    d.v_ack("E1")
    for _ in range(3):
        d.v_fill("E1", 10)
    alert = [e for e in d.events if isinstance(e, ComplianceAlert)][-1]
    assert alert.control == "repeated_execution" and alert.level == "hard"
    rejected(d.nos("E2", 10), Reason.RISK_REPEATED_EXECUTION)
    d.now += 60 * 10**9
    rejected(d.nos("E3", 10), Reason.RISK_REPEATED_EXECUTION)  # time alone does not lift it
    assert accepted(d.nos("E4", 10, side=Side.SELL))  # the other side is not throttled
    d.run(ReenableExecutions(user="someone", symbol="AAPL", side=Side.BUY))
    rejected(d.nos("E5", 10), Reason.RISK_REPEATED_EXECUTION)  # not authorised
    d.run(ReenableExecutions(user=ADMIN, symbol="AAPL", side=Side.BUY))
    assert accepted(d.nos("E6", 10))


def test_kill_switch_cancels_working_orders_in_scope_and_blocks_new_ones():
    d = desk()
    for cl, acct in (("K1", "ACC1"), ("K2", "ACC1"), ("K3", "ACC2")):
        d.nos(cl, 10, account=acct)
        d.v_ack(cl)
    reps = d.run(SetKillSwitch(user=ADMIN, scope="account", key="ACC1"))
    pending = {r.order_id for r in reps if r.ord_status is OrdStatus.PENDING_CANCEL}
    assert len(pending) == 2  # both ACC1 orders, not ACC2's
    assert any(isinstance(e, RiskChanged) for e in d.events)
    for cl in ("K1", "K2"):
        d.v_canceled(cl)
        assert d.engine.state.find("CLIENT1", cl).status is OrdStatus.CANCELED
    assert d.engine.state.find("CLIENT1", "K3").status is OrdStatus.NEW
    assert "account ACC1" in rejected(d.nos("K4", 10), Reason.RISK_KILL_SWITCH)
    assert accepted(d.nos("K5", 10, account="ACC2"))
    d.run(SetKillSwitch(user=ADMIN, scope="account", key="ACC1", on=False))
    assert accepted(d.nos("K6", 10))


def test_kill_switch_letting_risk_reducing_orders_through_and_reduce_only():
    d = desk()
    d.nos("L1", 100)
    d.v_ack("L1")
    d.v_fill("L1", 100)  # long 100
    d.run(SetKillSwitch(user=ADMIN, scope="instrument", key="AAPL", allow_reducing=True))
    rejected(d.nos("L2", 10), Reason.RISK_KILL_SWITCH)
    assert accepted(d.nos("L3", 100, side=Side.SELL))
    rejected(d.nos("L4", 1, side=Side.SELL), Reason.RISK_KILL_SWITCH)  # would go short
    d.run(SetKillSwitch(user=ADMIN, scope="instrument", key="AAPL", on=False))
    d.run(SetKillSwitch(user=ADMIN, scope="firm", reduce_only=True))
    rejected(d.nos("L5", 1), Reason.RISK_REDUCE_ONLY)
    rejected(d.nos("L6", 10, symbol="MSFT"), Reason.RISK_REDUCE_ONLY)


def test_unauthorised_changes_are_refused_and_recorded():
    d = desk(rule("max_qty", "100"))
    d.run(SetLimit(user="intern", control="max_qty", value="1000000"))
    alert = [e for e in d.events if isinstance(e, ComplianceAlert)][-1]
    assert alert.control == "authorisation" and "intern" in alert.text
    rejected(d.nos("U1", 101), Reason.RISK_MAX_QTY)
    d.run(SetLimit(user=ADMIN, control="max_qty", value="nonsense"))
    assert "max_qty 'nonsense' is not a number" in [e for e in d.events if isinstance(e, ComplianceAlert)][-1].text


def test_limit_changed_at_runtime_takes_effect_on_the_next_order():
    d = desk(rule("max_qty", "100"))
    rejected(d.nos("C1", 150), Reason.RISK_MAX_QTY)
    d.run(SetLimit(user=ADMIN, control="max_qty", value="200", scope="account", account="ACC1"))
    rejected(d.nos("C2", 150), Reason.RISK_MAX_QTY)  # the firm's 100 still binds: most restrictive wins
    d.run(SetLimit(user=ADMIN, control="max_qty", value="1000"))
    rejected(d.nos("C3", 150), Reason.RISK_MAX_QTY)
    d2 = desk()
    d2.run(SetLimit(user=ADMIN, control="max_qty", value="100"))
    rejected(d2.nos("C4", 101), Reason.RISK_MAX_QTY)


def test_temporary_override_is_an_event_and_expires():
    d = desk(rule("max_qty", "100"))
    d.run(SetOverride(user=ADMIN, account="ACC1", control="max_qty", until=d.now + 10**9))
    assert accepted(d.nos("O1", 500))
    rejected(d.nos("O2", 500, account="ACC2"), Reason.RISK_MAX_QTY)  # only that account
    d.now += 2 * 10**9
    rejected(d.nos("O3", 500), Reason.RISK_MAX_QTY)


def test_compliance_state_is_rebuilt_from_the_events():
    cfg = dict(limits=[rule("position_long", "1000")], throttle_new_per_s=100, repeated_execution_max=2)
    d = desk(*cfg.pop("limits"), **cfg)
    d.nos("A1", 300)
    d.v_ack("A1")
    d.v_fill("A1", 100)
    d.v_fill("A1", 50)
    d.nos("A2", 200, side=Side.SELL)
    d.run(SetKillSwitch(user=ADMIN, scope="venue", key="V2"))
    d.run(SetLimit(user=ADMIN, control="max_qty", value="700"))
    live = d.engine.compliance
    fresh = desk(rule("position_long", "1000"), throttle_new_per_s=100, repeated_execution_max=2)
    state = fresh.engine.state
    assert isinstance(state, OmsState)
    for ev in d.events:
        state.apply(ev)
    rebuilt = fresh.engine.compliance
    assert (rebuilt.book == live.book).all() and (rebuilt.acct == live.acct).all()
    assert (rebuilt.lim == live.lim).all() and rebuilt.kill.keys() == live.kill.keys()
    assert rebuilt.exec_throttled == live.exec_throttled == {("AAPL", "1")}
    assert {k: list(v) for k, v in rebuilt.windows.items()} == {k: list(v) for k, v in live.windows.items()}


def test_basket_consumes_limits_in_sequence_and_changes_nothing():
    from oms.model import NewOrder

    d = desk(rule("position_long", "250"), rule("max_qty", "150"))
    before = d.engine.compliance.arena.copy()
    basket = [NewOrder(session="CLIENT1", cl_ord_id=f"P{n}", account="ACC1", symbol="AAPL", side=Side.BUY,
                       ord_type=OrdType.LIMIT, qty=qty, price=100_000_000) for n, qty in enumerate((100, 100, 100, 200, 50))]
    verdicts = d.engine.compliance.check_basket(basket, d.now)
    assert [v.control.name if v.control else None for v in verdicts] == [
        None, None, "POSITION_LONG", "MAX_QTY", None]  # the 3rd would make 300; the 5th fits: 250
    assert (d.engine.compliance.arena == before).all()


def test_cumulative_collar_bounds_a_price_walk_within_its_window():
    d = desk(cumulative_collar_bps=200, cumulative_collar_window_s=60)
    assert accepted(d.nos("W1", 10, "100"))  # the window's first price
    for n, price in enumerate(("100.90", "101.50", "102")):  # each step small, all within 2%
        assert accepted(d.nos(f"W{n + 2}", 10, price))
    text = rejected(d.nos("W9", 10, "102.01"), Reason.RISK_CUMULATIVE_COLLAR)
    assert "201 > 200" in text and "AAPL" in text
    d.now += 61 * 10**9
    assert accepted(d.nos("W10", 10, "102.01"))  # a new window starts from here
