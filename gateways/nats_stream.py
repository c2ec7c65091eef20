"""Streams over NATS: orders and executions, compliance, allocations, the trading day
(start, end, halts, splits), positions, market data and consolidated prices.

The publisher follows the journal, not the engine: it publishes committed events in
journal order, so trading never waits for NATS, an outage only grows the lag
(`oms_journal_last_seq` minus `oms_stream_published_seq`), and after a reconnect or a
restart it carries on from the last event the server acknowledged. While it keeps up,
the runtime hands it each commit's events in memory with their sequence numbers; what it
missed (a start-up, a backlog that was full) it reads from the journal. Order and
compliance events go to JetStream with Nats-Msg-Id = the journal sequence, so the server
drops the duplicates a restart may resend and a late consumer can replay the day.

Between the journal and NATS sits a bounded backlog (`max_backlog` events). When NATS is
away it fills, commits handed over beyond it are dropped (the journal is the durable
buffer, so nothing is lost), and the streamer warns once and raises
`oms_stream_backlog_full` until it has caught up with the journal.

Positions are published on change, coalesced: at most once per account per interval, the
first change at once and the latest state of what changed since at the interval's end.

Every message carries headers Oms-Schema (version), Oms-Type (the Struct's name) and
Content-Type; payloads are the msgspec Structs of `oms.model`, msgpack or JSON.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import concurrent.futures
import itertools
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import numpy as np
from nats.errors import Error as NatsError
from nats.js.errors import APIError, NoStreamResponseError
from nats.js.errors import Error as JetStreamError

from oms.journal import JournalReader
from oms.model import (
    EVENT_DECODER, AllocationBooked, AllocationCanceled, AllocationRejected, CancelRejected, ComplianceAlert,
    DayEnded, DayStarted, Event, ExecutionReport, HaltChanged, MarketData, OrderAccepted, OrderRejected, RiskChanged,
    SplitApplied,
)
from oms.positions import Book, Ledger, VenueFills

log = logging.getLogger("gateways.nats_stream")

SCHEMA = "2"  # 2: Position.venues
STREAMS = {"OMS_ORDERS": "oms.orders.>", "OMS_COMPLIANCE": "oms.compliance.>", "OMS_ALLOCATIONS": "oms.allocations.>",
           "OMS_DAY": "oms.day.>"}
DUPLICATE_WINDOW_S = 24 * 3600.0
_WINDOW = 256  # JetStream messages in flight
_POLL_S = 0.5  # when nothing is handed over, how often the journal's end is checked
_MARK_S = 0.2  # the published mark is written at most this often while events keep coming


class Position(msgspec.Struct, tag=True, frozen=True):
    """An account's position in one symbol; money in fixed point (1e-6). venues: the
    fills behind it by venue, whose qty sum to qty."""

    account: str
    symbol: str
    qty: int  # signed
    avg_px: int | None  # average cost of the open position
    realized: int  # in the instrument's currency
    unrealized: int  # at the mark, in the account's base currency
    mark: int | None  # latest mid across venues
    venues: list[VenueFills] = []


class Price(msgspec.Struct, tag=True, frozen=True):
    """Best bid and offer across venues."""

    symbol: str
    bid: int | None
    bid_venue: str | None
    ask: int | None
    ask_venue: str | None


class _Acks:
    """JetStream publishes that do not wait: each gets a future for the server's
    acknowledgement, answered on one reply subscription of the connection's own."""

    def __init__(self, nc) -> None:
        self.nc = nc
        self.prefix = ""
        self.pending: dict[str, asyncio.Future] = {}
        self.ids = itertools.count()

    async def start(self) -> None:
        self.prefix = self.nc.new_inbox() + "."
        await self.nc.subscribe(self.prefix + "*", cb=self._reply)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> asyncio.Future:
        token = str(next(self.ids))
        ack = self.pending[token] = asyncio.get_running_loop().create_future()
        try:
            await self.nc.publish(subject, data, reply=self.prefix + token, headers=headers)
        except NatsError:
            del self.pending[token]
            raise
        return ack

    async def _reply(self, msg) -> None:
        ack = self.pending.pop(msg.subject[len(self.prefix):], None)
        if ack is None or ack.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            ack.set_exception(NoStreamResponseError())
            return
        resp = json.loads(msg.data)
        if "error" in resp:
            ack.set_exception(APIError.from_error(resp["error"]))
        else:
            ack.set_result(resp)

    def forget(self) -> None:
        """After a failure, nothing still in flight is waited for: it will be sent again."""
        for ack in self.pending.values():
            ack.cancel()
        self.pending.clear()


def _stream(subject: str) -> str:
    for name, pattern in STREAMS.items():
        if subject.startswith(pattern[:-1]):
            return name
    raise ValueError(f"{subject} is in no stream")


def token(text: str) -> str:
    """A subject token: no dots, spaces or wildcards."""
    return "".join("_" if ch in ". *>" else ch for ch in text) or "_"


class NatsStreamer:
    """servers: one URL or a cluster's; auth: nats.connect credentials (user/password or nkeys_seed)."""

    def __init__(self, servers: str | list[str], journal_path: Path, state_dir: Path, *,
                 encoding: str = "msgpack", auth: dict[str, str] | None = None, metrics: object | None = None,
                 positions: Book | None = None, positions_interval_ms: int = 100,
                 max_backlog: int = 10_000) -> None:
        self.servers, self.auth = servers, auth or {}
        self.journal_path = journal_path
        self.mark_file = state_dir / "nats-published.seq"
        self.encode = msgspec.json.encode if encoding == "json" else msgspec.msgpack.encode
        self.content_type = "application/json" if encoding == "json" else "application/msgpack"
        self.metrics = metrics
        self.published = self._read_mark()
        self._marked, self._mark_due = self.published, 0.0  # the mark on disk; when the next may be written
        self.accounts: dict[str, str] = {}  # order_id -> account
        self.positions = positions
        self.ledger = Ledger(positions) if positions is not None else None
        self.interval = positions_interval_ms / 1000
        self.changed: dict[str, set[str]] = {}  # account -> symbols changed since its last publish
        self.sent_at: dict[str, float] = {}  # account -> loop time of its last positions publish
        self.quotes: dict[str, dict[str, MarketData]] = {}
        self.backlog: collections.deque[tuple[int, list[tuple[str, object]]]] = collections.deque()
        self.max_backlog = max_backlog
        self.backlog_full = False
        self.connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-streamer", daemon=True)
        self._wake = asyncio.Event()  # new events in the journal
        # commits handed over by the runtime, not yet in the backlog (at most max_backlog
        # events); _journal_upto: the last sequence known to be in the journal and not here
        self._live: collections.deque[tuple[int, list[Event]]] = collections.deque()
        self._live_events = 0
        self._journal_upto = 0
        self._live_lock = threading.Lock()
        self._queued = asyncio.Event()  # the backlog grew (or the reader is done)
        self._room = asyncio.Event()  # the backlog shrank
        self._position_changed = asyncio.Event()
        # the latest quote per (venue, symbol) not yet published: quotes conflate, so a burst
        # of book changes costs one wake-up of the loop and one publish per instrument
        self._md_latest: dict[tuple[str, str], MarketData] = {}
        self._md_lock = threading.Lock()
        self._md_ready = asyncio.Event()
        self._read_done = False
        self._stopping = False
        self._stopped: threading.Event | None = None
        self._ended = False  # _main has returned (loop thread only)
        self._task: asyncio.Future | None = None

    # ------------------------------------------------------------------ lifecycle (any thread)
    def start(self) -> None:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def stop(self, flush_s: float = 5.0) -> None:
        """Publish what is committed (up to flush_s), then close."""
        done = threading.Event()
        self._loop.call_soon_threadsafe(self._request_stop, flush_s, done)
        if not done.wait(flush_s + 2) and self._task is not None:
            self._task.cancel()  # still connecting, or stuck: give up
        if self._task is not None:
            try:
                self._task.result(timeout=2)
            except concurrent.futures.CancelledError:
                log.warning("stream publisher stopped before it had published everything")
            except Exception:
                log.exception("stream publisher ended with an error")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def running(self) -> bool:
        """False once the publisher has ended: stopped, or failed."""
        return self._task is not None and not self._task.done()

    def on_committed(self, first_seq: int, events: list[Event]) -> None:
        """Runtime follower: events committed at first_seq on. Kept while the publisher keeps
        up; dropped when it is far behind, to be read from the journal later."""
        with self._live_lock:
            if self._live_events < self.max_backlog:
                self._live.append((first_seq, events))
                self._live_events += len(events)
            else:
                self._journal_upto = first_seq + len(events) - 1
        self._loop.call_soon_threadsafe(self._wake.set)

    def on_market_data(self, md: MarketData) -> None:
        """Venue quotes (any thread); a newer quote of the same venue and symbol replaces one
        not yet published."""
        with self._md_lock:
            wake = not self._md_latest
            self._md_latest[(md.venue, md.symbol)] = md
        if wake:
            self._loop.call_soon_threadsafe(self._md_ready.set)

    # ------------------------------------------------------------------ the loop's side

    def _request_stop(self, flush_s: float, done: threading.Event) -> None:
        self._flush_deadline = self._loop.time() + flush_s
        self._stopping = True
        self._wake.set()
        self._stopped = done
        if self._ended:  # it failed before the stop: nothing will flush, nothing to wait for
            done.set()

    async def _main(self) -> None:
        reader = JournalReader(self.journal_path)
        tasks: list[asyncio.Task] = []
        nc = None
        try:
            await self._catch_up(reader)
            tasks.append(asyncio.create_task(self._read(reader)))  # fills the backlog even before a connection
            nc = await nats.connect(self.servers, **self.auth, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                    connect_timeout=2, allow_reconnect=True, disconnected_cb=self._down,
                                    reconnected_cb=self._up, error_cb=self._error)
            self.connected.set()
            js = nc.jetstream()
            for name, subject in STREAMS.items():
                await self._ensure_stream(js, name, subject)
            tasks += [asyncio.create_task(self._market_data(nc)), asyncio.create_task(self._publish_positions(nc))]
            await nc.subscribe("oms.positions.snapshot", cb=self._snapshot)
            acks = _Acks(nc)
            await acks.start()
            drain = asyncio.create_task(self._drain(acks))
            tasks.append(drain)
            pending: set[asyncio.Task] = set(tasks)
            while drain in pending:  # it ends at a stop; the reader ends before it, the others never
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is not None:
                        log.error("stream publisher failed in %s: %r", task.get_coro().__name__, task.exception())
                        raise RuntimeError("stream publisher failed") from task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            reader.close()
            if nc is not None:
                await self._close(nc)
            self._ended = True
            if self._stopped is not None:
                self._stopped.set()

    async def _close(self, nc) -> None:
        """The last positions go out whatever the interval, then the connection drains."""
        try:
            for account in list(self.changed):
                await self._send_positions(nc, account)
            await asyncio.wait_for(nc.drain(), 5)
        except (NatsError, asyncio.TimeoutError):
            await nc.close()

    async def _catch_up(self, reader: JournalReader) -> None:
        """Rebuild what the messages are made from (positions, accounts) from the events
        already published before a restart, without publishing them again."""
        seq = 0
        loop = asyncio.get_running_loop()
        while True:
            rows = [row for row in await loop.run_in_executor(None, reader.after, seq, 1000) if row[0] <= self.published]
            if not rows:
                break
            if self.metrics is not None:
                self.metrics.stream_journal_events.inc(len(rows))  # type: ignore[attr-defined]
            for _s, payload in rows:
                for _ in self._messages(EVENT_DECODER.decode(payload)):
                    pass
            seq = rows[-1][0]
        self.changed.clear()

    async def _down(self) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("NATS disconnected: events wait in the backlog and the journal")

    async def _error(self, exc: Exception) -> None:
        """A failed reconnect is detail (the disconnect was logged once); anything else, such
        as a permissions violation, is worth a warning."""
        if isinstance(exc, (OSError, asyncio.TimeoutError)):
            log.debug("NATS: %s", exc)
        else:
            log.warning("NATS: %s", exc)

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

    # ------------------------------------------------------------------ journal -> backlog -> NATS
    async def _read(self, reader: JournalReader) -> None:
        """Committed events into the backlog, in order: handed over in memory, or read from
        the journal where the hand-over has a gap; while the backlog is full, the journal
        keeps the rest."""
        loop = asyncio.get_running_loop()
        seq = self.published
        self._note_journal(await loop.run_in_executor(None, reader.last_seq))
        while True:
            while len(self.backlog) >= self.max_backlog:
                self._set_full(True)
                self._room.clear()
                await self._room.wait()
            with self._live_lock:
                item = self._live[0] if self._live else None
                upto = self._journal_upto
                behind = item[0] > seq + 1 if item is not None else seq < upto  # a gap, or a dropped tail
                if item is not None and not behind:  # as much of it as the backlog has room for
                    first, events = self._live.popleft()
                    room = self.max_backlog - len(self.backlog)
                    if len(events) > room:
                        self._live.appendleft((first + room, events[room:]))
                        item = (first, events[:room])
                    self._live_events -= len(item[1])
            if behind or (item is None and self._stopping):
                rows = await loop.run_in_executor(None, reader.after, seq, self.max_backlog - len(self.backlog))
                if not rows:  # the journal has nothing after seq: at a stop, the end
                    if self._stopping and not self._live:
                        self._read_done = True
                        self._queued.set()
                        return
                    with self._live_lock:
                        if self._journal_upto == upto:
                            self._journal_upto = seq
                    continue
                events = [(s, EVENT_DECODER.decode(payload)) for s, payload in rows]
                if self.metrics is not None:
                    self.metrics.stream_journal_events.inc(len(rows))  # type: ignore[attr-defined]
            elif item is not None:
                events = list(enumerate(item[1], item[0]))
            else:
                if not self.backlog:  # caught up with the journal: the episode is over
                    self._set_full(False)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), _POLL_S)
                except asyncio.TimeoutError:  # a commit the hand-over dropped, with none after it
                    self._note_journal(await loop.run_in_executor(None, reader.last_seq))
                continue
            for s, ev in events:
                if s > seq:
                    self.backlog.append((s, list(self._messages(ev))))
                    seq = s
            self._queued.set()
            self._gauges()

    def _note_journal(self, seq: int) -> None:
        with self._live_lock:
            self._journal_upto = max(self._journal_upto, seq)

    async def _drain(self, acks: _Acks) -> None:
        """Backlog to JetStream, a window of messages in flight at a time: an event leaves the
        backlog once all its messages are acknowledged. Each message names the one sent before
        it to the same stream (Nats-Expected-Last-Msg-Id), so a message lost in flight makes
        the server refuse the ones after it, and they are sent again in order: never a gap or
        a swap in a stream (the server answers a resent one it already holds as a duplicate)."""
        loop = asyncio.get_running_loop()
        since_mark = 0
        chain: dict[str, str] = {}  # stream -> Nats-Msg-Id of the last message sent to it
        while True:
            if not self.backlog:
                if self.published != self._marked:  # at most one mark per _MARK_S while events keep coming
                    due = self._mark_due - loop.time()
                    if due > 0 and not self._read_done:
                        self._queued.clear()
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._queued.wait(), due)
                        continue
                    self._save_mark()
                    since_mark = 0
                if self._read_done:
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            acked, failure = await self._send_window(acks, chain)
            for _ in range(acked):
                self.published = self.backlog.popleft()[0]
            if acked:
                self._room.set()
                if not self.backlog and self.backlog_full:
                    self._wake.set()  # the reader checks whether it has caught up with the journal
                since_mark += acked
                if since_mark >= 500:
                    self._save_mark()
                    since_mark = 0
            if failure is not None:
                chain.clear()  # the next window starts a new chain at the first unacknowledged message
                if self._stopping and loop.time() > self._flush_deadline:
                    self._save_mark()
                    raise failure
                log.debug("publish failed (%s); sending again from event %d", failure, self.backlog[0][0])
                await asyncio.sleep(0.2)
            elif self._stopping and loop.time() > self._flush_deadline:
                self._save_mark()
                return

    async def _send_window(self, acks: _Acks, chain: dict[str, str]) -> tuple[int, Exception | None]:
        """Publish whole events from the head of the backlog, up to _WINDOW messages, then wait
        for the acknowledgement of each stream's last message: (events fully acknowledged,
        the first failure). Only that last one asks for an answer: every message names its
        predecessor in the stream (Nats-Expected-Last-Msg-Id), so the server stores the last
        only if it stored all before it, and an answer per message would cost the publisher
        and the server a round of work each."""
        window: list[tuple[int, str, str, bytes, dict[str, str]]] = []  # (event index, stream, subject, data, headers)
        last: dict[str, int] = {}  # stream -> position in window of its last message
        events = 0
        for index, (seq, messages) in enumerate(list(itertools.islice(self.backlog, _WINDOW))):
            if window and len(window) + len(messages) > _WINDOW:
                break
            for subject, obj in messages:
                msg_id, stream = f"{seq}:{subject}", _stream(subject)
                headers = {**self._headers(obj), "Nats-Msg-Id": msg_id}
                if stream in chain:
                    headers["Nats-Expected-Last-Msg-Id"] = chain[stream]
                chain[stream] = msg_id
                last[stream] = len(window)
                window.append((index, stream, subject, self.encode(obj), headers))
            events = index + 1
        answers: dict[str, asyncio.Future] = {}
        failure: Exception | None = None
        for pos, (_index, stream, subject, data, headers) in enumerate(window):
            try:
                if last[stream] == pos:
                    answers[stream] = await acks.publish(subject, data, headers)
                else:
                    await acks.nc.publish(subject, data, headers=headers)
            except NatsError as exc:  # not even sent: what went before may still be acknowledged
                failure = exc
                break
        stored = set()
        for stream, ack in answers.items():
            try:
                await asyncio.wait_for(ack, 2)
                stored.add(stream)
            except (NatsError, JetStreamError, asyncio.TimeoutError) as exc:
                failure = failure or exc
        if failure is None:
            return events, None
        acks.forget()
        unsure = [index for index, stream, *_ in window if stream not in stored]
        return min(unsure, default=events), failure

    def _read_mark(self) -> int:
        """The last sequence published before a restart; unreadable means from the start (the
        server drops what it already holds: Nats-Msg-Id)."""
        try:
            return int(self.mark_file.read_text())
        except FileNotFoundError:
            return 0
        except ValueError:
            log.warning("%s is unreadable: publishing from the first event again", self.mark_file)
            return 0

    def _save_mark(self) -> None:
        """Write and rename: a kill mid-write leaves the old mark, never a torn one. A mark
        behind what was published only costs resends the server drops (Nats-Msg-Id), so it
        is written at most once per _MARK_S while the backlog keeps emptying: the rename
        was a third of the publisher's work under load when it followed every commit."""
        tmp = self.mark_file.with_suffix(".tmp")
        tmp.write_text(str(self.published))
        os.replace(tmp, self.mark_file)
        self._marked = self.published
        self._mark_due = self._loop.time() + _MARK_S
        self._gauges()

    def _set_full(self, full: bool) -> None:
        if full == self.backlog_full:
            return
        self.backlog_full = full
        if full:
            log.warning("NATS stream backlog full (%d events): reading ahead stops, the journal holds the rest",
                        self.max_backlog)
        else:
            log.info("NATS stream backlog drained")
        self._gauges()

    def _gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.stream_published.set(self.published)  # type: ignore[attr-defined]
            self.metrics.stream_backlog.set(len(self.backlog))  # type: ignore[attr-defined]
            self.metrics.stream_backlog_full.set(int(self.backlog_full))  # type: ignore[attr-defined]

    def _headers(self, obj: object) -> dict[str, str]:
        return {"Oms-Schema": SCHEMA, "Oms-Type": type(obj).__name__, "Content-Type": self.content_type}

    # ------------------------------------------------------------------ what each event becomes
    def _messages(self, ev: Event) -> Iterator[tuple[str, object]]:
        """(subject, payload) of the JetStream messages of one event; a fill also moves the positions."""
        t = type(ev)
        if self.ledger is not None and (moved := self.ledger.apply(ev)) is not None:
            self._touch(*moved)
        if t is OrderAccepted:
            self.accounts[ev.order_id] = ev.order.account  # type: ignore[union-attr]
            yield f"oms.orders.{token(ev.order.account)}", ev  # type: ignore[union-attr]
        elif t is ExecutionReport:
            yield f"oms.orders.{token(ev.account)}", ev  # type: ignore[union-attr]
        elif t is OrderRejected:
            yield f"oms.orders.{token(ev.order.account)}", ev  # type: ignore[union-attr]
            if ev.reason.startswith("RISK_"):  # type: ignore[union-attr]
                yield "oms.compliance.reject", ev
        elif t is CancelRejected:
            account = self.accounts.get(ev.order_id or "", "_")  # type: ignore[union-attr]
            yield f"oms.orders.{token(account)}", ev
            if ev.reason.startswith("RISK_"):  # type: ignore[union-attr]
                yield "oms.compliance.reject", ev
        elif t is ComplianceAlert:
            yield f"oms.compliance.alert.{token(ev.control)}", ev  # type: ignore[union-attr]
        elif t is AllocationBooked or t is AllocationCanceled:
            booking = ev if t is AllocationBooked else ev.booking  # type: ignore[union-attr]
            for account in (booking.account, *(s.account for s in booking.shares)):  # type: ignore[union-attr]
                yield f"oms.allocations.{token(account)}", ev
        elif t is AllocationRejected:
            yield f"oms.allocations.{token(self.accounts.get(ev.order_id, '_'))}", ev  # type: ignore[union-attr]
            if ev.reason.startswith("RISK_"):  # type: ignore[union-attr]
                yield "oms.compliance.reject", ev
        elif t is RiskChanged:
            yield "oms.compliance.change", ev
        elif t is DayStarted:
            yield "oms.day.started", ev
        elif t is DayEnded:
            yield "oms.day.ended", ev
        elif t is HaltChanged:
            yield f"oms.day.halts.{token(ev.symbol)}", ev  # type: ignore[union-attr]
        elif t is SplitApplied:
            yield f"oms.day.splits.{token(ev.symbol)}", ev  # type: ignore[union-attr]

    def _touch(self, accounts: list[str], symbol: str) -> None:
        """These accounts' positions in symbol changed: publish them (coalesced)."""
        for account in accounts:
            self.changed.setdefault(account, set()).add(symbol)
        if accounts:
            self._position_changed.set()

    def position(self, account: str, symbol: str) -> Position:
        b = self.positions
        assert b is not None
        a, i = b.accounts[account], b.symbols[symbol]
        mark = int(b.marks[i]) or None
        venues = [msgspec.structs.replace(v) for v in b.venues.get((account, symbol), {}).values()]  # a copy
        return Position(account=account, symbol=symbol, qty=int(b.qty[a, i]), avg_px=b.avg_px(account, symbol),
                        realized=int(b.realized[a, i]), unrealized=int(b.unrealized[a, i]), mark=mark,
                        venues=venues)

    async def _publish_positions(self, nc) -> None:
        """Changed positions, at most once per account per interval: an account's first
        change goes out at once, later ones at the interval's end as the latest state."""
        loop = asyncio.get_running_loop()
        while True:
            await self._position_changed.wait()
            self._position_changed.clear()
            while self.changed:
                now = loop.time()
                due = {a: self.sent_at.get(a, now - self.interval) + self.interval for a in self.changed}
                for account, at in due.items():
                    if at <= now:
                        await self._send_positions(nc, account)
                later = [at for at in due.values() if at > now]
                if later:
                    await asyncio.sleep(min(later) - now)

    async def _send_positions(self, nc, account: str) -> None:
        symbols = self.changed.pop(account)
        self.sent_at[account] = asyncio.get_running_loop().time()
        try:
            for symbol in sorted(symbols):
                pos = self.position(account, symbol)
                await nc.publish(f"oms.positions.{token(account)}", self.encode(pos), headers=self._headers(pos))
        except NatsError:  # not kept: the next attempt sends the latest state
            self.changed.setdefault(account, set()).update(symbols)

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
        while True:
            await self._md_ready.wait()
            self._md_ready.clear()
            with self._md_lock:
                quotes, self._md_latest = list(self._md_latest.values()), {}
            for md in quotes:
                await self._quote(nc, md)

    async def _quote(self, nc, md: MarketData) -> None:
        self.quotes.setdefault(md.symbol, {})[md.venue] = md
        mark = self._mark(md.symbol)
        b = self.positions
        if b is not None and mark and md.symbol in b.symbols:
            i = b.symbols[md.symbol]
            if mark != b.marks[i]:
                b.prices(np.array([i], np.int64), np.array([mark], np.int64))
                self._touch([b.names[a] for a in np.flatnonzero(b.qty[:, i])], md.symbol)  # unrealized moved
        best = self._best(md.symbol)
        try:
            await nc.publish(f"oms.md.{token(md.venue)}.{token(md.symbol)}", self.encode(md),
                             headers=self._headers(md))
            await nc.publish(f"oms.prices.{token(md.symbol)}", self.encode(best), headers=self._headers(best))
        except NatsError:
            pass  # prices are not kept: the next quote replaces this one
