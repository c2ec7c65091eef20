"""Kill the OMS (or its venue) under load and check that trader, OMS and venue agree.

Every part is real and runs apart: `oms sim-venue` in a process of its own, `oms run` in
another (the one killed with SIGKILL), and a quickfix trader in this process with a
FileStore (it keeps its sequence numbers, so it can resend what the OMS lost). After the
restart the trader asks the status of every order it sent; the verdict compares what the
trader saw, what the journal holds and what the venue itself sent (its FIX store).
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field as dfield
from pathlib import Path

import quickfix as fix

from gateways.fix_session import field, fields
from oms.config import load
from oms.journal import Journal
from oms.router import INTERNAL
from oms.runtime import rebuild
from tests.fix_client import FixClient, free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
run_dir = "run"
default_venue = "XSIM"
internal_cross = false
[journal]
fsync = {fsync}
[fix]
port = {fix_port}
[[fix.sessions]]
comp_id = "TRADER"
begin_string = "FIX.4.4"
accounts = ["ACC"]
cancel_on_disconnect = {cancel_on_disconnect}
[[venues]]
name = "XSIM"
port = {venue_port}
ack_timeout_s = {ack_timeout_s}
market_data = {market_data}
[venues.sim]
depth = 3
level_qty = 400
tick_ms = 50
seed = 7
status_requests = {status_requests}
[[accounts]]
id = "ACC"
[[instruments]]
symbol = "AAPL"
ref_price = "100"
"""


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process ended with {proc.returncode}: {_tail(proc)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def _tail(proc: subprocess.Popen) -> str:
    path = getattr(proc, "log_path", None)
    return Path(path).read_text()[-3000:] if path else ""


class Trader(FixClient):
    """The trader: records every application message it gets, PossDup or not."""

    def __init__(self, tmp: Path, port: int) -> None:
        super().__init__(tmp, port, "TRADER", "OMS", store_dir=tmp / "trader-store", wait_logon=False)
        self.got: list[dict[int, str]] = []
        self.last_got = time.monotonic()
        self.logons = 0

    def onLogon(self, sid):
        self.logons += 1
        super().onLogon(sid)

    def fromApp(self, msg, sid):
        self.got.append(fields(msg))
        self.last_got = time.monotonic()

    def quiet(self, seconds: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_got < seconds and time.monotonic() < deadline:
            time.sleep(0.1)


@dataclass
class Verdict:
    orders_sent: int = 0
    vanished: list[str] = dfield(default_factory=list)  # sent, unknown to the OMS after the restart
    acked_lost: list[str] = dfield(default_factory=list)  # acknowledged, unknown after the restart
    unbooked_venue_fills: list[str] = dfield(default_factory=list)  # venue ExecIDs the OMS never booked
    children_sent_twice: list[str] = dfield(default_factory=list)  # ClOrdIDs the venue acknowledged twice
    reports_missing: list[str] = dfield(default_factory=list)  # journaled ExecIDs the trader never got
    duplicates_without_possdup: list[str] = dfield(default_factory=list)
    position_oms: int = 0
    position_venue: int = 0
    venue_fills: int = 0  # fills in the venue's own record
    in_doubt: int = 0
    resent_reports: int = 0  # reports the trader got more than once, always PossDup

    def clean(self) -> bool:
        return not (self.vanished or self.acked_lost or self.unbooked_venue_fills or self.children_sent_twice
                    or self.reports_missing or self.duplicates_without_possdup) \
            and self.position_oms == self.position_venue

    def row(self) -> str:
        return (f"orders {self.orders_sent}, vanished {len(self.vanished)}, acked lost {len(self.acked_lost)}, "
                f"venue fills unbooked {len(self.unbooked_venue_fills)}, children sent twice "
                f"{len(self.children_sent_twice)}, reports missing {len(self.reports_missing)}, duplicates "
                f"without PossDup {len(self.duplicates_without_possdup)}, position OMS {self.position_oms} / venue "
                f"{self.position_venue}, in doubt {self.in_doubt}, reports re-sent (PossDup) {self.resent_reports}")


class CrashRig:
    """A venue, an OMS and a trader in three processes' worth of parts, on loopback."""

    def __init__(self, tmp: Path, *, fsync: bool = True, ack_timeout_s: float = 3.0, status_requests: bool = True,
                 market_data: bool = True, cancel_on_disconnect: bool = False) -> None:
        self.tmp = tmp
        self.fix_port, self.venue_port = free_port(), free_port()
        self.cfg_path = tmp / "oms.toml"
        self.cfg_path.write_text(CONFIG.format(fix_port=self.fix_port, venue_port=self.venue_port,
                                               fsync=str(fsync).lower(), ack_timeout_s=ack_timeout_s,
                                               status_requests=str(status_requests).lower(),
                                               market_data=str(market_data).lower(),
                                               cancel_on_disconnect=str(cancel_on_disconnect).lower()))
        (tmp / "oms").mkdir(exist_ok=True)
        (tmp / "venue").mkdir(exist_ok=True)
        self.oms: subprocess.Popen | None = None
        self.venue: subprocess.Popen | None = None
        self.trader: Trader | None = None
        self.sent: dict[str, str] = {}  # ClOrdID -> side
        self.venue_store = tmp / "venue" / "run" / "venue-XSIM-store"
        self.venue_epochs: list[int] = []  # where each life of the venue starts in its store
        self._starts = 0
        self._stop_load = threading.Event()

    # ------------------------------------------------------------------ processes
    def _spawn(self, args: list[str], cwd: Path, name: str) -> subprocess.Popen:
        self._starts += 1
        log_path = self.tmp / f"{name}-{self._starts}.log"
        proc = subprocess.Popen([sys.executable, "-m", "oms.cli", *args, "--config", str(self.cfg_path)], cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"),
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        proc.log_path = log_path  # type: ignore[attr-defined]
        return proc

    def start_venue(self) -> None:
        """The venue; a restarted one has lost its book (not its FIX store): what it acknowledges
        from here on counts apart from what its earlier life did."""
        self.venue_epochs.append(len(_store_messages(self.venue_store)))
        self.venue = self._spawn(["sim-venue"], self.tmp / "venue", "venue")
        _wait_port(self.venue_port, self.venue)

    def start_oms(self) -> None:
        self.oms = self._spawn(["run", "--no-venues", "--no-nats", "--no-api", "--no-metrics"], self.tmp / "oms",
                               "oms")
        _wait_port(self.fix_port, self.oms, timeout=120)

    def kill(self, proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def start(self) -> None:
        self.start_venue()
        self.start_oms()
        self.start_trader()

    def start_trader(self) -> None:
        """A trader on its FileStore: a new one after a stop carries on from the same numbers."""
        self.trader = Trader(self.tmp, self.fix_port)
        self.trader.endpoint.start()
        assert self.trader.logged_on.wait(30), "the trader could not log on"

    def stop(self) -> None:
        self._stop_load.set()
        if self.trader is not None:
            self.trader.endpoint.stop()
        for proc in (self.oms, self.venue):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.kill(proc)

    # ------------------------------------------------------------------ load
    def load(self, rate: float, seconds: float, seed: int = 1) -> threading.Thread:
        """Limit orders at `rate` per second: a third marketable (they fill at the venue), the
        rest resting near the touch; sent whether the OMS is up or not (the trader's store
        keeps them for the resend)."""
        rng = random.Random(seed)
        trader = self.trader
        assert trader is not None

        def run() -> None:
            end = time.monotonic() + seconds
            n = len(self.sent)
            while time.monotonic() < end and not self._stop_load.is_set():
                n += 1
                cl = f"L{n}"
                side = rng.choice("12")
                marketable = rng.random() < 0.35
                px = (101 if side == "1" else 99) if marketable else (99.5 if side == "1" else 100.5)
                self.sent[cl] = side
                try:
                    trader.new_order(cl, "AAPL", side, str(rng.choice((100, 200, 300))), f"{px:.2f}", account="ACC")
                except AssertionError:
                    pass  # not logged on: quickfix kept it in the store anyway
                time.sleep(1 / rate)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------ verdict
    def verdict(self) -> Verdict:
        """Ask the status of every order sent, then compare trader, journal and venue."""
        trader = self.trader
        assert trader is not None
        trader.quiet(1.5, 30)
        for cl, side in self.sent.items():
            trader.status(cl, "AAPL", side)
        want = set(self.sent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answered = {m.get(11) for m in trader.got if m.get(150) == "I"}
            if want <= answered:
                break
            time.sleep(0.2)
        trader.quiet(1.0, 10)
        v = Verdict(orders_sent=len(self.sent))
        status = {m[11]: m for m in trader.got if m.get(150) == "I"}
        acked = {m[11] for m in trader.got if m.get(150) in ("0", "F", "A") and m.get(11)}
        for cl in sorted(self.sent):
            known = cl in status and status[cl].get(37) not in (None, "NONE")
            if not known:
                v.vanished.append(cl)
                if cl in acked:
                    v.acked_lost.append(cl)

        cfg = load(self.cfg_path)
        with Journal(cfg.journal_path(self.tmp / "oms")) as j:
            engine = rebuild(cfg, j)
            journaled_reports = [e for _s, e in ((s, e) for s, e in _events(j))
                                 if type(e).__name__ in ("ExecutionReport", "OrderRejected", "CancelRejected")]
        state = engine.state
        booked = {x for ch in state.children.values() for x in ch.venue_fills}
        v.position_oms = sum((1 if state.orders[ch.order_id].side.value == "1" else -1) * ch.cum_qty
                             for ch in state.children.values() if ch.venue != INTERNAL)
        v.in_doubt = sum(1 for ch in state.children.values() if ch.doubt)

        venue_msgs = _store_messages(self.venue_store)
        for start, end in zip(self.venue_epochs, [*self.venue_epochs[1:], len(venue_msgs)]):
            news = Counter(m.get(11) for m in venue_msgs[start:end] if m.get(35) == "8" and m.get(150) == "0")
            v.children_sent_twice += sorted(cl for cl, k in news.items() if k > 1)
        v.children_sent_twice += sorted(m.get(11, "") for m in venue_msgs if m.get(35) == "8" and m.get(150) == "8"
                                        and "duplicate" in m.get(58, "").lower())
        for m in venue_msgs:
            if m.get(35) == "8" and m.get(150) == "F":
                v.venue_fills += 1
                v.position_venue += (1 if m.get(54) == "1" else -1) * int(m.get(32, "0"))
                if m[17] not in booked:
                    v.unbooked_venue_fills.append(m[17])

        seen = defaultdict(list)
        for m in trader.got:
            if m.get(17):
                seen[m[17]].append(m.get(43) == "Y")
        for e in journaled_reports:
            exec_id = getattr(e, "exec_id", None)
            if exec_id is None or getattr(e, "session", "TRADER") != "TRADER":
                continue
            copies = seen.get(exec_id, [])
            if not copies:
                v.reports_missing.append(exec_id)
            elif len(copies) > 1:
                v.resent_reports += 1
                if sum(1 for dup in copies if not dup) > 1:
                    v.duplicates_without_possdup.append(exec_id)
        return v


def _events(j: Journal):
    from oms.model import EVENT_DECODER
    for seq, payload in j.replay():
        yield seq, EVENT_DECODER.decode(payload)


def _store_messages(store: Path) -> list[dict[int, str]]:
    """Every message a quickfix FileStore kept as sent, as tag -> value (first of each tag)."""
    out = []
    for body in store.glob("*.body"):
        raw = body.read_bytes().decode("latin-1")
        for chunk in raw.split("8=FIX")[1:]:
            msg: dict[int, str] = {}
            for pair in ("8=FIX" + chunk).split("\x01"):
                tag, _, value = pair.partition("=")
                if tag.isdigit():
                    msg.setdefault(int(tag), value)
            out.append(msg)
    return out
