"""A real quickfix initiator for tests: send messages, wait for the answers."""
from __future__ import annotations

import queue
import random
import socket
import threading
import time
from pathlib import Path

import quickfix as fix

from gateways.fix_session import Endpoint, FixSession, field, msg_type, new_message, send, utc_timestamp, write_settings


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port below the ephemeral range, never given twice in one run: an
    ephemeral port could be taken by an outgoing connection before its server binds it."""
    low, _high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    while True:
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port


class FixClient(fix.Application):
    """A FIX peer: an initiator (a trader) by default, or an acceptor (a venue played by the test)."""

    def __init__(self, tmp: Path, port: int, sender: str, target: str, begin_string: str = "FIX.4.4",
                 role: str = "initiator", logon_fields: dict[int, str] | None = None, wait_logon: bool = True,
                 store_dir: Path | None = None) -> None:
        """`store_dir`: a FileStore there and sequence numbers kept across logons (resend
        works); without it a memory store and a reset at every logon."""
        super().__init__()
        self.session = FixSession(begin_string, sender, target)
        self.sid = self.session.session_id()
        self.inbox: queue.Queue[fix.Message] = queue.Queue()
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.logon_fields = logon_fields or {}
        self.wait_logon = wait_logon
        settings = write_settings(tmp / f"{role}-{sender}-{port}.cfg", role, "127.0.0.1", port,  # type: ignore[arg-type]
                                  [self.session], store_dir=store_dir, reset_on_logon=store_dir is None)
        self.endpoint = Endpoint(self, settings, role, store_dir=store_dir)  # type: ignore[arg-type]
        self._n = 0

    def __enter__(self) -> FixClient:
        self.endpoint.start()
        if self.wait_logon:
            assert self.logged_on.wait(15), "FIX logon timed out"
        return self

    def __exit__(self, *exc: object) -> None:
        self.endpoint.stop()

    # quickfix callbacks
    def onCreate(self, sid): pass
    def onLogon(self, sid): self.logged_out.clear(); self.logged_on.set()
    def onLogout(self, sid): self.logged_on.clear(); self.logged_out.set()
    def toAdmin(self, msg, sid):
        if msg_type(msg) == "A":
            for tag, value in self.logon_fields.items():
                msg.setField(tag, value)
    def fromAdmin(self, msg, sid):
        if msg_type(msg) == "3":  # session-level Reject: tests want to see those too
            self.inbox.put(fix.Message(msg))
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid): self.inbox.put(fix.Message(msg))

    # ------------------------------------------------------------------ sending
    def next_id(self, prefix: str = "C") -> str:
        self._n += 1
        return f"{prefix}{self._n}-{time.monotonic_ns() % 10**9}"

    def send(self, msg: fix.Message) -> None:
        assert send(msg, self.sid), "send failed"

    def allocation(self, alloc_id: str, cl: str, symbol: str, side: str, allocs: list[tuple[str, str]],
                   trans_type: str = "0", avg_px: str = "100", shares: str | None = None) -> None:
        """AllocationInstruction (J) of the block with ClOrdID cl, by quantity per account,
        with its repeating groups built through quickfix's group classes (wire order)."""
        import quickfix42 as fix42
        import quickfix44 as fix44

        v42 = self.session.begin_string == "FIX.4.2"
        kind = fix42.Allocation if v42 else fix44.AllocationInstruction
        m = kind()
        for tag, value in ((70, alloc_id), (71, trans_type), (54, side), (55, symbol), (6, avg_px),
                           (53, shares or str(sum(int(q) for _, q in allocs))),
                           (75, time.strftime("%Y%m%d", time.gmtime()))):
            m.setField(tag, value)
        if not v42:
            m.setField(626, "1")  # AllocType: calculated
            m.setField(857, "1")  # AllocNoOrdersType: explicit list
        order = kind.NoOrders()
        order.setField(11, cl)
        m.addGroup(order)
        for account, qty in allocs:
            g = kind.NoAllocs()
            g.setField(79, account)
            g.setField(80, qty)
            m.addGroup(g)
        self.send(m)

    def new_order(self, cl: str, symbol: str, side: str, qty: str, price: str | None = None,
                  ord_type: str | None = None, tif: str = "0", account: str | None = None,
                  extra: dict[int, str] | None = None) -> None:
        m = new_message("D")
        m.setField(11, cl)
        if self.session.begin_string == "FIX.4.2":
            m.setField(21, "1")
        m.setField(55, symbol)
        m.setField(54, side)
        m.setField(60, utc_timestamp())
        m.setField(38, qty)
        m.setField(40, ord_type or ("2" if price is not None else "1"))
        if price is not None:
            m.setField(44, price)
        m.setField(59, tif)
        if account:
            m.setField(1, account)
        for tag, value in (extra or {}).items():
            m.setField(tag, value)
        self.send(m)

    def cancel(self, cl: str, orig: str, symbol: str, side: str, qty: str = "0") -> None:
        m = new_message("F")
        m.setField(11, cl)
        m.setField(41, orig)
        m.setField(55, symbol)
        m.setField(54, side)
        m.setField(60, utc_timestamp())
        if self.session.begin_string == "FIX.4.2" or qty != "0":
            m.setField(38, qty)
        self.send(m)

    def replace(self, cl: str, orig: str, symbol: str, side: str, qty: str, price: str | None = None,
                ord_type: str = "2") -> None:
        m = new_message("G")
        m.setField(11, cl)
        m.setField(41, orig)
        if self.session.begin_string == "FIX.4.2":
            m.setField(21, "1")
        m.setField(55, symbol)
        m.setField(54, side)
        m.setField(60, utc_timestamp())
        m.setField(38, qty)
        m.setField(40, ord_type)
        if price is not None:
            m.setField(44, price)
        self.send(m)

    def status(self, cl: str, symbol: str, side: str) -> None:
        m = new_message("H")
        m.setField(11, cl)
        m.setField(55, symbol)
        m.setField(54, side)
        self.send(m)

    # ------------------------------------------------------------------ receiving
    def expect(self, kind: str | None = None, timeout: float = 10.0, **fields: str) -> fix.Message:
        """The next application message (of type `kind`, with the given tag values), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or 'message'} {fields} within {timeout}s")
            try:
                m = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if kind is not None and msg_type(m) != kind:
                continue
            if all(field(m, int(tag.lstrip("t"))) == v for tag, v in fields.items()):
                return m

    def drain(self, wait: float = 0.3) -> list[fix.Message]:
        time.sleep(wait)
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


def tags(m: fix.Message, *numbers: int) -> tuple[str | None, ...]:
    return tuple(field(m, n) for n in numbers)
