"""Snapshots: write and load time, and start-up with and without one.

Builds a journal through the engine: N orders over A accounts x I instruments (each
acknowledged, every other one filled, every tenth canceled), ends the day (the snapshot
the runtime takes at every end of day), then one more day of D orders. Then times the
snapshot's write and load, start-up from the snapshot plus the day's journal
(`oms.runtime.rebuild` with snapshots, as `oms run` starts) and a full replay, and checks
both give the same state hash. Then archives the journal behind the snapshot (as a later
snapshot does once this one is the oldest kept) while a writer goes on committing small
batches, and gives the archive's time, the longest commit meanwhile against the same
writer alone, the live journal's size before and after, and start-up and full replay
again over the archive.

Run: .venv/bin/python -m benchmarks.snapshot_restart --orders 1000000 --accounts 50 --instruments 500
     .venv/bin/python -m benchmarks.snapshot_restart --orders 100000 --accounts 1000 --instruments 5000
"""
from __future__ import annotations

import argparse
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from oms.config import AccountConfig, Config, FixConfig, InstrumentConfig, JournalConfig, SessionConfig, SimConfig, \
    VenueConfig
from oms.journal import Archived, Journal, archive, segments
from oms.model import EVENT_ENCODER, CancelRequest, EndOfDay, ExecType, NewOrder, OrdType, Side, StartOfDay, \
    TimeInForce, VenueExecReport
from oms.runtime import rebuild
from oms.snapshot import Snapshots, directory, read_payload, thaw


def config(accounts: int, instruments: int) -> Config:
    names = [f"A{k}" for k in range(accounts)]
    return Config(
        journal=JournalConfig(fsync=False, archive=False), default_venue="V1",  # archived below, timed
        venues=[VenueConfig(name="V1", port=1, sim=SimConfig(enabled=False))],
        accounts=[AccountConfig(id=a) for a in names],
        instruments=[InstrumentConfig(symbol=f"S{k}") for k in range(instruments)],
        fix=FixConfig(sessions=[SessionConfig(comp_id="C1", accounts=names)]),
    )


class Writer:
    def __init__(self, cfg: Config, journal: Journal) -> None:
        self.engine = rebuild(cfg, journal)
        self.journal, self.records, self.n = journal, [], 0
        self.accounts, self.instruments = len(cfg.accounts), len(cfg.instruments)

    def run(self, cmd: object) -> list:
        events = self.engine.handle(cmd)  # type: ignore[arg-type]
        self.records += [EVENT_ENCODER.encode(e) for e in events]
        if len(self.records) >= 50_000:
            self.flush()
        return events

    def flush(self) -> None:
        self.journal.append(self.records)
        self.journal.commit()
        self.records = []

    def orders(self, count: int) -> None:
        for _ in range(count):
            k = self.n = self.n + 1
            cl = f"O{k}"
            child = self.run(NewOrder(session="C1", cl_ord_id=cl, account=f"A{k % self.accounts}",
                                      symbol=f"S{k * 7 % self.instruments}", side=Side.BUY if k % 2 else Side.SELL,
                                      ord_type=OrdType.LIMIT, qty=100, price=100_000_000 + k % 100 * 10_000,
                                      tif=TimeInForce.GTC if k % 3 == 0 else TimeInForce.DAY))[-1]
            self.run(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"a{k}", exec_type=ExecType.NEW))
            if k % 2:
                self.run(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{k}",
                                         exec_type=ExecType.TRADE, last_qty=100, last_px=100_000_000))
            elif k % 10 == 0:
                self.run(CancelRequest(session="C1", cl_ord_id=f"{cl}c", orig_cl_ord_id=cl))
        self.flush()


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def live_bytes(path: Path) -> tuple[int, int]:
    """(file size, bytes in pages in use): deleted records' pages stay in the file, free for
    the records that come after."""
    db = sqlite3.connect(path)
    try:
        page, pages, free = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count",
                                                                               "freelist_count"))
    finally:
        db.close()
    return page * pages, page * (pages - free)


def commits_while(journal: Journal, work: Callable[[Callable], None] | None, n: int = 2000) -> float:
    """The longest from one commit of 10 records to the next a writer makes while `work`
    runs (or over n of them). `work` gets `on_writer(fn)`, which runs fn on the writer
    between two commits, as a running OMS's journal thread runs an archive's deletes."""
    chores: queue.SimpleQueue = queue.SimpleQueue()

    def on_writer(fn: Callable[[], None]) -> None:
        done = threading.Event()
        chores.put((fn, done))
        done.wait()

    worker = threading.Thread(target=work, args=(on_writer,)) if work is not None else None
    if worker is not None:
        worker.start()
    longest, k = 0.0, 0
    while (worker.is_alive() if worker is not None else k < n):
        t0 = time.perf_counter()
        while not chores.empty():
            fn, done = chores.get()
            fn()
            done.set()
        journal.append([b"x" * 100] * 10)  # opaque: the replays below stop before them
        journal.commit()
        longest, k = max(longest, time.perf_counter() - t0), k + 1
    return longest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--day", type=int, default=10_000, help="orders of the day after the snapshot")
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--instruments", type=int, default=500)
    args = p.parse_args()
    cfg = config(args.accounts, args.instruments)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.db"
        with Journal(path, fsync=False) as journal:
            w = Writer(cfg, journal)
            t0 = time.perf_counter()
            w.run(StartOfDay(user="", date="2026-01-05"))
            w.orders(args.orders)
            w.engine.risk_cfg.admins.append("ops")
            w.run(EndOfDay(user="ops"))
            w.run(StartOfDay(user="ops", date="2026-01-06"))
            w.flush()
            built = time.perf_counter() - t0
            snaps = Snapshots(journal, cfg)
            snap, write_s = timed(lambda: snaps.take(w.engine))
            w.orders(args.day)
            live = w.engine.state.state_hash()
            records = journal.last_seq
            del w
        (header, payload), read_s = timed(lambda: read_payload(snap))
        _, unpickle_s = timed(lambda: thaw(payload))
        del payload
        with Journal(path) as journal:
            resumed, resume_s = timed(lambda: rebuild(cfg, journal, snapshots=True))
            assert resumed.base_seq == header.seq and resumed.state.state_hash() == live
            del resumed
            full, full_s = timed(lambda: rebuild(cfg, journal))
            assert full.state.state_hash() == live
            before = live_bytes(path)
            done: list[Archived | None] = []
            t0 = time.perf_counter()
            during = commits_while(journal, lambda on_writer: done.append(archive(
                path, header.seq, drop=lambda upto: on_writer(lambda: journal.drop_through(upto)))))
            archive_s = time.perf_counter() - t0
            alone = commits_while(journal, None)
            after = live_bytes(path)
            (moved,) = done
            assert moved is not None
            (segment,) = segments(path)[:-1]
            segment_mb = segment.stat().st_size / 1e6
            again, again_s = timed(lambda: rebuild(cfg, journal, snapshots=True, until=records))
            assert again.state.state_hash() == live
            del again
            whole, whole_s = timed(lambda: rebuild(cfg, journal, until=records))
            assert whole.state.state_hash() == live
            del whole
        size = sum(f.stat().st_size for f in directory(path).glob("*.snapshot"))
    print(f"orders {args.orders:,} + {args.day:,} the next day, {args.accounts:,} accounts x {args.instruments:,} "
          f"instruments; journal {records:,} records, built in {built:.1f} s")
    print(f"snapshot write          {write_s:8.3f} s  ({size / 1e6:,.1f} MB, {header.orders:,} orders)")
    print(f"snapshot load           {read_s + unpickle_s:8.3f} s  (read and check {read_s:.3f} s, unpickle "
          f"{unpickle_s:.3f} s)")
    print(f"start-up, snapshot + the day's {records - header.seq:,} records  {resume_s:8.3f} s")
    print(f"start-up, full replay of {records:,} records       {full_s:8.3f} s")
    print(f"archive of the {moved.records:,} records before the snapshot  {archive_s:8.3f} s  (segment write "
          f"{moved.write_s:.3f} s, {segment_mb:,.1f} MB; delete {moved.delete_s:.3f} s, "
          f"longest delete transaction {moved.longest_lock_s * 1e3:.1f} ms)")
    print(f"longest from one commit of 10 records to the next while archiving {during * 1e3:.1f} ms, with no archiving "
          f"{alone * 1e3:.1f} ms")
    print(f"live journal            {before[0] / 1e6:,.1f} MB file, {before[1] / 1e6:,.1f} MB in use before; "
          f"{after[0] / 1e6:,.1f} MB file, {after[1] / 1e6:,.1f} MB in use after")
    print(f"after archiving: start-up, snapshot + the day  {again_s:8.3f} s; full replay over archive and live "
          f"{whole_s:8.3f} s")


if __name__ == "__main__":
    main()
