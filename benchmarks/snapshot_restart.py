"""Snapshots: write and load time, and start-up with and without one.

Builds a journal through the engine: N orders over A accounts x I instruments (each
acknowledged, every other one filled, every tenth canceled), ends the day (the snapshot
the runtime takes at every end of day), then one more day of D orders. Then times the
snapshot's write and load, start-up from the snapshot plus the day's journal
(`oms.runtime.rebuild` with snapshots, as `oms run` starts) and a full replay, and checks
both give the same state hash.

Run: .venv/bin/python -m benchmarks.snapshot_restart --orders 1000000 --accounts 50 --instruments 500
     .venv/bin/python -m benchmarks.snapshot_restart --orders 100000 --accounts 1000 --instruments 5000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from oms.config import AccountConfig, Config, FixConfig, InstrumentConfig, JournalConfig, SessionConfig, SimConfig, \
    VenueConfig
from oms.journal import Journal
from oms.model import EVENT_ENCODER, CancelRequest, EndOfDay, ExecType, NewOrder, OrdType, Side, StartOfDay, \
    TimeInForce, VenueExecReport
from oms.runtime import rebuild
from oms.snapshot import Snapshots, directory, read_payload, thaw


def config(accounts: int, instruments: int) -> Config:
    names = [f"A{k}" for k in range(accounts)]
    return Config(
        journal=JournalConfig(fsync=False), default_venue="V1",
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
        size = sum(f.stat().st_size for f in directory(path).glob("*.snapshot"))
    print(f"orders {args.orders:,} + {args.day:,} the next day, {args.accounts:,} accounts x {args.instruments:,} "
          f"instruments; journal {records:,} records, built in {built:.1f} s")
    print(f"snapshot write          {write_s:8.3f} s  ({size / 1e6:,.1f} MB, {header.orders:,} orders)")
    print(f"snapshot load           {read_s + unpickle_s:8.3f} s  (read and check {read_s:.3f} s, unpickle "
          f"{unpickle_s:.3f} s)")
    print(f"start-up, snapshot + the day's {records - header.seq:,} records  {resume_s:8.3f} s")
    print(f"start-up, full replay of {records:,} records       {full_s:8.3f} s")


if __name__ == "__main__":
    main()
