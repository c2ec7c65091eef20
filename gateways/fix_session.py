"""quickfix plumbing shared by every FIX gateway: settings, lifecycle, message building.

One place knows the differences between FIX 4.2 and 4.4 ExecutionReports, so the
trader acceptor, the venue sessions and the venue simulators all speak the same way.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec
import quickfix as fix

from oms.fixed import price_str
from oms.model import ExecType, OrdStatus

SPEC_DIR = Path(__file__).resolve().parent.parent / "config" / "fix"
log = logging.getLogger("gateways.fix")

Role = Literal["acceptor", "initiator"]


class FixSession(msgspec.Struct, frozen=True):
    begin_string: str
    sender: str
    target: str

    def session_id(self) -> fix.SessionID:
        return fix.SessionID(self.begin_string, self.sender, self.target)


def write_settings(
    path: Path, role: Role, host: str, port: int, sessions: list[FixSession],
    *, store_dir: Path | None = None, heartbeat: int = 30, reset_on_logon: bool = True, dictionary: bool = True,
) -> fix.SessionSettings:
    """Write a quickfix settings file for `sessions` and load it (quickfix reads files only).

    Without a dictionary quickfix leaves field validation to the application, which can
    then refuse a bad field with an order-level reject instead of a session-level one. An
    acceptor's host and port are where its `Endpoint` listens (quickfix itself ignores
    SocketAcceptHost: see `Endpoint`).
    """
    side = "Accept" if role == "acceptor" else "Connect"
    lines = [
        "[DEFAULT]",
        f"ConnectionType={role}",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        f"HeartBtInt={heartbeat}",
        "ReconnectInterval=1",
        f"UseDataDictionary={'Y' if dictionary else 'N'}",
        "ValidateUserDefinedFields=N",
        "AllowUnknownMsgFields=Y",
        "ValidateFieldsOutOfOrder=N",
        f"ResetOnLogon={'Y' if reset_on_logon else 'N'}",
        f"Socket{side}Host={host}",
        f"Socket{side}Port={port}",
        "SocketNodelay=Y",
        "SocketReuseAddress=Y",
    ]
    if store_dir is not None:
        lines.append(f"FileStorePath={store_dir}")
    for s in sessions:
        lines += [
            "[SESSION]",
            f"BeginString={s.begin_string}",
            f"SenderCompID={s.sender}",
            f"TargetCompID={s.target}",
        ]
        if dictionary:
            lines.append(f"DataDictionary={SPEC_DIR / (s.begin_string.replace('.', '') + '.xml')}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return fix.SessionSettings(str(path))


class Endpoint:
    """A quickfix acceptor or initiator with its application; start() and stop().

    quickfix 1.16 binds every acceptor to all interfaces (socket_createAcceptor binds
    INADDR_ANY; SocketAcceptHost is read by no one). So an acceptor's own socket is only
    a placeholder on an ephemeral port: start() puts `listen` (a socket already listening
    where the config says, TCP or Unix) in its place, so quickfix accepts there and nowhere else.
    """

    def __init__(self, app: fix.Application, settings: fix.SessionSettings, role: Role,
                 store_dir: Path | None = None, listen: socket.socket | None = None) -> None:
        store = fix.FileStoreFactory(settings) if store_dir is not None else fix.MemoryStoreFactory()
        logs = fix.ScreenLogFactory(False, False, False)
        self.listener: socket.socket | None = None
        if role == "acceptor":
            self.listener = listen or listener(*_accept_address(settings))
            settings = _on_placeholder_port(settings)
        # the threaded connectors: SocketAcceptor.stop races its own poll thread over the socket map
        cls = fix.ThreadedSocketAcceptor if role == "acceptor" else fix.ThreadedSocketInitiator
        # quickfix keeps raw references to all of these: they must outlive the connector
        self._app, self._settings, self._store, self._logs = app, settings, store, logs
        self.connector: fix.Initiator | fix.Acceptor | None = cls(app, store, settings, logs)

    def start(self) -> None:
        if self.listener is None:
            self.connector.start()
            return
        with _TAKEOVER:  # one acceptor at a time: its placeholder is the one new wildcard listener
            before = _wildcard_listeners()
            self.connector.start()
            placeholders = _wildcard_listeners().keys() - before.keys()
            if len(placeholders) != 1:
                raise RuntimeError(f"cannot find the quickfix acceptor's socket ({len(placeholders)} candidates)")
            _take_over(*_wildcard_listeners()[placeholders.pop()], self.listener)

    def stop(self) -> None:
        """Log every session out and wait for the logouts (quickfix itself checks every whole
        second), stop, then destroy the connector: quickfix unregisters its sessions (a
        process-wide registry) only when the connector is deleted, and a stale one would
        shadow a new one."""
        if self.connector is None:
            return
        for sid in self.connector.getSessions():
            session = fix.Session.lookupSession(sid)
            if session is not None and session.isLoggedOn():
                session.logout()
        deadline = time.monotonic() + 2.0
        while self.connector.isLoggedOn() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.connector.stop()
        self.connector = None
        if self.listener is not None:
            self.listener.close()


def listener(host: str, port: int) -> socket.socket:
    """A TCP socket listening on exactly host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    try:
        s.bind((host, port))
        s.listen(socket.SOMAXCONN)
    except OSError:
        s.close()
        raise
    return s


def bound_address(s: socket.socket) -> str:
    """Where a listening socket really is, for log lines."""
    name = s.getsockname()
    return name if isinstance(name, str) else f"{name[0]}:{name[1]}"


_TAKEOVER = threading.Lock()


def _accept_address(settings: fix.SessionSettings) -> tuple[str, int]:
    d = settings.get()
    return d.getString("SocketAcceptHost"), d.getInt("SocketAcceptPort")


def _on_placeholder_port(settings: fix.SessionSettings) -> fix.SessionSettings:
    """The settings with SocketAcceptPort 0: quickfix's own socket takes an ephemeral port."""
    for sid in settings.getSessions():
        settings.get(sid).setInt("SocketAcceptPort", 0)  # get() gives quickfix's own dictionary
    return settings


def _wildcard_ports() -> dict[int, int]:
    """TCP sockets listening on 0.0.0.0 (any process of this network namespace): inode -> port."""
    ports = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[3] == "0A" and cols[1].startswith("00000000:"):
                ports[int(cols[9])] = int(cols[1].split(":")[1], 16)
    return ports


def _wildcard_listeners() -> dict[int, tuple[int, int]]:
    """This process's TCP sockets listening on 0.0.0.0: inode -> (fd, port)."""
    ports = _wildcard_ports()
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:[") and int(link[8:-1]) in ports:
            found[int(link[8:-1])] = (int(fd), ports[int(link[8:-1])])
    return found


def _take_over(fd: int, port: int, listen: socket.socket) -> None:
    """Make quickfix's accept loop accept on `listen` instead of its socket `fd`.

    dup2 puts `listen` under quickfix's descriptor number. An accept() already blocked on
    the old socket holds it open until it returns, so one connection to it wakes that
    accept (quickfix sees it close at once) and the old socket goes for good."""
    os.dup2(listen.fileno(), fd, inheritable=False)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pass  # nothing blocked on it: dup2 closed it already
    deadline = time.monotonic() + 2.0
    while port in _wildcard_ports().values():
        if time.monotonic() > deadline:
            raise RuntimeError(f"quickfix still listens on 0.0.0.0:{port}")
        time.sleep(0.002)


def field(msg: fix.Message, tag: int) -> str | None:
    return msg.getField(tag) if msg.isSetField(tag) else None


def pairs(msg: fix.Message) -> list[tuple[int, str]]:
    """Every field of a message in wire order, header included, repeating groups in place,
    in one call into quickfix: each call releases and retakes the GIL, which another thread
    may hold, so a message read field by field waits many times over."""
    out = []
    for pair in msg.toString().split("\x01")[:-1]:
        tag, _, value = pair.partition("=")
        out.append((int(tag), value))
    return out


def fields(msg: fix.Message) -> dict[int, str]:
    """Every field of a message (35 is the type); of a tag repeated in a group, the first."""
    out: dict[int, str] = {}
    for tag, value in pairs(msg):
        out.setdefault(tag, value)
    return out


def raw_message(begin_string: str, kind: str, body: list[tuple[int, str]]) -> fix.Message:
    """A message without repeating groups built in one call into quickfix (see `fields`); the
    session fills in the header, BodyLength and CheckSum when it sends it."""
    text = "".join(f"{tag}={value.replace(chr(1), ' ')}\x01" for tag, value in body)
    return fix.Message(f"8={begin_string}\x019=0\x0135={kind}\x01{text}10=000\x01", False)


def msg_type(msg: fix.Message) -> str:
    return msg.getHeader().getField(35)


def new_message(kind: str) -> fix.Message:
    m = fix.Message()
    m.getHeader().setField(fix.MsgType(kind))
    return m


_SECOND: tuple[int, str] = (-1, "")  # the last second formatted: every message needs a timestamp


def utc_timestamp(ns: int | None = None) -> str:
    global _SECOND
    ns = time.time_ns() if ns is None else ns
    secs, rem = divmod(ns, 1_000_000_000)
    second = _SECOND
    if second[0] != secs:
        second = _SECOND = (secs, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)))
    return f"{second[1]}.{rem // 1_000_000:03d}"


def send(msg: fix.Message, session: fix.SessionID) -> bool:
    try:
        return bool(fix.Session.sendToTarget(msg, session))
    except fix.SessionNotFound:
        log.warning("session %s not found; message dropped", session.toString())
        return False


# reason codes each version defines; the catalogue's finer codes fall back (the Text names them)
_DEFINED = {
    ("FIX.4.2", 103): frozenset(range(9)), ("FIX.4.2", 102): frozenset(range(4)),
    ("FIX.4.4", 103): frozenset([*range(12), 13, 14, 15, 99]), ("FIX.4.4", 102): frozenset([*range(7), 99]),
}


def fit_reason(begin_string: str, tag: int, code: int) -> int:
    """`code` if the session's FIX version defines it, else Other (99), or Broker option (0) in 4.2."""
    defined = _DEFINED.get((begin_string, tag))
    if defined is None or code in defined:
        return code
    return 99 if 99 in defined else 0


# FIX 4.2 has no ExecType Trade/TradeCorrect/TradeCancel/OrderStatus: it uses ExecTransType
_FIX42_TRANS = {ExecType.TRADE_CANCEL: "1", ExecType.TRADE_CORRECT: "2", ExecType.ORDER_STATUS: "3"}


def _fix42_exec_type(exec_type: ExecType, ord_status: OrdStatus) -> str:
    if exec_type is ExecType.TRADE:
        return "2" if ord_status is OrdStatus.FILLED else "1"
    if exec_type in _FIX42_TRANS:
        return ord_status.value  # the status the bust, correction or status report leaves
    return exec_type.value


def execution_report(
    begin_string: str, *, order_id: str, exec_id: str, exec_type: ExecType, ord_status: OrdStatus,
    cl_ord_id: str, symbol: str, side: str, order_qty: int | None, cum_qty: int, leaves_qty: int,
    avg_px: Decimal, orig_cl_ord_id: str | None = None, last_qty: int = 0, last_px: int = 0,
    price: int | None = None, account: str | None = None, text: str = "",
    ord_rej_reason: int | None = None, exec_ref_id: str | None = None, ts: int | None = None,
    ord_type: str | None = None, tif: str | None = None, restatement_reason: int | None = None,
) -> fix.Message:
    """An ExecutionReport; a reject echoes the order's terms (OrdType, TimeInForce too);
    OrderQty is left out only when the order had no readable one."""
    body = [(37, order_id), (17, exec_id)]
    if begin_string == "FIX.4.2":
        body += [(20, _FIX42_TRANS.get(exec_type, "0")), (150, _fix42_exec_type(exec_type, ord_status))]
    else:
        body.append((150, exec_type.value))
    body += [(39, ord_status.value), (11, cl_ord_id)]
    if orig_cl_ord_id:
        body.append((41, orig_cl_ord_id))
    body += [(55, symbol), (54, side)]
    if order_qty is not None:
        body.append((38, str(order_qty)))
    body += [(14, str(cum_qty)), (151, str(leaves_qty)), (6, format(avg_px.normalize(), "f"))]
    if last_qty:
        body += [(32, str(last_qty)), (31, price_str(last_px))]
    if price is not None:
        body.append((44, price_str(price)))
    if account:
        body.append((1, account))
    body += [(t, v) for t, v in ((40, ord_type), (59, tif)) if v]
    if text:
        body.append((58, text))
    if ord_rej_reason is not None:
        body.append((103, str(fit_reason(begin_string, 103, ord_rej_reason))))
    if exec_ref_id:
        body.append((19, exec_ref_id))
    if restatement_reason is not None:
        body.append((378, str(restatement_reason)))
    body.append((60, utc_timestamp(ts)))
    return raw_message(begin_string, "8", body)


def cancel_reject(
    begin_string: str, *, order_id: str, cl_ord_id: str, orig_cl_ord_id: str, ord_status: OrdStatus, replace: bool,
    reason: int, text: str = "",
) -> fix.Message:
    body = [(37, order_id), (11, cl_ord_id), (41, orig_cl_ord_id), (39, ord_status.value),
            (434, "2" if replace else "1"), (102, str(fit_reason(begin_string, 102, reason)))]
    if text:
        body.append((58, text))
    return raw_message(begin_string, "9", body)


def allocation_ack(begin_string: str, alloc_id: str, status: int, ts: int, rej_code: int | None = None,
                   text: str = "") -> fix.Message:
    """AllocationInstructionAck (P). AllocStatus: 0 accepted, 1 block level reject, 2 account
    level reject; AllocRejCode: 0 unknown account, 1 incorrect quantity, 5 unknown OrderID, 7 other."""
    body = [(70, alloc_id), (75, time.strftime("%Y%m%d", time.gmtime(ts // 1_000_000_000))),
            (60, utc_timestamp(ts)), (87, str(status))]
    body += [(88, str(rej_code))] if rej_code is not None else []
    body += [(58, text)] if text else []
    return raw_message(begin_string, "P", body)


def business_reject(begin_string: str, ref_msg_type: str, reason: int, text: str,
                    ref_seq: str | None = None) -> fix.Message:
    """BusinessMessageReject (j): 3 = unsupported message type, 5 = conditionally required field missing."""
    body = [(45, ref_seq)] if ref_seq else []
    body += [(372, ref_msg_type), (380, str(reason)), (58, text)]
    return raw_message(begin_string, "j", body)


def market_data_request(begin_string: str, req_id: str, kind: str, symbols: list[str], depth: int = 1,
                        entry_types: str = "012") -> fix.Message:
    """MarketDataRequest (V). kind: 0 snapshot, 1 snapshot + updates, 2 unsubscribe;
    entry types: 0 bid, 1 offer, 2 trade; full refresh."""
    import quickfix42 as fix42
    import quickfix44 as fix44

    mod = fix42 if begin_string == "FIX.4.2" else fix44
    m = new_message("V")
    m.setField(262, req_id)
    m.setField(263, kind)
    m.setField(264, str(depth))
    m.setField(265, "0")
    kinds = mod.MarketDataRequest.NoMDEntryTypes()
    for entry in entry_types:
        kinds.setField(269, entry)
        m.addGroup(kinds)
    related = mod.MarketDataRequest.NoRelatedSym()
    for symbol in symbols:
        related.setField(55, symbol)
        m.addGroup(related)
    return m
