"""A desk for engine-level tests: one trader session, venues played by the test.

Trader messages go in as commands; venue reports address the order's current child
the way a venue would (its ClOrdID, or the pending one for a cancel or replace).
"""
from __future__ import annotations

import itertools
import time

import msgspec

from oms.engine import Engine, ReferenceData, SequentialIds
from oms.fixed import to_price
from oms.model import (
    Account,
    CancelRequest,
    Command,
    Event,
    ExecType,
    Instrument,
    NewOrder,
    OrdType,
    ReplaceRequest,
    Side,
    StatusRequest,
    TimeInForce,
    VenueCancelReject,
    VenueExecReport,
)
from oms.reports import TraderReport, trader_reports
from oms.state import ChildOrder
from risk.config import RiskConfig

SESSION = "CLIENT1"
REF = ReferenceData(
    instruments={
        "AAPL": Instrument("AAPL", tick_size=to_price("0.01")),
        "MSFT": Instrument("MSFT", tick_size=to_price("0.01")),
        "SPY": Instrument("SPY", tick_size=to_price("0.01"), lot_size=1),
        "ES": Instrument("ES", tick_size=to_price("0.25"), lot_size=1),
        "BOND": Instrument("BOND", tick_size=to_price("0.001"), lot_size=1000),
    },
    accounts={"ACC1": Account("ACC1"), "ACC2": Account("ACC2"), "OTHER": Account("OTHER")},
    venues=("V1", "V2"),
    default_venue="V1",
    entitlements={SESSION: frozenset({"ACC1", "ACC2"}), "CLIENT2": frozenset({"ACC2"})},
)


def px(text: str) -> int:
    return to_price(text)


class Desk:
    def __init__(self, risk: RiskConfig | None = None, ref: ReferenceData = REF) -> None:
        self.now = 1_700_000_000_000_000_000
        self.engine = Engine(ref, clock=lambda: self.now, ids=SequentialIds(), risk=risk)
        self.reports: list[TraderReport] = []
        self.events: list[Event] = []
        self._venue_ids = itertools.count(1)
        self.child_index = -1  # which child the venue-side helpers act on

    def book(self) -> bytes:
        """Orders, children and the ClOrdID index as bytes: what a refused order must leave
        alone (compliance does count refusals, for order-to-trade and throttles)."""
        st = self.engine.state
        return msgspec.msgpack.encode((st.orders, st.children, sorted(st.by_cl_ord_id.items())))

    def replayed(self, events: list[Event] | None = None) -> Engine:
        """A fresh engine of the same reference data and limits with `events` (default: all
        so far) applied, as a restart would rebuild it: compliance state included."""
        fresh = Engine(self.engine.ref, clock=lambda: self.now, ids=SequentialIds(), risk=self.engine.risk_cfg)
        for ev in self.events if events is None else events:
            fresh.state.apply(ev)
        return fresh

    def run_events(self, cmd: Command) -> list[Event]:
        """The command's events (its trader reports are kept as `run` keeps them)."""
        before = len(self.events)
        self.run(cmd)
        return self.events[before:]

    def run(self, cmd: Command) -> list[TraderReport]:
        events = self.engine.handle(cmd)
        self.events += events
        reps = trader_reports(events)
        self.reports += reps
        return reps

    # ------------------------------------------------------------ trader side
    def nos(
        self, cl: str, qty: int, price: str | None = "100", *, ord_type: OrdType = OrdType.LIMIT,
        tif: TimeInForce = TimeInForce.DAY, side: Side = Side.BUY, symbol: str = "AAPL",
        account: str = "ACC1", poss_resend: bool = False, session: str = SESSION, **kw: object,
    ) -> list[TraderReport]:
        return self.run(
            NewOrder(
                session=session, cl_ord_id=cl, account=account, symbol=symbol, side=side,
                ord_type=ord_type, qty=qty, price=None if price is None else px(price), tif=tif,
                poss_resend=poss_resend, **kw,  # type: ignore[arg-type]
            )
        )

    def cancel(self, cl: str, orig: str) -> list[TraderReport]:
        return self.run(CancelRequest(session=SESSION, cl_ord_id=cl, orig_cl_ord_id=orig))

    def replace(self, cl: str, orig: str, qty: int, price: str | None = None) -> list[TraderReport]:
        return self.run(
            ReplaceRequest(
                session=SESSION, cl_ord_id=cl, orig_cl_ord_id=orig, qty=qty,
                price=None if price is None else px(price),
            )
        )

    def status(self, cl: str) -> list[TraderReport]:
        return self.run(StatusRequest(session=SESSION, cl_ord_id=cl))

    # ------------------------------------------------------------ venue side
    def child(self, cl: str) -> ChildOrder:
        """The order's newest child, or the one `child_index` picks (split orders)."""
        order = self.engine.state.find(SESSION, cl)
        assert order is not None, cl
        k = self.child_index if -len(order.children) <= self.child_index < len(order.children) else -1
        return self.engine.state.children[order.children[k]]

    def _venue(self, cl: str, exec_type: ExecType, *, pending: bool = False, **kw: object) -> list[TraderReport]:
        ch = self.child(cl)
        cl_ord_id = ch.pending_cl_ord_id if pending and ch.pending_cl_ord_id else ch.cl_ord_id
        exec_id = kw.pop("exec_id", None) or f"V{next(self._venue_ids)}"
        return self.run(
            VenueExecReport(
                venue=ch.venue, cl_ord_id=cl_ord_id, exec_id=exec_id,  # type: ignore[arg-type]
                exec_type=exec_type, orig_cl_ord_id=ch.cl_ord_id, **kw,  # type: ignore[arg-type]
            )
        )

    def v_ack(self, cl: str) -> list[TraderReport]:
        return self._venue(cl, ExecType.NEW)

    def v_fill(self, cl: str, qty: int, price: str = "100", exec_id: str | None = None) -> list[TraderReport]:
        return self._venue(cl, ExecType.TRADE, last_qty=qty, last_px=px(price), exec_id=exec_id)

    def v_canceled(self, cl: str, text: str = "") -> list[TraderReport]:
        return self._venue(cl, ExecType.CANCELED, pending=True, text=text)

    def v_replaced(self, cl: str, order_qty: int | None = None) -> list[TraderReport]:
        return self._venue(cl, ExecType.REPLACED, pending=True, order_qty=order_qty)

    def v_reject(self, cl: str, text: str = "venue says no") -> list[TraderReport]:
        return self._venue(cl, ExecType.REJECTED, text=text)

    def v_done_for_day(self, cl: str) -> list[TraderReport]:
        return self._venue(cl, ExecType.DONE_FOR_DAY)

    def v_bust(self, cl: str, ref: str) -> list[TraderReport]:
        return self._venue(cl, ExecType.TRADE_CANCEL, exec_ref_id=ref)

    def v_correct(self, cl: str, ref: str, qty: int, price: str, exec_id: str | None = None) -> list[TraderReport]:
        return self._venue(cl, ExecType.TRADE_CORRECT, exec_ref_id=ref, last_qty=qty, last_px=px(price), exec_id=exec_id)

    def v_cxl_reject(self, cl: str, text: str = "too late") -> list[TraderReport]:
        ch = self.child(cl)
        assert ch.pending_cl_ord_id is not None
        return self.run(
            VenueCancelReject(venue=ch.venue, cl_ord_id=ch.pending_cl_ord_id, orig_cl_ord_id=ch.cl_ord_id, reason=0, text=text)
        )


def row(r: TraderReport) -> tuple:
    """The columns of the matrices: ExecType, OrdStatus, OrderQty, CumQty, LeavesQty, LastQty."""
    if r.msg_type == "9":
        return ("CxlRej", r.ord_status.name, r.cxl_rej_reason)
    assert r.exec_type is not None
    return (r.exec_type.name, r.ord_status.name, r.order_qty, r.cum_qty, r.leaves_qty, r.last_qty)


def rows(reports: list[TraderReport]) -> list[tuple]:
    return [row(r) for r in reports]


def wait_for(cond, timeout: float, what: str) -> None:
    """Until `cond()` holds (a state another thread or process reaches, with no event to wait
    on), checked every 50 ms; fails saying `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
