"""`oms report` over a large journal: how long the blotter export and all reports take, and
the memory they use.

The journal is made by the engine itself (no limits configured), so its events are those
a real day writes: a synthetic day of N orders over 20 accounts, 20 symbols and 3
venues, 25 ms apart from 08:00 UTC; before each order one venue requotes the order's
symbol by a random tick (a BestPrice event when the consolidated best bid or offer moves);
each order is acknowledged by its venue after 0.2-0.9 ms and filled in one or two fills
within 2 s, or (one in five) partly filled and then canceled by the venue. Events are
appended in groups of 10,000 without fsync.

Run:  .venv/bin/python -m benchmarks.report_bench --orders 1000000 [--journal PATH] [--keep]
Each `oms report` runs in a process of its own; its CPU time and peak resident memory
are read from the kernel (the child's rusage). First without the report extract (every
record scanned), then the extract made whole as a running OMS keeps it (timed: its cost),
then the reports read through it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oms.config import AccountConfig, Config, FixConfig, InstrumentConfig, SessionConfig, SimConfig, VenueConfig
from oms.engine import Engine, SequentialIds
from oms.journal import Journal
from oms.model import EVENT_ENCODER, ExecType, MarketData, NewOrder, OrdType, Side, VenueExecReport
from oms.reporting import extract

DAY = "2026-11-30"
START = int(dt.datetime(2026, 11, 30, 8, tzinfo=dt.timezone.utc).timestamp()) * 10**9
VENUES = ("XV", "YV", "ZV")
SYMBOLS = [f"S{k:02d}" for k in range(20)]
ACCOUNTS = [f"A{k:02d}" for k in range(20)]


def config_toml() -> str:
    lines = ['default_venue = "XV"', "[fix]", "[[fix.sessions]]", 'comp_id = "DESK"',
             f"accounts = {ACCOUNTS!r}".replace("'", '"')]
    for v in VENUES:
        lines += ["[[venues]]", f'name = "{v}"', "[venues.sim]", "enabled = false"]
    for s in SYMBOLS:
        lines += ["[[instruments]]", f'symbol = "{s}"']
    for a in ACCOUNTS:
        lines += ["[[accounts]]", f'id = "{a}"']
    return "\n".join(lines) + "\n"


def config() -> Config:
    return Config(default_venue="XV", fix=FixConfig(sessions=[SessionConfig(comp_id="DESK", accounts=ACCOUNTS)]),
                  venues=[VenueConfig(name=v, sim=SimConfig(enabled=False)) for v in VENUES],
                  instruments=[InstrumentConfig(symbol=s) for s in SYMBOLS],
                  accounts=[AccountConfig(id=a) for a in ACCOUNTS])


def generate(path: Path, orders: int, seed: int = 1) -> int:
    """A journal of `orders` orders and their fills; the number of events."""
    rng = random.Random(seed)
    now = [START]
    engine = Engine(config().reference_data(), clock=lambda: now[0], ids=SequentialIds("1-"))
    engine.bind_history(lambda: ())  # no undo log: nothing here fails
    mids = {s: 100_000_000 + 1_000_000 * k for k, s in enumerate(SYMBOLS)}
    tick = 10_000
    pending: list[bytes] = []
    n_events = 0
    with Journal(path, fsync=False) as journal:
        def run(cmd) -> list:
            nonlocal n_events
            events = engine.handle(cmd)
            pending.extend(EVENT_ENCODER.encode(ev) for ev in events)
            n_events += len(events)
            return events

        for i in range(orders):
            now[0] = START + i * 25_000_000
            sym, venue = SYMBOLS[rng.randrange(20)], VENUES[i % 3]
            mids[sym] += tick * rng.choice((-1, 0, 1))
            m = mids[sym]
            spread = tick * (1 + i % 3)
            run(MarketData(symbol=sym, venue=venue, bid=m - spread, ask=m + spread, bid_size=500, ask_size=500))
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            qty = 100 * rng.randint(1, 10)
            sent = run(NewOrder(session="DESK", cl_ord_id=f"C{i}", account=ACCOUNTS[rng.randrange(20)], symbol=sym,
                                side=side, ord_type=OrdType.LIMIT, qty=qty,
                                price=m + (3 if side is Side.BUY else -3) * tick, ex_destination=venue))[-1]
            cl = sent.cl_ord_id
            now[0] += rng.randint(200_000, 900_000)
            run(VenueExecReport(venue=venue, cl_ord_id=cl, exec_id=f"{venue}{i}a", exec_type=ExecType.NEW))
            px = m + (1 if side is Side.BUY else -1) * tick * rng.randint(0, 2)
            parts = [qty] if rng.random() < 0.5 else [qty // 2, qty - qty // 2]
            canceled = rng.random() < 0.2
            if canceled:
                parts = [qty // 2]
            for k, part in enumerate(parts):
                now[0] += rng.randint(1_000_000, 1_000_000_000)
                run(VenueExecReport(venue=venue, cl_ord_id=cl, exec_id=f"{venue}{i}f{k}", exec_type=ExecType.TRADE,
                                    last_qty=part, last_px=px))
            if canceled:
                run(VenueExecReport(venue=venue, cl_ord_id=cl, exec_id=f"{venue}{i}c", exec_type=ExecType.CANCELED))
            if len(pending) >= 10_000:
                journal.append(pending)
                journal.commit()
                pending.clear()
        journal.append(pending)
        journal.commit()
    return n_events


def timed(args: list[str]) -> tuple[float, float, int]:
    """(seconds, CPU seconds, peak RSS in MiB) of one process (`python -m ARGS`): on a shared
    machine its CPU time says what it cost better than the wall clock."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    if status:
        raise SystemExit(proc.stderr.read().decode() if proc.stderr else status)
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--journal", type=Path, help="reuse (or make) the journal here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="oms-report-bench-"))
    journal = a.journal or tmp / "journal.db"
    if not journal.exists():
        t0 = time.perf_counter()
        n = generate(journal, a.orders)
        print(f"journal: {a.orders:,} orders, {n:,} events, {journal.stat().st_size / 2**20:,.0f} MiB, "
              f"made in {time.perf_counter() - t0:.1f} s")
    cfg = tmp / "config.toml"
    cfg.write_text(config_toml())
    report = ["oms.cli", "report", "--config", str(cfg), "--journal", str(journal), "--date", DAY, "--out",
              str(tmp / "out")]
    shutil.rmtree(extract.directory(journal), ignore_errors=True)
    for what, args in (
            ("blotter (orders + executions), CSV, every record scanned (--no-extract)",
             [*report, "--report", "blotter", "--no-extract"]),
            ("the report extract made whole (what a running OMS's keeper does as the day goes)",
             ["oms.cli", "extract", str(journal)]),
            ("blotter (orders + executions), CSV", [*report, "--report", "blotter"]),
            ("all reports, CSV", report),
            ("all reports, Parquet, with the charts (PNG)", [*report, "--format", "parquet", "--charts", "png"])):
        took, cpu, mib = timed(args)
        print(f"{what}: {took:.1f} s ({cpu:.1f} s of CPU), peak RSS {mib:,} MiB", flush=True)
    size = sum(f.stat().st_size for f in extract.directory(journal).iterdir())
    print(f"report extract: {size / 2**20:,.0f} MiB ({size / journal.stat().st_size:.0%} of the journal)")
    if not a.keep and a.journal is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
