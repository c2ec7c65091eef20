"""Block allocation: the exact split (against fractions), and the engine booking it all
or nothing under the holding controls, journaled and rebuilt on replay."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from oms.allocation import largest_remainder, plan, split_ratio
from oms.model import (
    Allocate, AllocationBooked, AllocationCanceled, AllocationRejected, AllocationTarget, CancelAllocation,
    ComplianceAlert, Side,
)
from oms.reasons import Reason
from risk.config import LimitRule, RiskConfig
from risk.kernel import B_POS
from tests.harness import Desk, px

weights = st.lists(st.integers(1, 10**7), min_size=1, max_size=12)


@given(st.integers(0, 10**15), weights)
def test_largest_remainder_is_exact_and_each_part_within_one_unit_of_its_share(total, ws):
    parts = largest_remainder(total, ws)
    assert sum(parts) == total
    whole = sum(ws)
    exact = [Fraction(total * w, whole) for w in ws]
    assert all(0 <= p - int(e) <= 1 for p, e in zip(parts, exact))  # floor, or floor + 1
    # the extra units went to the largest remainders, the earlier first on a tie
    order = sorted(range(len(ws)), key=lambda k: (-(exact[k] - int(exact[k])), k))
    extra = total - sum(int(e) for e in exact)
    assert [k for k in range(len(ws)) if parts[k] > int(exact[k])] == sorted(order[:extra])


@given(st.integers(1, 10**9), weights, st.sampled_from([1, 10, 100, 1000]))
def test_a_ratio_split_is_in_whole_lots_but_for_one_odd_lot(qty, ws, lot):
    parts = split_ratio(qty, ws, lot)
    assert sum(parts) == qty
    odd = [p for p in parts if p % lot]
    assert len(odd) <= 1 and (not odd or odd[0] % lot == qty % lot)


def block(targets, method="ratio", qty=None, alloc_id="A1", order_id="1"):
    return Allocate(user="pm", alloc_id=alloc_id, order_id=order_id, method=method, qty=qty,
                    targets=tuple(AllocationTarget(a, n) for a, n in targets))


@given(st.integers(1, 10**6), st.integers(1, 10**6).flatmap(lambda q: st.tuples(st.just(q), st.integers(q, q * 10**9))),
       st.lists(weights, min_size=1, max_size=5))
def test_allocations_in_turn_hand_out_exactly_the_blocks_value(_seed, block_fill, rounds):
    """However a block is allocated in parts, the accounts' values add up to its value and
    each part is the block's average price to within one unit of value."""
    cum_qty, cum_value = block_fill
    allocated = (0, 0)
    for n, ws in enumerate(rounds):
        last = n == len(rounds) - 1
        left = cum_qty - allocated[0]
        if left == 0:
            break
        qty = left if last else max(1, left // 2)
        shares = plan(block([(f"A{k}", w) for k, w in enumerate(ws)], qty=qty), cum_qty, cum_value, allocated, 1)
        assert not isinstance(shares, tuple), shares
        assert sum(s.qty for s in shares) == qty
        for s in shares:
            assert abs(Fraction(s.value) - Fraction(cum_value * s.qty, cum_qty)) < 2
        allocated = (allocated[0] + qty, allocated[1] + sum(s.value for s in shares))
    assert allocated == (cum_qty, cum_value)


# ------------------------------------------------------------------ at the engine


def filled_block(d: Desk, cl="B1", account="ACC1", side=Side.BUY, symbol="AAPL", fills=((100, "100"), (200, "100.01")),
                 qty=None):
    qty = qty or sum(q for q, _ in fills)
    d.nos(cl, qty, "101", account=account, side=side, symbol=symbol)
    d.v_ack(cl)
    for k, (q, price) in enumerate(fills):
        d.v_fill(cl, q, price, exec_id=f"{cl}-f{k}")
    return d.engine.state.find("CLIENT1", cl)


def allocate(d: Desk, *targets, **kw):
    events = d.engine.handle(block(targets, **kw))
    d.events += events
    return events


def pos(d: Desk, account: str, symbol="AAPL") -> int:
    c = d.engine.compliance
    return int(c.book[B_POS, c.accounts[account], c.symbols[symbol]])


def test_a_block_is_booked_to_accounts_at_its_average_price_and_positions_move():
    d = Desk()
    o = filled_block(d)
    events = allocate(d, ("ACC2", 1), ("OTHER", 2), order_id=o.order_id)
    booked = events[0]
    assert isinstance(booked, AllocationBooked)
    assert [(s.account, s.qty) for s in booked.shares] == [("ACC2", 100), ("OTHER", 200)]
    assert sum(s.value for s in booked.shares) == o.cum_value == 100 * px("100") + 200 * px("100.01")
    # a third of the value for a third of the shares: 2/3 of a unit over, so it gets the unit left over
    assert booked.shares[0].value == o.cum_value // 3 + 1 and booked.shares[1].value == 2 * o.cum_value // 3
    assert (pos(d, "ACC1"), pos(d, "ACC2"), pos(d, "OTHER")) == (0, 100, 200)
    assert d.engine.state.allocated[o.order_id] == (300, o.cum_value)


def test_explicit_quantities_in_parts_then_nothing_more_to_allocate():
    d = Desk()
    o = filled_block(d)
    assert isinstance(allocate(d, ("ACC2", 50), method="qty", order_id=o.order_id)[0], AllocationBooked)
    assert isinstance(allocate(d, ("OTHER", 250), method="qty", alloc_id="A2", order_id=o.order_id)[0],
                      AllocationBooked)
    late = allocate(d, ("OTHER", 1), method="qty", alloc_id="A3", order_id=o.order_id)[0]
    assert isinstance(late, AllocationRejected) and late.reason == Reason.OVER_ALLOCATION.name
    assert "0 of 300" in late.text
    values = [s.value for a in d.engine.state.allocations.values() for s in a.shares]
    assert sum(values) == o.cum_value


def refused(events, reason: Reason) -> AllocationRejected:
    assert len(events) == 1 and isinstance(events[0], AllocationRejected), events
    assert events[0].reason == reason.name, events[0]
    return events[0]


def test_bad_allocations_are_refused_with_their_reason_and_change_nothing():
    d = Desk()
    o = filled_block(d)
    before = d.engine.state.state_hash(), d.engine.compliance.arena.copy()
    refused(allocate(d, ("ACC2", 1), order_id="nope"), Reason.UNKNOWN_ORDER)
    refused(allocate(d, ("NOBODY", 1), order_id=o.order_id), Reason.UNKNOWN_ACCOUNT)
    refused(allocate(d, ("ACC1", 1), order_id=o.order_id), Reason.BAD_ALLOCATION)  # the block's own account
    refused(allocate(d, ("ACC2", 1), ("ACC2", 1), order_id=o.order_id), Reason.BAD_ALLOCATION)
    refused(allocate(d, ("ACC2", 0), order_id=o.order_id), Reason.BAD_ALLOCATION)
    refused(allocate(d, ("ACC2", 1), method="fifo", order_id=o.order_id), Reason.BAD_ALLOCATION)
    refused(allocate(d, ("ACC2", 301), method="qty", order_id=o.order_id), Reason.OVER_ALLOCATION)
    refused(allocate(d, ("ACC2", 1), qty=301, order_id=o.order_id), Reason.OVER_ALLOCATION)
    wrong = Allocate(user="pm", alloc_id="W", order_id=o.order_id, method="qty", symbol="AAPL", side=Side.SELL,
                     targets=(AllocationTarget("ACC2", 1),))
    assert "is BUY AAPL, not SELL AAPL" in refused(d.engine.handle(wrong), Reason.BAD_ALLOCATION).text
    assert d.engine.state.state_hash() == before[0]
    assert np.array_equal(d.engine.compliance.arena, before[1])
    allocate(d, ("ACC2", 1), order_id=o.order_id)
    refused(allocate(d, ("OTHER", 1), order_id=o.order_id), Reason.DUPLICATE_ALLOC_ID)  # A1 again


def test_lots_hold_and_one_account_may_take_a_blocks_odd_lot():
    d = Desk()
    o = filled_block(d, symbol="BOND", fills=((2500, "100"),), qty=3000)  # lot 1000: 2,500 filled
    refused(allocate(d, ("ACC2", 1500), ("OTHER", 500), method="qty", order_id=o.order_id), Reason.ODD_LOT)
    refused(allocate(d, ("ACC2", 1500), method="qty", order_id=o.order_id), Reason.ODD_LOT)
    refused(allocate(d, ("ACC2", 1), ("OTHER", 1), qty=1500, order_id=o.order_id), Reason.ODD_LOT)
    booked = allocate(d, ("ACC2", 1), ("OTHER", 1), order_id=o.order_id)[0]
    assert [(s.account, s.qty) for s in booked.shares] == [("ACC2", 1500), ("OTHER", 1000)]


def test_each_target_is_checked_against_the_holding_controls_and_the_whole_allocation_refused():
    d = Desk(RiskConfig(restricted_by_account={"OTHER": ["AAPL"]}, limits=[
        LimitRule(control="position_long", value="150", scope="account", account="ACC2"),
        LimitRule(control="max_qty", value="10", scope="account", account="ACC2"),  # an order control: not applied
    ]))
    o = filled_block(d)
    before = d.engine.compliance.arena.copy()
    r = refused(allocate(d, ("ACC2", 1), ("OTHER", 1), order_id=o.order_id), Reason.RISK_RESTRICTED)
    assert r.account == "OTHER" and r.text.startswith("OTHER: ")
    r = refused(allocate(d, ("ACC2", 200), method="qty", order_id=o.order_id), Reason.RISK_POSITION_LONG)
    assert r.account == "ACC2" and "200 > 150" in r.text
    assert (pos(d, "ACC1"), pos(d, "ACC2"), pos(d, "OTHER")) == (300, 0, 0)
    assert np.array_equal(d.engine.compliance.arena, before)  # the what-if left nothing behind
    assert isinstance(allocate(d, ("ACC2", 150), method="qty", order_id=o.order_id)[0], AllocationBooked)


def test_a_soft_limit_books_the_allocation_with_an_alert():
    d = Desk(RiskConfig(limits=[LimitRule(control="position_long", value="200", scope="account", account="ACC2",
                                          soft_pct=50)]))
    o = filled_block(d)
    events = allocate(d, ("ACC2", 150), method="qty", order_id=o.order_id)
    assert isinstance(events[0], AllocationBooked)
    alerts = [e for e in events if isinstance(e, ComplianceAlert)]
    assert alerts and alerts[0].account == "ACC2" and alerts[0].control == "position_long"


def test_a_sell_block_allocates_short_positions_and_replay_rebuilds_everything():
    d = Desk()
    o = filled_block(d, side=Side.SELL, fills=((70, "99.99"), (30, "100.02")))
    allocate(d, ("ACC2", 3), ("OTHER", 7), order_id=o.order_id)
    assert (pos(d, "ACC1"), pos(d, "ACC2"), pos(d, "OTHER")) == (0, -30, -70)
    replayed = Desk()
    for ev in d.events:
        replayed.engine.state.apply(ev)
    assert replayed.engine.state.state_hash() == d.engine.state.state_hash()
    assert np.array_equal(replayed.engine.compliance.arena, d.engine.compliance.arena)
    # the allocation is part of the hash: a state without it differs
    without = d.replayed([ev for ev in d.events if not isinstance(ev, AllocationBooked)])
    assert without.state.state_hash() != d.engine.state.state_hash()


def test_a_target_under_a_kill_switch_refuses_the_allocation():
    from oms.model import SetKillSwitch

    d = Desk(RiskConfig(admins=["risk"]))
    o = filled_block(d)
    d.run(SetKillSwitch(user="risk", scope="account", key="OTHER"))
    r = refused(allocate(d, ("ACC2", 1), ("OTHER", 1), order_id=o.order_id), Reason.RISK_KILL_SWITCH)
    assert r.account == "OTHER"
    assert isinstance(allocate(d, ("ACC2", 1), order_id=o.order_id)[0], AllocationBooked)


def test_a_canceled_allocation_gives_everything_back_and_the_block_can_be_booked_again():
    d = Desk()
    o = filled_block(d)
    before = d.engine.compliance.arena.copy()
    allocate(d, ("ACC2", 1), ("OTHER", 2), order_id=o.order_id)
    (canceled,) = d.engine.handle(CancelAllocation(user="pm", alloc_id="A1"))
    d.events.append(canceled)
    assert isinstance(canceled, AllocationCanceled) and canceled.booking.alloc_id == "A1"
    assert np.array_equal(d.engine.compliance.arena, before)
    assert d.engine.state.allocated[o.order_id] == (0, 0)
    refused(d.engine.handle(CancelAllocation(user="pm", alloc_id="A1")), Reason.ALLOCATION_CANCELED)
    refused(d.engine.handle(CancelAllocation(user="pm", alloc_id="nope")), Reason.UNKNOWN_ALLOCATION)
    refused(allocate(d, ("ACC2", 1), order_id=o.order_id), Reason.DUPLICATE_ALLOC_ID)  # ids are never reused
    assert isinstance(allocate(d, ("ACC2", 1), alloc_id="A2", order_id=o.order_id)[0], AllocationBooked)
    assert pos(d, "ACC2") == 300
    replayed = Desk()
    for ev in d.events:
        replayed.engine.state.apply(ev)
    assert replayed.engine.state.state_hash() == d.engine.state.state_hash()
    assert np.array_equal(replayed.engine.compliance.arena, d.engine.compliance.arena)


def test_a_bust_under_an_allocation_raises_an_alert():
    d = Desk()
    o = filled_block(d)
    allocate(d, ("ACC2", 1), order_id=o.order_id)
    d.v_bust("B1", "B1-f0")  # the 100 at 100
    alerts = [e for e in d.events if isinstance(e, ComplianceAlert) and e.control == "allocation_break"]
    assert len(alerts) == 1 and "300 shares are allocated but 200 remain" in alerts[0].text


def test_a_session_names_its_block_by_clordid_and_allocates_only_for_its_accounts():
    d = Desk()
    o = filled_block(d)
    by_cl = Allocate(user="CLIENT1", alloc_id="S1", order_id="", cl_ord_id="B1", session="CLIENT1", method="qty",
                     targets=(AllocationTarget("ACC2", 100),))
    booked = d.engine.handle(by_cl)[0]
    assert isinstance(booked, AllocationBooked) and booked.order_id == o.order_id
    other = Allocate(user="CLIENT2", alloc_id="S2", order_id=o.order_id, session="CLIENT2", method="qty",
                     targets=(AllocationTarget("ACC2", 100),))
    r = refused(d.engine.handle(other), Reason.NOT_ENTITLED)  # CLIENT2 trades ACC2 only: the block is ACC1's
    assert r.account == "ACC1"
    r = refused(d.engine.handle(CancelAllocation(user="CLIENT2", alloc_id="S1", session="CLIENT2")),
                Reason.NOT_ENTITLED)
    assert r.account == "ACC1"
