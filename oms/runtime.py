"""The engine's thread: commands in from gateways, group commit, replies after durability.

Gateways call `submit` from any thread; one thread takes everything queued, runs it
through the engine, appends the events to the journal and commits once (group
commit), and only then hands each command's events to its reply callback, to the
listeners (gateways) and to the followers (the stream publisher, which gets the journal
records with the sequence of the first, so it needs no read of the journal while it keeps
up).
A trader is never acknowledged before the event is durable.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from oms.config import Config
from oms.engine import Engine, SequentialIds
from oms.journal import Journal
from oms.metrics import Metrics
from oms.model import EVENT_DECODER, EVENT_ENCODER, Command, Event, Timer
from oms.snapshot import Snapshots, no_gc
from oms.state import OmsState

log = logging.getLogger("oms.runtime")

T = TypeVar("T")
Reply = Callable[[list[Event]], None]
Follower = Callable[[int, list[bytes]], None]  # (journal sequence of the first record, records)
_STOP = object()
IN_MARK = "in."  # journal meta: in.<source> = MsgSeqNum of the source's last durable message


class _Query:
    """A read of the engine's state, run on the engine's thread after the commit of what
    was submitted before it (`durable`), or as soon as the batch is handled (a live view
    that may run a commit ahead of the disk, never behind it)."""

    def __init__(self, fn: Callable[[Engine], Any], durable: bool = True) -> None:
        self.fn = fn
        self.durable = durable
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, engine: Engine) -> None:
        try:
            self.result = self.fn(engine)
        except Exception as exc:  # the caller's to handle: never the engine's
            self.error = exc
        self.done.set()


class ReplayError(Exception):
    """A journaled event the state cannot take: start-up stops here, naming it, so an
    operator can inspect the journal up to it (`oms replay JOURNAL --until SEQ`)."""

    def __init__(self, seq: int, payload: bytes, cause: BaseException) -> None:
        shown = payload[:400].decode("utf-8", "replace")
        super().__init__(f"journal record {seq} cannot be applied ({cause!r}): {shown}")
        self.seq = seq


def replay(journal: Journal, state: OmsState | None = None, until: int = 0, start: int = 1) -> OmsState:
    """Rebuild the state by applying every journaled event from seq `start` (up to `until`), in order."""
    state = state if state is not None else OmsState()
    decode, apply = EVENT_DECODER.decode, state.apply
    with no_gc():
        for seq, payload in journal.replay(start):
            if until and seq > until:
                break
            try:
                apply(decode(payload))
            except Exception as exc:
                raise ReplayError(seq, payload, exc) from exc
    return state


def rebuild(cfg: Config, journal: Journal, ids: Callable[[], str] | None = None, until: int = 0,
            clock: Callable[[], int] = time.time_ns, snapshots: bool = False) -> Engine:
    """An engine holding the state the journal gives (up to record `until`), its compliance
    state included: replayed through the engine's state, whose observers rebuild it. With
    `snapshots`, from the latest usable snapshot and the records after it."""
    snapshot = Snapshots(journal, cfg).find(until) if snapshots else None
    engine = Engine(cfg.reference_data(), clock=clock, ids=ids or SequentialIds(), risk=cfg.risk, snapshot=snapshot)
    replay(journal, engine.state, until, engine.base_seq + 1)
    return engine


def open_engine(cfg: Config, base: Path, clock: Callable[[], int] = time.time_ns) -> tuple[Engine, Journal]:
    """Open the journal, replay it, and give back an engine holding the rebuilt state."""
    path = cfg.journal_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(path, fsync=cfg.journal.fsync)
    started = time.perf_counter()
    starts = int(journal.get_meta("starts") or 0) + 1
    # ids carry the start count, so ids stay unique across restarts of one journal
    try:
        engine = rebuild(cfg, journal, SequentialIds(f"{starts}-"), clock=clock, snapshots=True)
    except ReplayError:
        journal.close()
        raise
    state = engine.state
    journal.set_meta("starts", str(starts))
    journal.commit()
    log.info(
        "journal %s: %s, replayed %d records, %d orders in %.3f s; state hash %s", path,
        f"from the snapshot at record {engine.base_seq}" if engine.base_seq else "no snapshot",
        journal.last_seq - engine.base_seq, len(state.orders), time.perf_counter() - started, state.state_hash(),
    )
    return engine, journal


class Runtime:
    def __init__(
        self,
        engine: Engine,
        journal: Journal,
        cfg: Config,
        metrics: Metrics | None = None,
        listeners: Iterable[Callable[[list[Event]], None]] = (),
        timer_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.metrics = metrics or Metrics()
        self.listeners = list(listeners)
        self.followers: list[Follower] = []
        self._per_command = cfg.journal.commit == "event"
        self._window = cfg.journal.window_us / 1e6
        self._max_batch = cfg.journal.max_batch
        self._timer_interval = timer_interval
        self._next_timer = time.monotonic() + timer_interval
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="oms-engine", daemon=True)
        self.failed: BaseException | None = None
        self._uncommitted: list[tuple[Reply | None, list[Event]]] = []  # handled, not yet in the journal
        self._marks: dict[str, int] = {}  # source -> MsgSeqNum of its last command handled, not yet committed
        # pipelined durability: batches are made durable, in order, on a thread of their own
        # while the engine handles the next; at most two wait for it
        self._durable_q: queue.SimpleQueue = queue.SimpleQueue()
        self._in_flight = threading.BoundedSemaphore(2)
        self._writer = threading.Thread(target=self._write_loop, name="oms-journal", daemon=True)
        engine.bind_history(self._history)
        self.snapshots = Snapshots(journal, cfg, self.on_journal_thread)  # one at every end of day
        self.listeners.append(self.snapshots.at_end_of_day(self.request))

    def _history(self) -> Iterator[Event]:
        """Every event applied so far, in order: the journal's, then the batch's not yet
        committed. What the engine rebuilds from when it undoes a failed command."""
        self._flush()
        decode = EVENT_DECODER.decode
        for _seq, payload in self.journal.replay(self.engine.base_seq + 1):  # after the snapshot it started from
            yield decode(payload)
        for _reply, events in self._uncommitted:
            yield from events

    def submit(self, cmd: Command, reply: Reply | None = None, origin: tuple[str, int] | None = None) -> None:
        """Queue a command. `origin` (source, MsgSeqNum) names the FIX message it came from:
        the journal keeps the last one made durable per source, so a restarted session
        expects the message after it and the counterparty resends the rest."""
        self._q.put((cmd, reply, origin))

    def start(self) -> None:
        self._writer.start()
        self._thread.start()

    def query(self, fn: Callable[[Engine], T], timeout: float = 5.0, durable: bool = True) -> T:
        """fn(engine), run by the engine's thread between commits: a consistent read of
        durable state that never races the single writer. fn must not change anything.
        `durable=False`: do not wait for the journal (a live view polled many times a second)."""
        q = _Query(fn, durable)
        self._q.put((q, None, None))
        if not q.done.wait(timeout):
            raise TimeoutError(f"the engine did not answer within {timeout:g} s")
        if q.error is not None:
            raise q.error
        return q.result

    def request(self, fn: Callable[[Engine], Any]) -> None:
        """fn(engine) on the engine's thread once what is queued before it is durable, not
        waited for (a snapshot)."""
        self._q.put((_Query(fn), None, None))

    def barrier(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted before is handled and committed."""
        done = threading.Event()
        self.submit(Timer(), lambda _events: done.set())
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ loop
    def _take(self) -> list | None:
        """Block for the first command, then take what is queued (and what arrives within the
        window). A Timer every `timer_interval`, busy or idle: timeouts and expiries must not
        wait for a quiet moment."""
        now = time.monotonic()
        try:
            first = self._q.get(timeout=max(0.0, self._next_timer - now))
        except queue.Empty:
            first = None
        if first is _STOP:
            return None
        batch = [] if first is None else [first]
        if time.monotonic() >= self._next_timer:
            self._next_timer = time.monotonic() + self._timer_interval
            batch.append((Timer(), None, None))
            if first is None:
                return batch
        deadline = time.perf_counter() + self._window
        while len(batch) < self._max_batch:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = self._q.get(timeout=left)
                except queue.Empty:
                    break
            if item is _STOP:
                self._q.put(_STOP)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        try:
            while self.failed is None and (batch := self._take()) is not None:
                self._process(batch)
        except BaseException as exc:
            self.failed = exc
            log.critical("engine stopped: %s", exc, exc_info=True)
        finally:
            self._durable_q.put(_STOP)
            self._writer.join()
            if self.failed is None:
                self._late_requests()
            self.snapshots.wait()
            self.journal.close()

    def _late_requests(self) -> None:
        """At a clean stop, what the last commits requested and the stop overtook in the queue
        (a DayEnded's snapshot): run now, while the journal is open and holds all they must see."""
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and type(item[0]) is _Query:
                item[0].run(self.engine)

    def on_journal_thread(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the journal thread between two commits, and wait for it: the journal
        has one writer. Once that thread has ended (a stop), here, at once: an archiving under
        way finishes its deletes at their own pace rather than half a second each."""
        chore = _Chore(fn)
        if not self._writer.is_alive():
            chore.run()
        else:
            self._durable_q.put(chore)
        while not chore.done.wait(0.5):
            if not self._writer.is_alive():
                chore.run()
        if chore.error is not None:
            raise chore.error

    def _flush(self) -> None:
        """Wait until every batch handed to the journal thread is durable (or it failed)."""
        done = threading.Event()
        self._durable_q.put(done)
        while not done.wait(0.5):
            if not self._writer.is_alive():
                return

    def _process(self, batch: list) -> None:
        handle, encode, m = self.engine.handle, EVENT_ENCODER.encode, self.metrics
        records: list[bytes] = []
        done: list[tuple[Reply | None, list[Event]]] = []
        self._uncommitted = done
        queries = []
        marks = self._marks
        for cmd, reply, origin in batch:
            if type(cmd) is _Query:
                queries.append(cmd)
                continue
            if origin is not None:
                marks[origin[0]] = origin[1]
            t0 = time.perf_counter()
            events = handle(cmd)
            m.count(cmd, events, time.perf_counter() - t0)
            records.extend(encode(ev) for ev in events)
            done.append((reply, events))
            if self._per_command:
                self._commit(records, done, 1)
                records, done = [], []
                self._uncommitted = done
        if done:
            self._commit(records, done, len(batch))
        self._uncommitted = []
        if queries:
            if any(q.durable for q in queries):
                self._flush()  # what it reads is durable
            for q in queries:
                q.run(self.engine)

    def _commit(self, records: list[bytes], done: list[tuple[Reply | None, list[Event]]], n: int) -> None:
        """Hand the batch to the journal thread and go on with the next: the marks travel with
        the records that make them true."""
        marks = {}
        if records:
            marks, self._marks = self._marks, {}
        self.metrics.batch_size.observe(n)
        self.metrics.orders.set(len(self.engine.state.orders))
        while not self._in_flight.acquire(timeout=0.5):
            if self.failed is not None:
                raise RuntimeError("the journal thread has failed") from self.failed
        self._durable_q.put((records, marks, done))

    def _write_loop(self) -> None:
        """The journal thread: append, commit (fsync), and only then release the batch's
        events to the traders, the venues and the streams, in batch order."""
        while (item := self._durable_q.get()) is not _STOP:
            if type(item) is threading.Event:
                item.set()
                continue
            if type(item) is _Chore:
                item.run()
                continue
            try:
                self._durable(*item)
            except BaseException as exc:  # a journal failure: stop taking orders, loudly
                self.failed = exc
                log.critical("journal failed, engine stopped: %s", exc, exc_info=True)
                self._q.put(_STOP)
                return
            finally:
                self._in_flight.release()

    def _durable(self, records: list[bytes], marks: dict[str, int],
                 done: list[tuple[Reply | None, list[Event]]]) -> None:
        t0 = time.perf_counter()
        if records:
            self.journal.append(records)
            for source, seq in marks.items():  # in the same transaction as the events
                self.journal.set_meta(IN_MARK + source, str(seq))
            self.journal.commit()
        m = self.metrics
        m.commit_latency.observe(time.perf_counter() - t0)
        m.journal_records.set(self.journal.last_seq)
        for reply, events in done:  # durable from here on: acknowledge
            if reply is not None:
                _safely(reply, events)
        if self.listeners:
            flat = [ev for _, events in done for ev in events]
            for listener in self.listeners:
                _safely(listener, flat)
        if records:
            first = self.journal.last_seq - len(records) + 1
            for follower in self.followers:
                _safely(follower, first, records)


class _Chore:
    """Work handed to the journal thread (an archive's delete); run once, by whichever of
    that thread or the waiter gets to it first."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._claimed = threading.Lock()

    def run(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return
        try:
            self.fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


def _safely(fn: Callable[..., None], *args: object) -> None:
    """A failing gateway callback is logged; it never stops the engine."""
    try:
        fn(*args)
    except Exception:
        log.exception("callback %r failed", fn)
