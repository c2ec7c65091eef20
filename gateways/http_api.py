"""The portfolio allocation API over HTTP (JSON): block allocations, rebalancing
proposals (and their submission as orders), order and holding look-ups.

Like every gateway it holds no business state: writes are engine commands (answered after
they are durable), reads run on the engine's thread between commits (`Runtime.query`).
Quantities are integers; prices, values, capital and weights are decimal strings, exact,
never JSON floats (a float is refused). Every refusal is a 4xx with a JSON body naming
the reason (`error`) and saying why (`text`).
"""
from __future__ import annotations

import http.server
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from oms import rebalance
from oms.config import API_OPEN_USER, Config
from oms.engine import Engine
from oms.fixed import FixedPointError, avg_px, price_str, to_money, to_price
from oms.model import (
    Allocate, AllocationBooked, AllocationCanceled, AllocationRejected, CancelAllocation, AllocationTarget, ComplianceAlert, Event, NewOrder, OrderAccepted,
    OrderRejected, OrdType,
)
from oms.reasons import Reason
from oms.runtime import Runtime
from risk.kernel import B_BUYS, B_POS, B_SELLS

log = logging.getLogger("gateways.http_api")

_MAX_BODY = 1 << 20
_WAIT_S = 10.0  # for the engine's answer; past it: 503, and the command may still be applied
_STATUS = {Reason.UNKNOWN_ORDER.name: 404, Reason.DUPLICATE_ALLOC_ID.name: 409}
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # allocation and rebalance ids: safe in a path and a ClOrdID
_MAX_CONNECTIONS = 64
_IDLE_S = 30.0  # a connection that sends nothing for this long is closed


# ---------------------------------------------------------------- request bodies


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    pass


class TargetIn(_Body):
    account: str
    qty: int | None = None  # explicit shares, or
    weight: str | int | None = None  # a ratio (decimal)


class AllocationIn(_Body):
    alloc_id: str
    order_id: str
    targets: list[TargetIn]
    qty: int | None = None  # by weight: how many of the unallocated shares (default all)


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
    """Routes requests to the engine; one instance per OMS."""

    def __init__(self, cfg: Config, runtime: Runtime, metrics: Any = None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.metrics = metrics
        self.tokens = {u.token: u.name for u in cfg.api.users}
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
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(r"/v1/health"), self.health),
            ("GET", re.compile(r"/v1/orders/([^/]+)"), self.get_order),
            ("POST", re.compile(r"/v1/allocations"), self.allocate),
            ("GET", re.compile(r"/v1/allocations/([^/]+)"), self.get_allocation),
            ("DELETE", re.compile(r"/v1/allocations/([^/]+)"), self.cancel_allocation),
            ("GET", re.compile(r"/v1/accounts/([^/]+)/positions"), self.positions),
            ("POST", re.compile(r"/v1/rebalance"), self.rebalance),
        ]
        self._server: _Server | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        self._server = _Server((self.cfg.api.host, self.cfg.api.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="oms-http-api", daemon=True).start()
        log.info("allocation API on http://%s:%d/v1 (%s)", self.cfg.api.host, self.port,
                 f"{len(self.tokens)} users" if self.tokens else "open: no users configured")

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, method: str, path: str, auth: str, body: bytes) -> tuple[int, Any]:
        user = self._user(auth)
        allowed = False
        for m, pattern, fn in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed = True
            if m == method:
                return fn(user, *match.groups(), body) if method == "POST" else fn(user, *match.groups())
        if allowed:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}")
        raise ApiError(404, "NOT_FOUND", f"no route {path}")

    def _user(self, auth: str) -> str:
        if not self.tokens:
            return API_OPEN_USER
        scheme, _, token = auth.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "UNAUTHORIZED", "a valid bearer token is required (Authorization: Bearer <token>)")
        return user

    def _may(self, user: str, *accounts: str) -> None:
        for account in accounts:
            if account not in self.accounts:
                raise ApiError(422, Reason.UNKNOWN_ACCOUNT.name, f"unknown account {account}", account=account)
            if account not in self.entitled[self.cfg.api.session(user)]:
                raise ApiError(403, "FORBIDDEN", f"{user} may not act for account {account}", account=account)

    def _query(self, fn: Callable[[Engine], Any]) -> Any:
        try:
            return self.runtime.query(fn, _WAIT_S)
        except TimeoutError:
            raise ApiError(503, "BUSY", "the engine did not answer in time; try again") from None

    def _command(self, cmd: Any) -> list[Event]:
        done = threading.Event()
        got: list[Event] = []

        def reply(events: list[Event]) -> None:
            got.extend(events)
            done.set()

        self.runtime.submit(cmd, reply)
        if not done.wait(_WAIT_S):
            raise ApiError(503, "BUSY", "the engine did not answer in time: the outcome is unknown until "
                                        "you look it up")
        return got

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


class _Server(http.server.ThreadingHTTPServer):
    """A thread per connection, up to _MAX_CONNECTIONS; one more is closed at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(_MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("allocation API: %d connections open; one more refused", _MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("allocation API: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    api: AllocationApi
    protocol_version = "HTTP/1.1"
    server_version = "oms"
    timeout = _IDLE_S  # an idle or stalled connection is closed

    def _handle(self) -> None:
        """Every method: the body read whole (so the connection stays in step), then served.
        What would leave the connection out of step (chunked bodies, a length missing,
        repeated or not a number) is refused and the connection closed."""
        lengths = self.headers.get_all("Content-Length") or []
        refusal = None
        if self.headers.get("Transfer-Encoding"):
            refusal = 400, "BAD_REQUEST", "Transfer-Encoding is not supported: send Content-Length"
        elif len(lengths) > 1 or (lengths and not re.fullmatch(r"[0-9]{1,10}", lengths[0].strip())):
            refusal = 400, "BAD_REQUEST", "one Content-Length, a number, is needed"
        elif not lengths and self.command == "POST":
            refusal = 411, "LENGTH_REQUIRED", "a body needs Content-Length"
        elif lengths and int(lengths[0]) > _MAX_BODY:
            refusal = 413, "TOO_LARGE", f"bodies up to {_MAX_BODY} bytes"
        if refusal is not None:
            self.close_connection = True
            return self._send(refusal[0], {"error": refusal[1], "text": refusal[2]})
        try:
            body = self.rfile.read(int(lengths[0]) if lengths else 0)
        except OSError:  # the client stalled (timeout) or went away mid-body
            self.close_connection = True
            return
        self._serve(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _serve(self, body: bytes) -> None:
        path = self.path.split("?", 1)[0]
        try:
            status, payload = self.api.dispatch(self.command, path, self.headers.get("Authorization", ""), body)
        except ApiError as exc:
            status, payload = exc.status, exc.body
        except Exception:  # a bug: the request fails, the OMS does not
            log.exception("API request %s %s failed", self.command, path)
            status, payload = 500, {"error": "INTERNAL", "text": "internal error (see the OMS log)"}
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = msgspec.json.encode(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        m = self.api.metrics
        if m is not None:
            m.api_requests.labels(self.command, str(status)).inc()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)
