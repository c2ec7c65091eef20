"""The web console: a page served at / (plain JS, SVG charts, no outside asset) fed by
server-sent events at /v1/console/stream.

The feed follows the committed events (a Runtime listener, as the NATS publisher does):
the listener only appends them to a list; every 100 ms a task on the server's loop takes
that list, reads the orders it touched and (at most once a second, or at once after a
risk change) positions, limits, controls and sessions in one engine query, and sends one
update to every browser: at most 10 updates a second per view, however busy the market.
Each browser sees only the accounts its user may see.
"""
import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from litestar.static_files import create_static_files_router

from gateways.http_api import query
from gateways.risk_api import RiskApi, controls, utilisation
from oms.config import ApiUser, Config
from oms.engine import Engine
from oms.metrics import Metrics
from oms.fixed import avg_px, price_str
from oms.model import (
    ChildOrderSent, ChildUpdated, ComplianceAlert, Event, ExecType, ExecutionReport, OrderAccepted, OrderRejected,
    RiskChanged,
)
from oms.runtime import Runtime
from oms.states import TERMINAL
from risk.kernel import B_CASH, B_POS, I_REF

log = logging.getLogger("gateways.console")

STATIC = Path(__file__).with_name("console")
TICK_S = 0.1  # at most 10 updates a second
FULL_S = 1.0  # positions, limits, sessions and a chart sample: once a second
_QUEUE = 256  # updates a browser may fall behind by before it is dropped (it reconnects to a fresh snapshot)
_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def _order_row(engine: Engine, order_id: str) -> dict[str, Any] | None:
    st = engine.state
    o = st.orders.get(order_id)
    if o is None:
        return None
    children, fills = [], []
    for cid in o.children:
        ch = st.children[cid]
        children.append({"child_id": ch.child_id, "venue": ch.venue, "qty": ch.qty, "cum_qty": ch.cum_qty,
                         "status": ch.status.name, "price": price_str(ch.price) if ch.price is not None else None})
        for parent_exec in ch.venue_fills.values():
            if parent_exec in o.fills:
                qty, px = o.fills[parent_exec]
                fills.append({"exec_id": parent_exec, "venue": ch.venue, "qty": qty, "px": price_str(px)})
    return {"order_id": o.order_id, "cl_ord_id": o.cl_ord_id, "session": o.session, "account": o.account,
            "symbol": o.symbol, "side": o.side.name, "ord_type": o.ord_type.name, "qty": o.order_qty,
            "price": price_str(o.price) if o.price is not None else None, "status": o.status.name,
            "cum_qty": o.cum_qty, "leaves_qty": 0 if o.status in TERMINAL else max(o.order_qty - o.cum_qty, 0),
            "avg_px": str(avg_px(o.cum_value, o.cum_qty)), "venue": o.venue, "children": children, "fills": fills}


def _book(engine: Engine, rates: Any) -> dict[str, Any]:
    """Positions and P&L per account in its base currency (cash from fills plus positions at
    reference prices, the post-trade rules' figure), and exposure by symbol."""
    c = engine.compliance
    pos, cash, ref = c.book[B_POS], c.book[B_CASH], c.inst[I_REF]
    positions, pnl, exposure = [], {}, {}
    for acc, a in c.accounts.items():
        total = 0
        for sym, i in c.symbols.items():
            q, px, paid = int(pos[a, i]), int(ref[i]), int(cash[a, i])
            value = (paid + q * px) * int(rates[a, i]) // 10**6
            total += value
            if q or paid:
                positions.append({"account": acc, "symbol": sym, "qty": q, "price": price_str(px),
                                  "market_value": price_str(q * px), "pnl": price_str(value)})
            if q:
                exposure.setdefault(acc, {})[sym] = price_str(q * px * int(rates[a, i]) // 10**6)
        pnl[acc] = price_str(total)
    return {"positions": positions, "pnl": pnl, "exposure": exposure}


class _Viewer:
    def __init__(self, user: ApiUser) -> None:
        self.accounts = frozenset(user.accounts) or None  # None: every account
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE)

    def sees(self, account: str) -> bool:
        return self.accounts is None or not account or account in self.accounts

    def view(self, update: dict[str, Any]) -> dict[str, Any]:
        """The update cut to the viewer's accounts."""
        if self.accounts is None:
            return update
        out = dict(update)
        for key in ("orders", "alerts", "positions", "limits"):
            if key in out:
                out[key] = [r for r in out[key] if self.sees(r.get("account") or "")]
        if "pnl" in out:
            out["pnl"] = {k: v for k, v in out["pnl"].items() if self.sees(k)}
        if "sample" in out:
            out["sample"] = {**out["sample"], "pnl": {k: v for k, v in out["sample"]["pnl"].items() if self.sees(k)},
                             "exposure": {k: v for k, v in out["sample"]["exposure"].items() if self.sees(k)}}
        return out


class Console:
    def __init__(self, cfg: Config, runtime: Runtime, risk: RiskApi, metrics: Metrics | None = None) -> None:
        self.runtime = runtime
        self.risk = risk
        self.metrics = metrics
        self.rates = cfg.fx_rates()
        self.sectors = {i.symbol: cfg.risk.sectors.get(i.symbol, "other") for i in cfg.instruments}
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._viewers: set[_Viewer] = set()
        self.alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        # the charts: every second for the last 10 minutes, and one a minute for the day before that
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=600)
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=24 * 60)
        self._accepted: dict[str, int] = {}  # order id -> acceptance ts, until the venue's first answer
        self._round_trips: collections.deque[tuple[float, int]] = collections.deque()  # (when, ns) of the last minute
        self._new_orders = 0
        self._last_full = 0.0
        self._task: asyncio.Task | None = None

    def on_events(self, events: list[Event]) -> None:
        """Runtime listener, on the engine's thread: keep it to an append."""
        if events:
            with self._lock:
                self._pending.extend(events)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for v in list(self._viewers):
            _offer(v, None)

    # ------------------------------------------------------------------ the feed
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                with self._lock:
                    events, self._pending = self._pending, []
                touched, children, alerts, changed = self._digest(events)
                if not self._viewers:  # nobody to show orders to: only the charts' samples go on
                    touched, children = set(), set()
                now = time.monotonic()
                full = changed or now - self._last_full >= FULL_S
                if not (touched or children or alerts or full):
                    continue
                update = await loop.run_in_executor(None, self._read, touched, children, full)
                if full:
                    update["sample"] = self._sample(update.pop("book"), now)
                    if len(self.samples) == self.samples.maxlen and (
                            not self.history or self.samples[0]["t"] - self.history[-1]["t"] >= 60_000):
                        self.history.append(self.samples[0])  # about to leave the last 10 minutes
                    self.samples.append(update["sample"])
                update["alerts"] = alerts
                encoded: dict[frozenset[str] | None, str] = {}  # one encoding per set of accounts seen
                for v in list(self._viewers):
                    if v.accounts not in encoded:
                        encoded[v.accounts] = msgspec.json.encode(v.view(update)).decode()
                    _offer(v, encoded[v.accounts])
            except asyncio.CancelledError:
                raise
            except Exception:  # the feed goes on; the error is logged
                log.exception("console feed failed")

    def _digest(self, events: list[Event]) -> tuple[set[str], set[str], list[dict[str, Any]], bool]:
        touched, children, alerts, changed = set(), set(), [], False
        for ev in events:
            t = type(ev)
            if t is ExecutionReport:
                touched.add(ev.order_id)
                sent = self._accepted.pop(ev.order_id, None) if ev.exec_type is not ExecType.PENDING_NEW else None
                if sent is not None:
                    self._round_trips.append((time.monotonic(), ev.ts - sent))
            elif t is OrderAccepted:
                touched.add(ev.order_id)
                self._accepted[ev.order_id] = ev.ts
                self._new_orders += 1
            elif t is ChildOrderSent:
                touched.add(ev.order_id)
            elif t is ChildUpdated:
                children.add(ev.child_id)
            elif t is OrderRejected and ev.reason.startswith("RISK_"):
                alerts.append({"ts": ev.ts, "kind": "reject", "control": ev.reason.lower(), "level": "reject",
                               "account": ev.order.account, "symbol": ev.order.symbol,
                               "text": f"{ev.order.session} {ev.order.cl_ord_id} refused: {ev.text}"})
            elif t is ComplianceAlert:
                alerts.append({"ts": ev.ts, "kind": "alert", "control": ev.control, "level": ev.level,
                               "account": ev.account, "symbol": ev.symbol, "text": ev.text})
            elif t is RiskChanged:
                changed = True
                ch = ev.change
                alerts.append({"ts": ev.ts, "kind": "change", "control": type(ch).__name__, "level": "change",
                               "account": getattr(ch, "account", "") or (ch.key if getattr(ch, "scope", "") ==
                                                                          "account" else ""),
                               "user": ev.user, "reason": ev.reason, "text": _describe(ch)})
        self.alerts.extend(alerts)
        if len(self._accepted) > 100_000:  # orders the venues never answered: forget the oldest
            for k in list(self._accepted)[:50_000]:
                del self._accepted[k]
        return touched, children, alerts, changed

    def _read(self, touched: set[str], children: set[str], full: bool) -> dict[str, Any]:
        def read(e: Engine) -> dict[str, Any]:
            ids = touched | {e.state.children[c].order_id for c in children if c in e.state.children}
            out: dict[str, Any] = {"orders": [r for i in sorted(ids) if (r := _order_row(e, i)) is not None]}
            if full:
                out.update(book=_book(e, self.rates), limits=utilisation(e), controls=controls(e),
                           venues_down=sorted(e.venues_down))
            return out

        out = query(self.runtime, read, durable=False)  # a live view: not worth a wait on the disk
        if full:
            out["positions"] = out["book"]["positions"]
            out["sessions"] = self.risk.sessions()
            if self.metrics is not None:  # the operator's gauges, from the same reads
                self.metrics.kill_switches.set(len(out["controls"]["kill_switches"]))
                for v in out["sessions"]["venues"]:
                    self.metrics.venue_up.labels(v["venue"]).set(int(v["up"] and v["venue"] not in out["venues_down"]))
        return out

    def _sample(self, book: dict[str, Any], now: float) -> dict[str, Any]:
        """One point of every chart: P&L per account, exposure by symbol, order rate, round trips."""
        while self._round_trips and self._round_trips[0][0] < now - 60:
            self._round_trips.popleft()
        trips = sorted(ns for _, ns in self._round_trips)
        elapsed = now - self._last_full if self._last_full else FULL_S
        rate, self._new_orders, self._last_full = self._new_orders / max(elapsed, TICK_S), 0, now
        return {"t": int(time.time() * 1000), "pnl": book["pnl"], "exposure": book["exposure"],
                "orders_per_s": round(rate, 1),
                "p50_ms": _percentile(trips, 50), "p99_ms": _percentile(trips, 99)}

    # ------------------------------------------------------------------ routes
    def routes(self, users: Any) -> list[Any]:
        console = self

        @get("/", sync_to_thread=False, include_in_schema=False)
        def page() -> Response:
            return Response((STATIC / "index.html").read_bytes(), media_type="text/html", headers=_HEADERS)

        @get("/v1/console/stream")
        async def stream(request: Request) -> ServerSentEvent:
            """Server-sent events: a snapshot, then updates (at most 10 a second)."""
            viewer = _Viewer(users.authenticate(request))
            snapshot = await asyncio.get_running_loop().run_in_executor(None, console._snapshot)
            return ServerSentEvent(console._follow(viewer, snapshot), headers={"Cache-Control": "no-store"})

        return [page, stream, create_static_files_router("/static", [STATIC])]

    def _snapshot(self) -> dict[str, Any]:
        def read(e: Engine) -> dict[str, Any]:
            return {"orders": [_order_row(e, i) for i in list(e.state.orders)[-500:]], "book": _book(e, self.rates),
                    "limits": utilisation(e), "controls": controls(e), "venues_down": sorted(e.venues_down)}

        out = query(self.runtime, read, durable=False)  # a live view: not worth a wait on the disk
        book = out.pop("book")
        out.update(positions=book["positions"], pnl=book["pnl"])  # the P&L of the positions shown
        out.update(sessions=self.risk.sessions(), alerts=list(self.alerts), sectors=self.sectors,
                   samples=[*self.history, *self.samples])
        return out

    async def _follow(self, viewer: _Viewer, snapshot: dict[str, Any]) -> AsyncIterator[ServerSentEventMessage]:
        view = viewer.view(snapshot)
        view["samples"] = [viewer.view({"sample": s})["sample"] for s in snapshot["samples"]]
        self._viewers.add(viewer)
        try:
            yield ServerSentEventMessage(event="snapshot", data=msgspec.json.encode(view).decode())
            while (data := await viewer.queue.get()) is not None:
                yield ServerSentEventMessage(event="update", data=data)
        finally:
            self._viewers.discard(viewer)


def _offer(viewer: _Viewer, data: str | None) -> None:
    """Queue an update; a browser that fell this far behind is ended (its page reconnects)."""
    q = viewer.queue
    try:
        q.put_nowait(data)
    except asyncio.QueueFull:
        while not q.empty():
            q.get_nowait()
        q.put_nowait(None)


def _percentile(sorted_ns: list[int], p: int) -> float | None:
    if not sorted_ns:
        return None
    return round(sorted_ns[min(len(sorted_ns) - 1, p * len(sorted_ns) // 100)] / 1e6, 3)


def _describe(ch: Any) -> str:
    fields = {k: v for k, v in msgspec.structs.asdict(ch).items()
              if k not in ("user", "reason") and v not in ("", None, False)}
    return f"{type(ch).__name__} " + " ".join(f"{k}={v}" for k, v in fields.items())
