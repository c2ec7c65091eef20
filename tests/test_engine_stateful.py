"""Random interleavings of trader and venue actions; every invariant after every step.

The venue side is played loosely on purpose: it sometimes overfills, busts unknown
executions, repeats ExecIDs or answers requests nobody made. The engine must refuse
those without breaking an invariant, and replaying its events (through msgpack, and
at the end through a real journal file) must rebuild the same state hash.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from oms.journal import Journal
from oms.model import EVENT_DECODER, EVENT_ENCODER, ExecType, MarketData, OrdType, Side, TimeInForce, Timer
from oms.router import BEST, CROSS, SWEEP
from oms.runtime import replay
from oms.state import OmsState
from oms.states import NO_LEAVES, TERMINAL
from tests.harness import SESSION, Desk, px

PRICES = st.sampled_from(["99.98", "99.99", "100", "100.01", "100.5"])


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.desk = Desk()
        self.desk.engine.ref = msgspec.structs.replace(self.desk.engine.ref, internal_cross=True)
        for venue, bid, ask in (("V1", "99.98", "100.02"), ("V2", "99.99", "100.01")):  # quotes for SWEEP and BEST
            self.desk.run(MarketData(symbol="AAPL", venue=venue, bid=px(bid), ask=px(ask), bid_size=300, ask_size=200))
        self.shadow = OmsState()
        self.seen = 0
        self.n = 0
        self.venue_execs: dict[str, list[str]] = {}  # child id -> venue ExecIDs of its fills
        self.last_cum: dict[str, int] = {}

    # ------------------------------------------------------------ helpers
    def _orders(self) -> list[str]:
        return [o.cl_ord_id for o in self.desk.engine.state.orders.values()]

    def _routed(self) -> list[str]:
        """Orders with a child the venue side can act on."""
        return [o.cl_ord_id for o in self.desk.engine.state.orders.values() if o.children]

    def _new_id(self) -> str:
        self.n += 1
        return f"K{self.n}"

    # ------------------------------------------------------------ trader
    @rule(qty=st.integers(1, 50).map(lambda n: n * 100), price=PRICES,
          tif=st.sampled_from([TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC]), market=st.booleans(),
          route=st.sampled_from([None, BEST, SWEEP, CROSS]), sell=st.booleans(),
          account=st.sampled_from(["ACC1", "ACC2"]))
    def new_order(self, qty: int, price: str, tif: TimeInForce, market: bool, route: str | None, sell: bool,
                  account: str) -> None:
        side = Side.SELL if sell else Side.BUY
        self.desk.nos(self._new_id(), qty, None if market else price, ord_type=OrdType.MARKET if market else
                      OrdType.LIMIT, tif=tif, ex_destination=route, side=side, account=account)

    @rule(k=st.integers(-3, 2))
    def venue_acts_on_child(self, k: int) -> None:
        """Which child of a split order the venue-side rules that follow act on."""
        self.desk.child_index = k

    @precondition(lambda self: self.n > 0)
    @rule(data=st.data())
    def duplicate_new_order(self, data: st.DataObject) -> None:
        cl = data.draw(st.sampled_from(self._orders()))
        self.desk.nos(cl, 100, poss_resend=data.draw(st.booleans()))

    @precondition(lambda self: self.n > 0)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.desk.cancel(self._new_id(), data.draw(st.sampled_from(self._orders())))

    @precondition(lambda self: self.n > 0)
    @rule(data=st.data(), qty=st.integers(1, 60).map(lambda n: n * 100), price=PRICES)
    def replace(self, data: st.DataObject, qty: int, price: str) -> None:
        self.desk.replace(self._new_id(), data.draw(st.sampled_from(self._orders())), qty, price)

    @rule(cl=st.sampled_from(["K1", "K2", "nope"]))
    def status(self, cl: str) -> None:
        self.desk.status(cl)

    @rule()
    def end_of_day(self) -> None:
        self.desk.run(Timer(end_of_day=True))

    # ------------------------------------------------------------ venue
    @precondition(lambda self: self.n > 0)
    @rule(data=st.data(), action=st.sampled_from(["ack", "canceled", "replaced", "cxl_reject", "reject", "dfd"]))
    def venue_answer(self, data: st.DataObject, action: str) -> None:
        if not self._routed():
            return
        cl = data.draw(st.sampled_from(self._routed()))
        d = self.desk
        if action == "cxl_reject":
            if d.child(cl).pending_cl_ord_id is not None:
                d.v_cxl_reject(cl)
            return
        {"ack": d.v_ack, "canceled": d.v_canceled, "replaced": d.v_replaced,
         "reject": d.v_reject, "dfd": d.v_done_for_day}[action](cl)

    @precondition(lambda self: self.n > 0)
    @rule(data=st.data(), price=PRICES, over=st.booleans())
    def venue_fill(self, data: st.DataObject, price: str, over: bool) -> None:
        if not self._routed():
            return
        cl = data.draw(st.sampled_from(self._routed()))
        ch = self.desk.child(cl)
        room = ch.qty - ch.cum_qty
        qty = room + 100 if over else data.draw(st.integers(0, max(room, 0) // 100)) * 100
        if qty <= 0:
            return
        exec_id = f"F{self.n}-{len(self.venue_execs.get(ch.child_id, []))}-{ch.child_id}"
        if self.desk.v_fill(cl, qty, price, exec_id=exec_id):  # refused fills leave no ExecID behind
            self.venue_execs.setdefault(ch.child_id, []).append(exec_id)

    def _with_fills(self) -> list[str]:
        """Orders whose current child has fills the venue may refer to."""
        return [cl for cl in self._routed() if self.venue_execs.get(self.desk.child(cl).child_id)]

    @precondition(lambda self: self.venue_execs)
    @rule(data=st.data(), correct=st.booleans(), qty=st.integers(1, 20).map(lambda n: n * 100), price=PRICES)
    def venue_bust_or_correct(self, data: st.DataObject, correct: bool, qty: int, price: str) -> None:
        if not self._with_fills():
            return
        cl = data.draw(st.sampled_from(self._with_fills()))
        execs = self.venue_execs[self.desk.child(cl).child_id]
        ref = data.draw(st.sampled_from(execs))
        if correct:
            new_id = f"{ref}c{self.n}"
            if self.desk.v_correct(cl, ref, qty, price, exec_id=new_id):
                execs.append(new_id)
        else:
            self.desk.v_bust(cl, ref)

    @precondition(lambda self: self.venue_execs)
    @rule(data=st.data())
    def venue_repeats_an_exec_id(self, data: st.DataObject) -> None:
        if not self._with_fills():
            return
        cl = data.draw(st.sampled_from(self._with_fills()))
        state = self.desk.engine.state
        before, n_events = state.state_hash(), len(self.desk.events)
        self.desk.v_fill(cl, 100, exec_id=data.draw(st.sampled_from(self.venue_execs[self.desk.child(cl).child_id])))
        assert self.desk.events[n_events:] == []  # a repeated ExecID changes nothing
        assert state.state_hash() == before

    # ------------------------------------------------------------ invariants
    @invariant()
    def orders_are_consistent(self) -> None:
        if not hasattr(self, "desk"):
            return
        st_ = self.desk.engine.state
        for o in st_.orders.values():
            assert 0 <= o.cum_qty <= o.order_qty
            assert o.cum_qty == sum(q for q, _ in o.fills.values())
            assert o.cum_value == sum(q * p for q, p in o.fills.values())
            children = [st_.children[c] for c in o.children]
            assert sum(ch.cum_qty for ch in children) == o.cum_qty
            for ch in children:
                assert 0 <= ch.cum_qty <= ch.qty
            if o.status not in TERMINAL:
                working = sum(ch.qty - ch.cum_qty for ch in children if ch.status not in TERMINAL)
                assert working <= o.order_qty - o.cum_qty  # children never exceed the parent's leaves
            assert (st_.by_cl_ord_id[(SESSION, o.cl_ord_id)]) == o.order_id

    @invariant()
    def reports_follow_fix_arithmetic(self) -> None:
        if not hasattr(self, "desk"):
            return
        for r in self.desk.reports[self.seen:]:
            if r.msg_type != "8" or r.order_id == "NONE":
                continue
            assert r.cum_qty <= r.order_qty
            if r.ord_status.name in {s.name for s in NO_LEAVES}:
                assert r.leaves_qty == 0
            else:
                assert r.leaves_qty == r.order_qty - r.cum_qty
            if r.exec_type is ExecType.TRADE and r.ord_status.name != "REJECTED":
                prev = self.last_cum.get(r.order_id, 0)
                assert r.cum_qty == prev + r.last_qty
            if r.exec_type is not ExecType.ORDER_STATUS and r.exec_type is not ExecType.REJECTED:
                self.last_cum[r.order_id] = r.cum_qty
        self.seen = len(self.desk.reports)

    @invariant()
    def replay_equals_live(self) -> None:
        if not hasattr(self, "desk"):
            return
        fresh = self.desk.replayed([EVENT_DECODER.decode(EVENT_ENCODER.encode(ev)) for ev in self.desk.events])
        assert fresh.state.state_hash() == self.desk.engine.state.state_hash()

    def teardown(self) -> None:
        if not hasattr(self, "desk"):
            return
        with tempfile.TemporaryDirectory() as tmp:
            with Journal(Path(tmp) / "j.db", fsync=False) as j:
                j.append([EVENT_ENCODER.encode(ev) for ev in self.desk.events])
                j.commit()
            with Journal(Path(tmp) / "j.db", fsync=False) as j:
                assert replay(j, self.desk.replayed([]).state).state_hash() == self.desk.engine.state.state_hash()


TestEngineStateful = EngineMachine.TestCase
