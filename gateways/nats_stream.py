"""Streams over NATS: orders and executions, compliance, positions, market data and
consolidated prices.

The publisher follows the journal, not the engine: it reads committed events by
sequence number from a read-only connection and publishes them in order, so trading
never waits for NATS, an outage only grows the lag (`oms_stream_lag_events`), and after
a reconnect or a restart it carries on from the last event the server acknowledged. Order
and compliance events go to JetStream with Nats-Msg-Id = the journal sequence, so the
server drops the duplicates a restart may resend and a late consumer can replay the day.

Every message carries headers Oms-Schema (version), Oms-Type (the Struct's name) and
Content-Type; payloads are the msgspec Structs of `oms.model`, msgpack or JSON.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import numpy as np
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError

from oms.journal import JournalReader
from oms.positions import Book
from oms.model import (
    EVENT_DECODER, CancelRejected, ComplianceAlert, Event, ExecType, ExecutionReport, MarketData, OrderAccepted,
    OrderRejected, RiskChanged, Side,
)

log = logging.getLogger("gateways.nats_stream")

SCHEMA = "1"
STREAMS = {"OMS_ORDERS": "oms.orders.>", "OMS_COMPLIANCE": "oms.compliance.>"}
DUPLICATE_WINDOW_S = 24 * 3600.0
_FILLS = frozenset({ExecType.TRADE, ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT})


class Position(msgspec.Struct, tag=True, frozen=True):
    """An account's position in one symbol; money in fixed point (1e-6)."""

    account: str
    symbol: str
    qty: int  # signed
    avg_px: int | None  # average cost of the open position
    realized: int  # in the instrument's currency
    unrealized: int  # at the mark, in the account's base currency
    mark: int | None  # latest mid across venues


class Price(msgspec.Struct, tag=True, frozen=True):
    """Best bid and offer across venues."""

    symbol: str
    bid: int | None
    bid_venue: str | None
    ask: int | None
    ask_venue: str | None


def token(text: str) -> str:
    """A subject token: no dots, spaces or wildcards."""
    return "".join("_" if ch in ". *>" else ch for ch in text) or "_"


class NatsStreamer:
    def __init__(self, url: str, journal_path: Path, state_dir: Path, *, encoding: str = "msgpack",
                 user: str = "", password: str = "", metrics: object | None = None,
                 positions: Book | None = None) -> None:
        self.url, self.user, self.password = url, user, password
        self.journal_path = journal_path
        self.mark_file = state_dir / "nats-published.seq"
        self.encode = msgspec.json.encode if encoding == "json" else msgspec.msgpack.encode
        self.content_type = "application/json" if encoding == "json" else "application/msgpack"
        self.metrics = metrics
        self.published = int(self.mark_file.read_text()) if self.mark_file.exists() else 0
        self.accounts: dict[str, str] = {}  # order_id -> account
        self.fills: dict[str, tuple[int, int]] = {}  # order_id -> (cum qty, cum value) already counted
        self.positions = positions
        self.quotes: dict[str, dict[str, MarketData]] = {}
        self.connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-streamer", daemon=True)
        self._wake: asyncio.Event | None = None
        self._md: asyncio.Queue[MarketData] | None = None
        self._stopping = False
        self._task: asyncio.Future | None = None

    # ------------------------------------------------------------------ lifecycle (any thread)
    def start(self) -> None:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def stop(self, flush_s: float = 5.0) -> None:
        """Publish what is committed (up to flush_s), then close."""
        done = threading.Event()
        self._loop.call_soon_threadsafe(self._request_stop, flush_s, done)
        done.wait(flush_s + 5)
        if self._task is not None:
            try:
                self._task.result(timeout=5)
            except Exception:
                log.exception("stream publisher ended with an error")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def on_events(self, events: list[Event]) -> None:
        """Runtime listener: new events are committed; wake the publisher."""
        if self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def on_market_data(self, md: MarketData) -> None:
        """Venue quotes (any thread); when the publisher falls behind, older quotes are dropped."""
        if self._md is not None:
            self._loop.call_soon_threadsafe(self._offer, md)

    # ------------------------------------------------------------------ the loop's side
    def _offer(self, md: MarketData) -> None:
        assert self._md is not None
        if self._md.full():
            self._md.get_nowait()
        self._md.put_nowait(md)

    def _request_stop(self, flush_s: float, done: threading.Event) -> None:
        self._flush_deadline = self._loop.time() + flush_s
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        self._stopped = done

    async def _main(self) -> None:
        self._wake, self._md = asyncio.Event(), asyncio.Queue(maxsize=10_000)
        self._stopped: threading.Event | None = None
        reader = JournalReader(self.journal_path)
        await self._catch_up(reader)
        nc = await nats.connect(self.url, user=self.user or None, password=self.password or None,
                                max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2,
                                allow_reconnect=True, disconnected_cb=self._down, reconnected_cb=self._up)
        self.connected.set()
        js = nc.jetstream()
        for name, subject in STREAMS.items():
            await self._ensure_stream(js, name, subject)
        md_task = asyncio.create_task(self._market_data(nc))
        await nc.subscribe("oms.positions.snapshot", cb=self._snapshot)
        try:
            await self._follow(nc, js, reader)
        finally:
            md_task.cancel()
            reader.close()
            try:
                await asyncio.wait_for(nc.drain(), 5)
            except (NatsError, asyncio.TimeoutError):
                await nc.close()
            if self._stopped is not None:
                self._stopped.set()

    async def _catch_up(self, reader: JournalReader) -> None:
        """Rebuild what the messages are made from (positions, accounts) from the events
        already published before a restart, without publishing them again."""
        seq = 0
        loop = asyncio.get_running_loop()
        while seq < self.published:
            rows = await loop.run_in_executor(None, reader.after, seq, 1000)
            if not rows:
                break
            for s, payload in rows:
                if s > self.published:
                    return
                for _ in self._messages(EVENT_DECODER.decode(payload)):
                    pass
                seq = s

    async def _down(self) -> None:
        self.connected.clear()
        log.warning("NATS disconnected: events wait in the journal")

    async def _up(self) -> None:
        self.connected.set()
        log.info("NATS reconnected")

    async def _ensure_stream(self, js, name: str, subject: str) -> None:
        while True:
            try:
                await js.add_stream(name=name, subjects=[subject], duplicate_window=DUPLICATE_WINDOW_S)
                return
            except (NatsError, JetStreamError, asyncio.TimeoutError) as exc:
                log.warning("JetStream stream %s not ready (%s); retrying", name, exc)
                await asyncio.sleep(0.5)

    async def _follow(self, nc, js, reader: JournalReader) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rows = await loop.run_in_executor(None, reader.after, self.published, 500)
            if not rows:
                if self._stopping:
                    return
                self._wake.clear()  # type: ignore[union-attr]
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.2)  # type: ignore[union-attr]
                except asyncio.TimeoutError:
                    pass
                continue
            for seq, payload in rows:
                ev = EVENT_DECODER.decode(payload)
                for subject, obj, durable in self._messages(ev):
                    await self._publish(nc, js, subject, obj, f"{seq}:{subject}" if durable else None)
                self.published = seq
            self.mark_file.write_text(str(self.published))
            if self.metrics is not None:
                self.metrics.stream_published.set(self.published)  # type: ignore[attr-defined]
            if self._stopping and loop.time() > self._flush_deadline:
                return

    async def _publish(self, nc, js, subject: str, obj: object, msg_id: str | None) -> None:
        data = self.encode(obj)
        headers = {"Oms-Schema": SCHEMA, "Oms-Type": type(obj).__name__, "Content-Type": self.content_type}
        while True:
            try:
                if msg_id is None:
                    await nc.publish(subject, data, headers=headers)
                else:
                    await js.publish(subject, data, headers={**headers, "Nats-Msg-Id": msg_id}, timeout=2)
                return
            except (NatsError, JetStreamError, asyncio.TimeoutError) as exc:
                if self._stopping and asyncio.get_running_loop().time() > self._flush_deadline:
                    raise
                log.debug("publish to %s failed (%s); retrying", subject, exc)
                await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ what each event becomes
    def _messages(self, ev: Event) -> Iterator[tuple[str, object, bool]]:
        """(subject, payload, durable) for one event."""
        t = type(ev)
        if t is OrderAccepted:
            self.accounts[ev.order_id] = ev.order.account  # type: ignore[union-attr]
            yield f"oms.orders.{token(ev.order.account)}", ev, True  # type: ignore[union-attr]
        elif t is ExecutionReport:
            yield f"oms.orders.{token(ev.account)}", ev, True  # type: ignore[union-attr]
            if ev.exec_type in _FILLS:  # type: ignore[union-attr]
                yield from self._position(ev)  # type: ignore[arg-type]
        elif t is OrderRejected:
            yield f"oms.orders.{token(ev.order.account)}", ev, True  # type: ignore[union-attr]
            if ev.reason.startswith("RISK_"):  # type: ignore[union-attr]
                yield "oms.compliance.reject", ev, True
        elif t is CancelRejected:
            account = self.accounts.get(ev.order_id or "", "_")  # type: ignore[union-attr]
            yield f"oms.orders.{token(account)}", ev, True
            if ev.reason.startswith("RISK_"):  # type: ignore[union-attr]
                yield "oms.compliance.reject", ev, True
        elif t is ComplianceAlert:
            yield f"oms.compliance.alert.{token(ev.control)}", ev, True  # type: ignore[union-attr]
        elif t is RiskChanged:
            yield "oms.compliance.change", ev, True

    def _position(self, ev: ExecutionReport) -> Iterator[tuple[str, object, bool]]:
        """A fill, bust or correction moves the position by its change of CumQty and value."""
        book = self.positions
        if book is None or ev.account not in book.accounts or ev.symbol not in book.symbols:
            return
        cum, value = self.fills.get(ev.order_id, (0, 0))
        self.fills[ev.order_id] = (ev.cum_qty, ev.cum_value)
        d_qty, d_value = ev.cum_qty - cum, ev.cum_value - value
        sign = 1 if ev.side is Side.BUY else -1
        if d_qty:
            book.fill(ev.account, ev.symbol, sign * d_qty, d_value // d_qty)
        elif d_value:  # a correction of price only: out at the old price, in at the new one
            book.fill(ev.account, ev.symbol, -sign * ev.cum_qty, value // ev.cum_qty)
            book.fill(ev.account, ev.symbol, sign * ev.cum_qty, ev.cum_value // ev.cum_qty)
        yield f"oms.positions.{token(ev.account)}", self.position(ev.account, ev.symbol), False

    def position(self, account: str, symbol: str) -> Position:
        b = self.positions
        assert b is not None
        a, i = b.accounts[account], b.symbols[symbol]
        mark = int(b.marks[i]) or None
        return Position(account=account, symbol=symbol, qty=int(b.qty[a, i]), avg_px=b.avg_px(account, symbol),
                        realized=int(b.realized[a, i]), unrealized=int(b.unrealized[a, i]), mark=mark)

    async def _snapshot(self, msg) -> None:
        """Request/reply: positions of one account ({"account": ...}) or of all, as a list."""
        b = self.positions
        try:
            wanted = msgspec.json.decode(msg.data).get("account") if msg.data else None
        except msgspec.DecodeError:
            wanted = None
        rows = [] if b is None else [
            self.position(acc, sym) for acc in b.accounts for sym in b.symbols
            if (wanted in (None, acc)) and b.qty[b.accounts[acc], b.symbols[sym]] != 0]
        await msg.respond(self.encode(rows))

    def _mark(self, symbol: str) -> int | None:
        best = self._best(symbol)
        return (best.bid + best.ask) // 2 if best.bid and best.ask else None

    def _best(self, symbol: str) -> Price:
        quotes = self.quotes.get(symbol, {}).values()
        bids = [(q.bid, q.venue) for q in quotes if q.bid]
        asks = [(q.ask, q.venue) for q in quotes if q.ask]
        bid = max(bids, default=(None, None))
        ask = min(asks, default=(None, None))
        return Price(symbol=symbol, bid=bid[0], bid_venue=bid[1], ask=ask[0], ask_venue=ask[1])

    async def _market_data(self, nc) -> None:
        assert self._md is not None
        while True:
            md = await self._md.get()
            self.quotes.setdefault(md.symbol, {})[md.venue] = md
            mark = self._mark(md.symbol)
            b = self.positions
            if b is not None and mark and md.symbol in b.symbols:
                b.prices(np.array([b.symbols[md.symbol]], np.int64), np.array([mark], np.int64))
            try:
                await nc.publish(f"oms.md.{token(md.venue)}.{token(md.symbol)}", self.encode(md),
                                 headers={"Oms-Schema": SCHEMA, "Oms-Type": "MarketData",
                                          "Content-Type": self.content_type})
                await nc.publish(f"oms.prices.{token(md.symbol)}", self.encode(self._best(md.symbol)),
                                 headers={"Oms-Schema": SCHEMA, "Oms-Type": "Price", "Content-Type": self.content_type})
            except NatsError:
                pass  # prices are not kept: the next quote replaces this one
