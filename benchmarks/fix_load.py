"""FIX load generator: order round trip and sustained throughput through the OMS on its
embedded default, side by side with a bare quickfix echo acceptor in Python.

Run: .venv/bin/python -m benchmarks.fix_load [--orders 2000] [--window 20] [--consoles 5 [--rounds 6]]

Round trip: NewOrderSingle sent -> terminal ExecutionReport received, one order at a
time (p50, p99). Throughput: `window` orders outstanding, orders per second until all
are terminal. The OMS leg is trader -> OMS (compliance, journal with fsync, router) ->
simulated venue -> OMS -> trader: market orders of 100 shares that fill. The echo leg
answers every NewOrderSingle with one Filled ExecutionReport. The load generator runs in
a process of its own for both, as a trader's FIX engine would, and the simulated venues
run in another (as `oms sim-venue` runs them; their quotes reach the OMS over FIX). The
OMS runs by role as `oms run` does: this process is the engine process (engine, journal,
compliance, metrics), the FIX gateway, the NATS publisher and nats-server run in
processes of their own; --single-process keeps the FIX gateway in this one, as
`oms run --single-process` does.

With --consoles N (and --rounds R) the OMS runs once with its API on and one trader
session logged on, and the windowed run alternates between phases with no console and
with N console clients following the live feed (server-sent events, in a process of their
own as browsers would be), A B B A ...; the throughputs are compared.

For a load run the default's message throttles, duplicate check, repeated-execution
throttle and daily credit are switched off (a load test trips them by design); every
other pre-trade limit and post-trade rule stays on.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import quickfix as fix

from gateways.fix_door import FixDoor
from gateways.fix_session import Endpoint, FixSession, execution_report, fields, raw_message, send, utc_timestamp, \
    write_settings
from oms.config import DEFAULT_CONFIG, Config, FixConfig, load
from oms.journal import Journal
from oms.metrics import Metrics
from oms.model import ExecType, OrdStatus
from oms.system import System
from tests.fix_client import free_port

TERMINAL = {"2", "4", "8", "C", "3"}


class Echo(fix.Application):
    """The baseline: every NewOrderSingle is answered at once with a Filled ExecutionReport."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def onCreate(self, sid): pass
    def onLogon(self, sid): pass
    def onLogout(self, sid): pass
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        f = fields(msg)
        if f.get(35) != "D":
            return
        self.n += 1
        qty = int(f.get(38) or "0")
        send(execution_report(
            sid.getBeginString().getValue(), order_id=f"E{self.n}", exec_id=f"X{self.n}", exec_type=ExecType.TRADE,
            ord_status=OrdStatus.FILLED, cl_ord_id=f.get(11, ""), symbol=f.get(55, ""), side=f.get(54, "1"),
            order_qty=qty, cum_qty=qty, leaves_qty=0, avg_px=Decimal(100), last_qty=qty, last_px=100_000_000), sid)


class Trader(fix.Application):
    """Sends orders and times them to their terminal ExecutionReport."""

    def __init__(self) -> None:
        super().__init__()
        self.logged_on = threading.Event()
        self.sent: dict[str, int] = {}
        self.rtt: list[int] = []
        self.statuses: dict[str, int] = {}
        self.cv = threading.Condition()
        self.done = 0
        self.sid: fix.SessionID | None = None
        self.last_reject = ""
        self.received = 0

    def onCreate(self, sid): pass
    def onLogon(self, sid): self.sid = sid; self.logged_on.set()
    def onLogout(self, sid): self.logged_on.clear()
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        self.received += 1
        f = fields(msg)
        if f.get(35) != "8":
            return
        status = f.get(39, "")
        if status not in TERMINAL:
            return
        if status == "8":
            self.last_reject = f.get(58, "")
        t0 = self.sent.pop(f.get(11, ""), None)
        if t0 is None:
            return
        now = time.perf_counter_ns()
        with self.cv:
            self.rtt.append(now - t0)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.done += 1
            self.cv.notify_all()

    def order(self, n: int, begin_string: str) -> None:
        cl = f"L{n}"
        body = [(11, cl), (21, "1")] if begin_string == "FIX.4.2" else [(11, cl)]
        body += [(1, "DEMO2"), (55, "AAPL"), (54, "1" if n % 2 else "2"),  # alternate sides: the position stays flat
                 (60, utc_timestamp()), (38, str(100 + n % 7)), (40, "1"), (59, "3")]
        m = raw_message(begin_string, "D", body)
        self.sent[cl] = time.perf_counter_ns()
        send(m, self.sid)

    def run(self, orders: int, window: int, begin_string: str, start: int) -> float:
        """Send `orders` keeping at most `window` outstanding; seconds until all are terminal."""
        with self.cv:
            self.done = 0
        t0 = time.perf_counter()
        for k in range(orders):
            with self.cv:
                while k - self.done >= window:
                    self.cv.wait(5)
            self.order(start + k, begin_string)
        with self.cv:
            while self.done < orders:
                if not self.cv.wait(30):
                    raise TimeoutError(f"{orders - self.done} orders never finished")
        return time.perf_counter() - t0


@contextlib.contextmanager
def logged_on(port: int, target: str, sender: str, begin_string: str, tmp: Path, orders: int,
              window: int) -> Iterator[Trader]:
    """A trader session logged on and warmed up (min(200, orders) orders, `window` outstanding)."""
    app = Trader()
    settings = write_settings(tmp / f"load-{sender}-{port}.cfg", "initiator", "127.0.0.1", port,
                              [FixSession(begin_string, sender, target)], dictionary=False)
    ep = Endpoint(app, settings, "initiator")
    ep.start()
    try:
        assert app.logged_on.wait(20), "no logon"
        app.run(min(200, orders), window, begin_string, 0)
        yield app
    finally:
        ep.stop()


def measure(port: int, target: str, sender: str, begin_string: str, tmp: Path, orders: int, window: int) -> dict:
    with logged_on(port, target, sender, begin_string, tmp, orders, 1) as app:
        app.rtt.clear()
        received = app.received
        app.run(orders, 1, begin_string, 10**6)
        per_order = (app.received - received) / orders
        rtt = sorted(app.rtt)
        seconds = app.run(orders, window, begin_string, 2 * 10**6)
        return {"p50_us": rtt[len(rtt) // 2] / 1e3, "p99_us": rtt[int(len(rtt) * 0.99)] / 1e3,
                "mean_us": statistics.fmean(rtt) / 1e3, "orders_per_s": orders / seconds, "statuses": app.statuses,
                "last_reject": app.last_reject, "reports_per_order": per_order}


def measured_apart(port: int, target: str, sender: str, begin_string: str, tmp: Path, orders: int,
                   window: int) -> dict:
    """`measure` in a process of its own: a trader is not in the process it trades with."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(measure, (port, target, sender, begin_string, tmp, orders, window))


def run_echo(tmp: Path, orders: int, window: int, door: bool = False) -> dict:
    """The echo acceptor, alone or behind the trader port's front door (gateways.fix_door)."""
    port = free_port()
    session = FixSession("FIX.4.4", "ECHO", "LOAD")
    settings = write_settings(tmp / "echo.cfg", "acceptor", "127.0.0.1", port, [session], dictionary=False)
    front = FixDoor(FixConfig(port=port, comp_id="ECHO"), {("FIX.4.4", "LOAD"): session.session_id()},
                    Metrics()) if door else None
    ep = Endpoint(Echo(), settings, "acceptor", listen=front.inner_listener() if front else None)
    ep.start()
    if front:
        front.start()
    try:
        return measured_apart(port, "ECHO", "LOAD", "FIX.4.4", tmp, orders, window)
    finally:
        ep.stop()
        if front:
            front.stop()


def follow_consoles(port: int, token: str, n: int, stop, updates) -> None:
    """n console clients following the feed, as browsers would; updates counts what they got."""

    def follow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/v1/console/stream", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        while not stop.is_set() and (line := resp.fp.readline()):
            if line.startswith(b"event: "):
                with updates.get_lock():
                    updates.value += 1

    for _ in range(n):
        threading.Thread(target=follow, daemon=True).start()
    stop.wait()


def load_config(cfg: Config, fsync: bool) -> Config:
    """`cfg` for a load run: the load-tripping controls off, every port a free one."""
    cfg = msgspec.structs.replace(cfg, journal=msgspec.structs.replace(cfg.journal, fsync=fsync))
    risk = msgspec.structs.replace(
        cfg.risk, throttle_new_per_s=0, throttle_modify_per_s=0, duplicate_window_ms=0, repeated_execution_max=0,
        limits=[r for r in cfg.risk.limits if r.control != "credit"])
    return msgspec.structs.replace(
        cfg, risk=risk, fix=msgspec.structs.replace(cfg.fix, port=free_port()),
        metrics=msgspec.structs.replace(cfg.metrics, port=free_port()),
        nats=msgspec.structs.replace(cfg.nats, port=free_port()),
        api=msgspec.structs.replace(cfg.api, port=free_port()),
        venues=[msgspec.structs.replace(v, port=free_port()) for v in cfg.venues])


@contextlib.contextmanager
def oms_running(tmp: Path, fsync: bool = True, streams: bool = True, api: bool = False,
                processes: bool = True) -> Iterator[tuple[Config, System]]:
    """The OMS on the embedded default (load config), its simulated venues in a process of
    their own, quoted and ready for orders."""
    cfg = load_config(load(DEFAULT_CONFIG), fsync)
    cfg = msgspec.structs.replace(cfg, api=msgspec.structs.replace(cfg.api, enabled=api))
    ctx = multiprocessing.get_context("spawn")
    stop_venues = ctx.Event()
    venues = ctx.Process(target=run_venues, args=(cfg, tmp, stop_venues), name="venues")
    venues.start()
    system = System(cfg, tmp, venues=False, streams=streams, processes=processes)
    system.start()
    gc.freeze()  # as oms run does after start-up
    try:
        if system.venue_links is not None:  # processes: the gateway process waited for them
            late = system.venue_links.wait_for_quotes([v.name for v in cfg.venues], 30)
            assert not late, f"no quotes from {late}"
        yield cfg, system
    finally:
        system.stop()
        stop_venues.set()
        venues.join(10)


def run_oms(tmp: Path, orders: int, window: int, fsync: bool = True, streams: bool = True,
            processes: bool = True) -> dict:
    with oms_running(tmp, fsync, streams, processes=processes) as (cfg, system):
        sample = system.metrics.registry.get_sample_value
        engine_thread = Path(f"/proc/self/task/{system.runtime._thread.native_id}/stat")
        cpu, commands = cpu_seconds(engine_thread), sample("oms_engine_latency_seconds_count")
        result = measured_apart(cfg.fix.port, "OMS", "CLIENT2", "FIX.4.4", tmp, orders, window)
        commands = sample("oms_engine_latency_seconds_count") - commands
        return {**result,
                "engine_us": sample("oms_engine_latency_seconds_sum") / sample("oms_engine_latency_seconds_count")
                * 1e6,
                "engine_cpu_us": (cpu_seconds(engine_thread) - cpu) / commands * 1e6}


def trade_on_request(port: int, target: str, sender: str, begin_string: str, tmp: Path, orders: int, window: int,
                     go, done) -> None:
    """A trader logged on once that runs `orders` with `window` outstanding each time `go`
    asks (None: log out) and puts the orders/s on `done`."""
    with logged_on(port, target, sender, begin_string, tmp, orders, window) as app:
        n = 0
        while go.get() is not None:
            n += 1
            done.put(orders / app.run(orders, window, begin_string, n * 10**6))


def compare_consoles(tmp: Path, orders: int, window: int, consoles: int, rounds: int, fsync: bool = True,
                     streams: bool = True, processes: bool = True) -> dict[str, list[float]]:
    """Throughput with `consoles` live console clients against none, in one OMS (API on in
    both) and one trader session: phases alternated A B B A ..., so the machine's drift
    and the OMS's start-up fall on both sides alike. Orders/s per phase."""
    ctx = multiprocessing.get_context("spawn")
    phases: dict[str, list[float]] = {"none": [], "consoles": []}
    with oms_running(tmp, fsync, streams, api=True, processes=processes) as (cfg, _system):
        go, done = ctx.Queue(), ctx.Queue()
        trader = ctx.Process(target=trade_on_request, args=(cfg.fix.port, "OMS", "CLIENT2", "FIX.4.4", tmp, orders,
                                                             window, go, done), name="trader")
        trader.start()
        try:
            for r in range(rounds):
                for phase in ("none", "consoles") if r % 2 == 0 else ("consoles", "none"):
                    stop, updates = ctx.Event(), ctx.Value("q", 0)
                    followers = None
                    if phase == "consoles":
                        followers = ctx.Process(target=follow_consoles, args=(
                            cfg.api.port, cfg.api.users[0].token, consoles, stop, updates), name="consoles")
                        followers.start()
                        deadline = time.monotonic() + 30
                        while updates.value < consoles:  # each has its first snapshot: live
                            assert time.monotonic() < deadline, "the consoles never got their snapshots"
                            time.sleep(0.05)
                    go.put(phase)
                    phases[phase].append(done.get(timeout=600))
                    if followers is not None:
                        stop.set()
                        followers.join(10)
        finally:
            go.put(None)
            trader.join(30)
    return phases


def cpu_seconds(stat: Path) -> float:
    """utime + stime of a process (/proc/<pid>/stat) or a thread (/proc/<pid>/task/<tid>/stat)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_venues(cfg, run_dir: Path, stop) -> None:
    """The simulated venues in a process of their own, as `oms sim-venue` runs them."""
    from gateways.venue_sim import start_venues

    sims = start_venues(cfg, run_dir)
    stop.wait()
    for sim in sims:
        sim.stop()


def commit_floor(tmp: Path, n: int = 300) -> float:
    """Median µs of one fsync'd journal commit of an order's acceptance (three events) on
    this disk. A round trip holds two of them (the acceptance, the fill), one after the other."""
    times = []
    with Journal(tmp / "floor.db") as j:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            j.append([b"x" * 300] * 3)
            j.commit()
            times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--no-fsync", action="store_true", help="journal without fsync, to show what durability costs")
    p.add_argument("--no-nats", action="store_true", help="without the NATS streams")
    p.add_argument("--single-process", action="store_true", help="the FIX gateway in the engine's process, as "
                                                                 "oms run --single-process runs it")
    p.add_argument("--consoles", type=int, default=0, help="instead: throughput with this many live console "
                                                          "clients against none, alternated in one OMS run")
    p.add_argument("--rounds", type=int, default=6, help="with --consoles: rounds of the two phases")
    p.add_argument("--door", action="store_true", help="only the echo's round trip, alone and behind the trader "
                                                       "port's front door")
    a = p.parse_args()
    if a.door:  # alternated, three rounds each: a shared machine's load drifts
        p50s: dict[str, list[float]] = {"echo": [], "door": []}
        with tempfile.TemporaryDirectory() as d:
            for _ in range(3):
                for name in p50s:
                    p50s[name].append(round(run_echo(Path(d), a.orders, a.window, name == "door")["p50_us"]))
        echo, door = (statistics.median(p50s[name]) for name in p50s)
        print(f"p50 round trip, median of three runs: echo {echo:.0f} us {p50s['echo']}, behind the door "
              f"{door:.0f} us {p50s['door']}: the hop adds {door - echo:.0f} us")
        return
    if a.consoles:
        with tempfile.TemporaryDirectory() as d:
            phases = compare_consoles(Path(d), a.orders, a.window, a.consoles, a.rounds, fsync=not a.no_fsync,
                                      streams=not a.no_nats, processes=not a.single_process)
        none, watched = (statistics.median(phases[k]) for k in ("none", "consoles"))
        pairs = [w / n for n, w in zip(phases["none"], phases["consoles"])]
        print(f"orders/s per phase, no console: {[round(x) for x in phases['none']]}; with {a.consoles} live "
              f"consoles: {[round(x) for x in phases['consoles']]}")
        print(f"medians {none:.0f} vs {watched:.0f} orders/s: {watched / none:.3f}x; per round "
              f"{[round(x, 3) for x in pairs]}, median {statistics.median(pairs):.3f}x")
        return
    with tempfile.TemporaryDirectory() as d:
        echo = run_echo(Path(d), a.orders, a.window)
        oms = run_oms(Path(d), a.orders, a.window, fsync=not a.no_fsync, streams=not a.no_nats,
                      processes=not a.single_process)
        commit = commit_floor(Path(d))
    print(f"{'':8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'orders/s':>10}  terminal statuses")
    for name, r in (("echo", echo), ("oms", oms)):
        print(f"{name:8} {r['p50_us']:9.0f} {r['p99_us']:9.0f} {r['mean_us']:9.0f} {r['orders_per_s']:10.0f}  "
              f"{r['statuses']} {r['last_reject']}")
    print(f"messages the trader receives per order: echo {echo['reports_per_order']:.1f}, "
          f"OMS {oms['reports_per_order']:.1f}; the OMS adds a venue leg (NewOrderSingle out, reports back)")
    print(f"ratios: p50 oms/echo = {oms['p50_us'] / echo['p50_us']:.2f}x, "
          f"throughput oms/echo = {oms['orders_per_s'] / echo['orders_per_s']:.2f}x")
    print(f"durability floor: one fsync'd commit {commit:.0f} us; a round trip waits for two (acceptance, fill): "
          f"{2 * commit:.0f} us = {2 * commit / echo['p50_us']:.1f}x the echo's p50 before any FIX message")
    print(f"engine, over the whole run (one at a time and windowed): mean oms_engine_latency_seconds "
          f"{oms['engine_us']:.1f} us per command; the engine thread's CPU {oms['engine_cpu_us']:.1f} us per command "
          f"(with its metrics, encoding and hand-over)")


if __name__ == "__main__":
    main()
