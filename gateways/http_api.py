"""The portfolio allocation API (JSON): block allocations, rebalancing proposals (and
their submission as orders), order and holding look-ups. Served by `gateways.http_app`.

Like every gateway it holds no business state: writes are engine commands (answered after
they are durable), reads run on the engine's thread between commits (`Runtime.query`).
Quantities are integers; prices, values, capital and weights are decimal strings, exact,
never JSON floats (a float is refused). Every refusal is a 4xx with a JSON body naming
the reason (`error`) and saying why (`text`).
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from oms import rebalance
from oms.config import Config
from oms.engine import Engine
from oms.fixed import MAX_QTY, FixedPointError, avg_px, price_str, to_money, to_price
from oms.model import (
    Allocate, AllocationBooked, AllocationCanceled, AllocationRejected, CancelAllocation, AllocationTarget, ComplianceAlert, Event, NewOrder, OrderAccepted,
    OrderRejected, OrdType,
)
from oms.reasons import Reason
from oms.runtime import Runtime
from risk.kernel import B_BUYS, B_POS, B_SELLS

_WAIT_S = 10.0  # for the engine's answer; past it: 503, and the command may still be applied
_STATUS = {Reason.UNKNOWN_ORDER.name: 404, Reason.DUPLICATE_ALLOC_ID.name: 409}
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # allocation and rebalance ids: safe in a path and a ClOrdID


# ---------------------------------------------------------------- request bodies


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    pass


Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]  # a malformed quantity is a bad request naming its field


class TargetIn(_Body):
    account: str
    qty: Qty | None = None  # explicit shares, or
    weight: str | int | None = None  # a ratio (decimal)


class AllocationIn(_Body):
    alloc_id: str
    order_id: str
    targets: list[TargetIn]
    qty: Qty | None = None  # by weight: how many of the unallocated shares (default all)


class AccountIn(_Body):
    account: str
    capital: str | int | None = None  # default: the account's configured NAV, else its positions' value


class RebalanceIn(_Body):
    accounts: list[AccountIn]
    weights: dict[str, str | int]  # symbol -> share of capital (decimal, 0 < w <= 1, sum <= 1)
    submit: bool = False  # send the proposals that pass as market orders
    id: str = ""  # needed to submit: ClOrdIDs are <id>-<account>-<symbol>, so a retry cannot send twice
    route: str | None = None  # ExDestination of submitted orders (a venue or BEST/SWEEP)


class ApiError(Exception):
    def __init__(self, status: int, error: str, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.status, self.body = status, {"error": error, "text": text, **extra}


def _decimal(value: str | int, what: str, parse: Callable[[str | int], int] = to_price) -> int:
    try:
        return parse(value)
    except FixedPointError as exc:
        raise ApiError(400, "BAD_NUMBER", f"{what}: {exc}") from None


# ---------------------------------------------------------------- views (JSON-ready)


def _booking(b: AllocationBooked, canceled: bool = False) -> dict[str, Any]:
    return {"alloc_id": b.alloc_id, "status": "canceled" if canceled else "booked", "user": b.user, "order_id": b.order_id, "account": b.account,
            "symbol": b.symbol, "side": b.side.name, "qty": b.qty, "value": price_str(b.value),
            "avg_px": str(avg_px(b.value, b.qty)),
            "shares": [{"account": s.account, "qty": s.qty, "value": price_str(s.value),
                        "avg_px": str(avg_px(s.value, s.qty))} for s in b.shares]}


def _order(engine: Engine, order_id: str) -> dict[str, Any] | None:
    o = engine.state.orders.get(order_id)
    if o is None:
        return None
    qty, value = engine.state.allocated.get(order_id, (0, 0))
    return {"order_id": o.order_id, "cl_ord_id": o.cl_ord_id, "account": o.account, "symbol": o.symbol,
            "side": o.side.name, "ord_status": o.status.name, "order_qty": o.order_qty, "cum_qty": o.cum_qty,
            "avg_px": str(avg_px(o.cum_value, o.cum_qty)), "allocated_qty": qty,
            "unallocated_qty": o.cum_qty - qty, "allocated_value": price_str(value),
            "allocations": [_booking(b, b.alloc_id in engine.state.canceled_allocations)
                            for b in engine.state.allocations.values() if b.order_id == order_id]}


def _holdings(engine: Engine, account: str) -> list[dict[str, Any]]:
    c, now = engine.compliance, time.time_ns()
    a = c.accounts[account]
    out = []
    for s, i in c.symbols.items():
        pos, buys, sells = (int(c.book[p, a, i]) for p in (B_POS, B_BUYS, B_SELLS))
        if pos or buys or sells:
            px = c.reference(i, now)[0]
            out.append({"symbol": s, "qty": pos, "working_buys": buys, "working_sells": sells,
                        "price": price_str(px), "market_value": price_str(pos * px)})
    return out


def _plan(p: rebalance.AccountPlan) -> dict[str, Any]:
    return {"account": p.account, "capital": price_str(p.capital), "invested": price_str(p.invested),
            "proposals": [{"symbol": r.symbol, "side": r.side.name, "qty": r.qty, "price": price_str(r.price),
                           "holding": r.holding, "target": r.target, "passed": r.passed, "control": r.control,
                           "text": r.text, "alerts": r.alerts} for r in p.proposals]}


# ---------------------------------------------------------------- the API


class AllocationApi:
    """The allocation routes' logic: engine commands and reads; one instance per OMS."""

    def __init__(self, cfg: Config, runtime: Runtime) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.entitled = cfg.api_entitlements()
        self.symbols = {i.symbol for i in cfg.instruments}
        self.lots = {i.symbol: i.lot_size for i in cfg.instruments}
        ref = cfg.reference_data()
        self.default_route = ref.default_route or ref.default_venue
        matrix = cfg.fx_rates()
        self.rates = {a.id: {i.symbol: int(matrix[k, j]) for j, i in enumerate(cfg.instruments)}
                      for k, a in enumerate(cfg.accounts)}
        self._rebalancing = threading.Lock()
        self.accounts = {a.id for a in cfg.accounts}

    def _may(self, user: str, *accounts: str) -> None:
        for account in accounts:
            if account not in self.accounts:
                raise ApiError(422, Reason.UNKNOWN_ACCOUNT.name, f"unknown account {account}", account=account)
            if account not in self.entitled[self.cfg.api.session(user)]:
                raise ApiError(403, "FORBIDDEN", f"{user} may not act for account {account}", account=account)

    def _query(self, fn: Callable[[Engine], Any]) -> Any:
        return query(self.runtime, fn)

    def _command(self, cmd: Any) -> list[Event]:
        return command(self.runtime, cmd)

    # ------------------------------------------------------------------ routes
    def health(self, user: str) -> tuple[int, Any]:
        seq = self._query(lambda e: e.state.events_applied)
        return 200, {"status": "ok", "user": user, "events": seq}

    def get_order(self, user: str, order_id: str) -> tuple[int, Any]:
        order = self._query(lambda e: _order(e, order_id))
        if order is None:
            raise ApiError(404, Reason.UNKNOWN_ORDER.name, f"unknown order {order_id}")
        self._may(user, order["account"])
        return 200, order

    def _allocation(self, user: str, alloc_id: str) -> tuple[AllocationBooked, bool]:
        """A booking the user may see (the block's account and every target's), and whether it is canceled."""
        b, canceled = self._query(lambda e: (e.state.allocations.get(alloc_id),
                                             alloc_id in e.state.canceled_allocations))
        if b is None:
            raise ApiError(404, Reason.UNKNOWN_ALLOCATION.name, f"unknown allocation {alloc_id}")
        self._may(user, b.account, *(s.account for s in b.shares))
        return b, canceled

    def get_allocation(self, user: str, alloc_id: str) -> tuple[int, Any]:
        return 200, _booking(*self._allocation(user, alloc_id))

    def cancel_allocation(self, user: str, alloc_id: str) -> tuple[int, Any]:
        b, _ = self._allocation(user, alloc_id)
        for ev in self._command(CancelAllocation(user=user, alloc_id=alloc_id, session=self.cfg.api.session(user))):
            if isinstance(ev, AllocationCanceled):
                return 200, _booking(b, True)
            if isinstance(ev, AllocationRejected):
                raise ApiError(409, ev.reason, ev.text)
        raise ApiError(500, "INTERNAL", "the engine could not cancel the allocation (see the OMS log)")

    def positions(self, user: str, account: str) -> tuple[int, Any]:
        self._may(user, account)
        return 200, {"account": account, "positions": self._query(lambda e: _holdings(e, account))}

    def allocate(self, user: str, body: bytes) -> tuple[int, Any]:
        req = _decode(body, AllocationIn)
        if not _ID.fullmatch(req.alloc_id):
            raise ApiError(400, Reason.BAD_ALLOCATION.name, "alloc_id: 1 to 64 of letters, digits, _ . : -")
        kinds = {(t.qty is not None, t.weight is not None) for t in req.targets}
        if len(kinds) != 1 or kinds.pop() not in ((True, False), (False, True)):
            raise ApiError(400, Reason.BAD_ALLOCATION.name, "give every target a qty, or every target a weight")
        by_qty = req.targets[0].qty is not None
        block = self._query(lambda e: e.state.orders[req.order_id].account if req.order_id in e.state.orders else None)
        self._may(user, *([block] if block else []), *(t.account for t in req.targets))
        targets = tuple(AllocationTarget(t.account, t.qty if t.qty is not None else _decimal(t.weight, "weight"))
                        for t in req.targets)  # type: ignore[arg-type]
        cmd = Allocate(user=user, alloc_id=req.alloc_id, order_id=req.order_id, method="qty" if by_qty else "ratio",
                       targets=targets, qty=req.qty, session=self.cfg.api.session(user))
        events = self._command(cmd)
        for ev in events:
            if isinstance(ev, AllocationBooked) and ev.alloc_id == req.alloc_id:
                alerts = [a.text for a in events if isinstance(a, ComplianceAlert)]
                return 201, {**_booking(ev), "alerts": alerts}
            if isinstance(ev, AllocationRejected) and ev.alloc_id == req.alloc_id:
                extra: dict[str, Any] = {"account": ev.account} if ev.account else {}
                if ev.reason == Reason.DUPLICATE_ALLOC_ID.name:  # what is booked under it, if the user may see it
                    try:
                        extra["existing"] = _booking(*self._allocation(user, req.alloc_id))
                    except ApiError:
                        pass
                raise ApiError(_STATUS.get(ev.reason, 422), ev.reason, ev.text, **extra)
        raise ApiError(500, "INTERNAL", "the engine could not apply the allocation (see the OMS log)")

    def rebalance(self, user: str, body: bytes) -> tuple[int, Any]:
        req = _decode(body, RebalanceIn)
        if not req.accounts or not req.weights:
            raise ApiError(400, "BAD_REBALANCE", "give one or more accounts and the model's weights")
        names = [a.account for a in req.accounts]
        if len(set(names)) != len(names):
            raise ApiError(400, "BAD_REBALANCE", "an account is listed twice")
        self._may(user, *names)
        unknown = sorted(set(req.weights) - self.symbols)
        if unknown:
            raise ApiError(422, Reason.UNKNOWN_SYMBOL.name, f"unknown symbol {unknown[0]}")
        weights = {s: _decimal(w, f"weight of {s}") for s, w in req.weights.items()}
        if any(not 0 < w <= 10**6 for w in weights.values()) or sum(weights.values()) > 10**6:
            raise ApiError(422, "BAD_WEIGHTS", "each weight must be above 0 and at most 1, and together at most 1")
        capital = {a.account: None if a.capital is None else _decimal(a.capital, f"capital of {a.account}", to_money)
                   for a in req.accounts}
        if any(v is not None and v <= 0 for v in capital.values()):
            raise ApiError(422, "BAD_CAPITAL", "capital must be positive")
        if req.submit and not _ID.fullmatch(req.id):
            raise ApiError(400, "BAD_REBALANCE", "submit needs an id: 1 to 64 of letters, digits, _ . : -")
        session = self.cfg.api.session(user)
        with self._rebalancing:  # one at a time: each takes a snapshot of the compliance state
            snapshot = self._query(lambda e: e.compliance.snapshot())
            try:
                plans = rebalance.proposals(snapshot, self.lots, capital, weights, time.time_ns(), session, req.route,
                                            self.default_route, self.rates)
            except rebalance.CannotPropose as exc:
                raise ApiError(422, exc.error, str(exc)) from None
        out = [_plan(p) for p in plans]
        if not req.submit:
            return 200, {"accounts": out, "submitted": False}
        for plan, view in zip(plans, out):
            for p, row in zip(plan.proposals, view["proposals"]):
                if p.passed:
                    row["order"] = self._submit(NewOrder(
                        session=session, cl_ord_id=f"{req.id}-{p.account}-{p.symbol}", account=p.account,
                        symbol=p.symbol, side=p.side, ord_type=OrdType.MARKET, qty=p.qty, ex_destination=req.route))
        return 201, {"accounts": out, "submitted": True}

    def _submit(self, order: NewOrder) -> dict[str, Any]:
        for ev in self._command(order):
            if isinstance(ev, OrderAccepted):
                return {"cl_ord_id": order.cl_ord_id, "status": "accepted", "order_id": ev.order_id}
            if isinstance(ev, OrderRejected):
                existing = ev.existing.order_id if ev.existing is not None else None
                return {"cl_ord_id": order.cl_ord_id, "status": "rejected", "reason": ev.reason, "text": ev.text,
                        "order_id": existing}
        return {"cl_ord_id": order.cl_ord_id, "status": "unknown"}


def _decode(body: bytes, kind: type) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "BAD_JSON", f"not valid JSON: {exc}") from None


def query(runtime: Runtime, fn: Callable[[Engine], Any], durable: bool = True) -> Any:
    """A consistent read on the engine's thread; 503 if it does not answer in time."""
    try:
        return runtime.query(fn, _WAIT_S, durable)
    except TimeoutError:
        raise ApiError(503, "BUSY", "the engine did not answer in time; try again") from None


def command(runtime: Runtime, cmd: Any) -> list[Event]:
    """Submit a command and wait for its events, durable; 503 if the engine does not answer in time."""
    done = threading.Event()
    got: list[Event] = []

    def reply(events: list[Event]) -> None:
        got.extend(events)
        done.set()

    runtime.submit(cmd, reply)
    if not done.wait(_WAIT_S):
        raise ApiError(503, "BUSY", "the engine did not answer in time: the outcome is unknown until you look it up")
    return got


