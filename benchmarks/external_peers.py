"""The OMS between peers it does not share a language with: the QuickFIX C++ example
`executor` (Debian's libquickfix-doc) as the venue and a QuickFIX C++ load client
(benchmarks/peers/load_client.cpp) as the trader, against `oms run` (processes by role,
the default's compliance, journal fsync'd, NATS on) and against a bare Python quickfix
echo acceptor driven by the same client in the same run.

Run: .venv/bin/python -m benchmarks.external_peers [--orders 2000] [--window 50] [--no-fsync] [--single-process]

On a fresh machine it installs libquickfix-dev and libquickfix-doc (apt-get, as root)
and builds both peers into ~/.cache/oms/peers. Prints the round trip (one order at a
time: p50, p99), the throughput (`window` orders outstanding), their ratios to the
echo's, the targets of issue 10 (against the median fsync'd commit measured before and after
the OMS's run), and, while `window` orders are outstanding, the CPU each process spent per
order (utime + stime from /proc/<pid>/stat) and the engine's oms_engine_latency_seconds.

The executor fills every limit order at once at its price, sends no quotes and answers an
OrderStatusRequest with a BusinessMessageReject, so its venue is configured with
`market_data = false` (the OMS puts the children it reconciles at logon in doubt; none are
open at the first start) and reference prices are the config's, never fresh: no staleness
check. The load-tripping controls are off, as in fix_load.
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgspec
import tomli_w

from benchmarks.fix_load import Echo, commit_floor, cpu_seconds, load_config
from gateways.fix_session import Endpoint, FixSession, write_settings
from oms.config import DEFAULT_CONFIG, SimConfig, VenueConfig, load
from tests.fix_client import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("libquickfix-dev", "libquickfix-doc", "g++", "pkg-config")
EXAMPLE = Path("/usr/share/doc/libquickfix-doc/examples/executor/C++")
CACHE = Path.home() / ".cache" / "oms" / "peers"
CXX = ["g++", "-O2", "-std=gnu++14", "-Wno-deprecated"]  # quickfix 1.15's headers use throw() specifications
SYMBOL, PRICE, ACCOUNT = "AAPL", "190", "DEMO2"


def ensure_packages() -> None:
    missing = [p for p in PACKAGES if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                                     text=True).stdout != "install ok installed"]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdin=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, stdin=subprocess.DEVNULL)


def build() -> tuple[Path, Path]:
    """The executor from the package's example sources (gzipped where large; the config.h it
    includes is the source tree's, empty here), and the load client, again when its source is newer."""
    CACHE.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "quickfix"], check=True, capture_output=True,
                           text=True).stdout.split()
    src = CACHE / "executor-src"
    src.mkdir(exist_ok=True)
    for f in EXAMPLE.iterdir():
        if f.name in ("executor.cpp", "Application.cpp.gz", "Application.h"):
            data = f.read_bytes()
            (src / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(data) if f.suffix == ".gz" else data)
    (src / "config.h").touch()
    executor, client = CACHE / "executor", CACHE / "load_client"
    client_src = ROOT / "benchmarks" / "peers" / "load_client.cpp"
    if not executor.exists():
        subprocess.run([*CXX, f"-I{src}", "-o", str(executor), str(src / "executor.cpp"), str(src / "Application.cpp"),
                        *flags, "-lpthread"], check=True)
    if not client.exists() or client.stat().st_mtime < client_src.stat().st_mtime:
        subprocess.run([*CXX, "-o", str(client), str(client_src), *flags, "-lpthread"], check=True)
    return executor, client


def family(pid: int) -> dict[int, str]:
    """pid and its descendants, named by role."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        found[p] = role(p, pid)
        todo += [c for c, pp in parents.items() if pp == p]
    return found


def role(pid: int, top: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    for needle, name in (("oms.roles fix", "FIX gateway"), ("oms.roles venues", "venues"),
                         ("nats-server", "nats-server"), ("resource_tracker", "multiprocessing tracker"),
                         ("spawn_main", "NATS publisher")):
        if needle in cmd:
            return name
    return "engine (oms run)" if pid == top else cmd[:40]


def run_client(client: Path, tmp: Path, port: int, sender: str, target: str, orders: int, window: int,
               watched: dict[int, str], probe: Callable[[], dict[str, float]] = dict) -> dict:
    """The load client's run, and the CPU every watched process (and the client) spent per order
    while `window` orders were outstanding (one at a time, CPU per order is mostly waiting's);
    `probe`'s figures as that phase starts and ends."""
    settings = tmp / f"client-{port}.cfg"
    write_settings(settings, "initiator", "127.0.0.1", port, [FixSession("FIX.4.4", sender, target)],
                   store_dir=tmp / f"client-store-{port}", dictionary=False)
    proc = subprocess.Popen([str(client), str(settings), str(orders), str(window), SYMBOL, PRICE, ACCOUNT],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    watched = {**watched, proc.pid: "load client"}
    if proc.stdout.readline() != "window\n":
        raise RuntimeError(f"load client failed ({proc.wait()})")
    stats = {pid: Path(f"/proc/{pid}/stat") for pid in watched}
    before = {pid: cpu_seconds(stat) for pid, stat in stats.items()}
    probed = probe()
    result = proc.stdout.readline()
    probed = {k: v - probed[k] for k, v in probe().items()}
    cpu = {name: (cpu_seconds(stats[pid]) - before[pid]) / orders * 1e6 for pid, name in watched.items()}
    if proc.wait(60):
        raise RuntimeError(f"load client failed ({proc.returncode})")
    return {**json.loads(result), "cpu_us": cpu, "probed": probed}


def serve_echo(port: int, tmp: Path, stop) -> None:
    """The echo acceptor, in a process of its own as the OMS is."""
    settings = write_settings(tmp / "echo.cfg", "acceptor", "127.0.0.1", port, [FixSession("FIX.4.4", "ECHO", "LOAD")],
                              dictionary=False)
    ep = Endpoint(Echo(), settings, "acceptor")
    ep.start()
    stop.wait()
    ep.stop()


def echo_leg(client: Path, tmp: Path, orders: int, window: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    stop, port = ctx.Event(), free_port()
    proc = ctx.Process(target=serve_echo, args=(port, tmp, stop), name="echo")
    proc.start()
    try:
        wait_port(port, 30)
        return run_client(client, tmp, port, "LOAD", "ECHO", orders, window, {proc.pid: "echo"})
    finally:
        stop.set()
        proc.join(10)


def wait_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def start_executor(executor: Path, tmp: Path, port: int) -> subprocess.Popen:
    settings = tmp / "executor.cfg"
    write_settings(settings, "acceptor", "127.0.0.1", port, [FixSession("FIX.4.4", "EXEC", "OMS")],
                   store_dir=tmp / "executor-store", reset_on_logon=False)
    text = settings.read_text().replace("[DEFAULT]\n", "[DEFAULT]\nScreenLogShowIncoming=N\nScreenLogShowOutgoing=N\n"
                                        "ScreenLogShowEvents=N\n", 1)
    settings.write_text(text)
    proc = subprocess.Popen([str(executor), str(settings)], stdout=subprocess.DEVNULL, cwd=tmp)
    wait_port(port, 30)
    return proc


def oms_config(tmp: Path, venue_port: int, fsync: bool) -> Path:
    """The default, less its simulated venues and load-tripping controls, with the executor as its one
    venue. No venue quotes, so reference prices are the config's and cannot be fresh: no staleness check."""
    cfg = load_config(load(DEFAULT_CONFIG), fsync)
    cfg = msgspec.structs.replace(cfg, default_venue="EXEC", risk=msgspec.structs.replace(cfg.risk, stale_price_s=0),
                                  venues=[VenueConfig(
        name="EXEC", port=venue_port, begin_string="FIX.4.4", market_data=False, sim=SimConfig(enabled=False))])
    path = tmp / "oms.toml"
    path.write_text(tomli_w.dumps(_without_none(msgspec.to_builtins(cfg))))
    return path


def _without_none(value):
    """TOML has no null: an unset optional is left out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def venue_up(metrics_port: int) -> bool:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except OSError:
        return False
    return 'oms_venue_up{venue="EXEC"} 1.0' in text


def oms_leg(executor: Path, client: Path, tmp: Path, orders: int, window: int, fsync: bool,
            single_process: bool) -> dict:
    venue_port = free_port()
    ex = start_executor(executor, tmp, venue_port)
    cfg_path = oms_config(tmp, venue_port, fsync)
    cfg = load(cfg_path)
    run_dir = tmp / "oms"
    run_dir.mkdir()
    args = ["--single-process"] if single_process else []
    oms = subprocess.Popen([sys.executable, "-m", "oms.cli", "run", "--config", str(cfg_path), *args],
                           cwd=run_dir, stdin=subprocess.DEVNULL, stderr=open(tmp / "oms.log", "w"))
    try:
        deadline = time.monotonic() + 120
        while not venue_up(cfg.metrics.port):
            if oms.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oms run did not come up: {(tmp / 'oms.log').read_text()[-2000:]}")
            time.sleep(0.2)
        wait_port(cfg.fix.port, 60)
        watched = {**family(oms.pid), ex.pid: "executor"}
        return run_client(client, tmp, cfg.fix.port, "CLIENT2", "OMS", orders, window, watched,
                          lambda: engine_latency(cfg.metrics.port))
    finally:
        oms.send_signal(signal.SIGINT)
        oms.wait(60)
        ex.kill()
        ex.wait()


def engine_latency(metrics_port: int) -> dict[str, float]:
    """oms_engine_latency_seconds's samples (bucket{le="..."}, sum, count) as /metrics serves them now."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return {line.split()[0].removeprefix("oms_engine_latency_seconds_"): float(line.split()[1])
            for line in text.splitlines() if line.startswith("oms_engine_latency_seconds_")}


def median_bound(probed: dict[str, float]) -> str:
    """The histogram bucket the median command falls in."""
    bounds = [(float(k.split('"')[1]), n) for k, n in probed.items() if k.startswith("bucket")]
    below = 0.0
    for bound, n in sorted(bounds):
        if n >= probed["count"] / 2:
            return f"{below * 1e6:g}-{bound * 1e6:g} us"
        below = bound
    return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--no-fsync", action="store_true", help="journal without fsync ([journal] fsync = false)")
    p.add_argument("--single-process", action="store_true", help="oms run --single-process, to compare")
    a = p.parse_args()
    if shutil.which("apt-get"):
        ensure_packages()
    executor, client = build()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "echo").mkdir()
        echo = echo_leg(client, tmp / "echo", a.orders, a.window)
        floors = [commit_floor(tmp)]  # before and after: the disk is shared, and its load drifts
        oms = oms_leg(executor, client, tmp, a.orders, a.window, not a.no_fsync, a.single_process)
        floors.append(commit_floor(tmp))
    commit = sum(floors) / 2
    print(f"{'':6} {'p50 us':>8} {'p99 us':>8} {'mean us':>8} {'orders/s':>9}  terminal statuses")
    for name, r in (("echo", echo), ("oms", oms)):
        print(f"{name:6} {r['p50_us']:8.0f} {r['p99_us']:8.0f} {r['mean_us']:8.0f} {r['orders_per_s']:9.0f}  "
              f"{r['statuses']} {r['last_reject']}")
    bound = 2 * commit + 3 * echo["p50_us"]
    ratio = oms["orders_per_s"] / echo["orders_per_s"]
    print(f"throughput oms/echo {ratio:.2f}x (target >= 0.5x: {'met' if ratio >= 0.5 else 'not met'})")
    print(f"p50: oms {oms['p50_us']:.0f} us vs 2 x commit ({commit:.0f} us: {floors[0]:.0f} before, {floors[1]:.0f} "
          f"after) + 3 x echo p50 = {bound:.0f} us "
          f"({'met' if oms['p50_us'] <= bound else 'not met'}); stretch p50 <= 1 ms: "
          f"{'met' if oms['p50_us'] <= 1000 else 'not met'}")
    probed = oms["probed"]
    mean = probed["sum"] / probed["count"] * 1e6
    print(f"engine, {a.window} outstanding: oms_engine_latency_seconds mean {mean:.1f} us per command, median in "
          f"{median_bound(probed)} ({probed['count']:.0f} commands)")
    for name, r in (("echo", echo), ("oms", oms)):
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["cpu_us"].items(), key=lambda kv: -kv[1]) if v)
        print(f"CPU per order, {a.window} outstanding ({name} leg), us: {cpu}")


if __name__ == "__main__":
    main()
