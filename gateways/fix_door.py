"""The trader FIX port's front door: only a Logon of a configured session reaches quickfix.

quickfix's acceptor gives every connection a thread at once and keeps it for as long as
the peer stays silent, buffers whatever BodyLength a peer announces, and, once a
session's connection closes, its thread polls the closed descriptor once more after the
application's onLogout callback (which waits for the interpreter lock): a connection
accepted meanwhile gets that descriptor number, the old thread polls the newcomer and,
if it stays silent, never ends, and its session stays registered, so the trader's next
Logon waits 5 s and is dropped. Hence this door, one thread in front of the acceptor:

* it accepts on the configured address and holds each connection until its first
  message, a Logon (35=A) naming a configured session (BeginString, SenderCompID,
  TargetCompID), arrives within `logon_timeout_s`; at most `max_pending` such
  connections in all and `max_pending_per_source` per source address (the oldest
  silent one makes way, so a trader always gets in while junk is held);
* a message longer than `max_message_bytes` (4 KiB before logon) closes the
  connection before it is buffered;
* it hands a session's Logon to quickfix only when no session is registered without a
  connection of the door's (a quickfix thread that has not ended yet), and keeps its
  own descriptors above a floor, so no descriptor quickfix just closed is reused by it;
* then it splices bytes both ways with a Unix socket to the quickfix acceptor, which
  listens nowhere else.
"""
from __future__ import annotations

import fcntl
import logging
import os
import resource
import selectors
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field

import quickfix as fix

from gateways.fix_session import bound_address, listener
from oms.config import FixConfig
from oms.metrics import Metrics

log = logging.getLogger("gateways.fix_door")

LOGON_MAX_BYTES = 4096  # a Logon, credentials included, fits in far less
_CHUNK = 65536
_TRAILER = 7  # "10=nnn<SOH>"


class FrameError(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


def frame(buf: bytes | bytearray, start: int, limit: int) -> int:
    """The end of the FIX message at buf[start:], 0 while incomplete; FrameError for a
    message over `limit` bytes or without FIX framing (8=...<SOH>9=<length><SOH>). Like
    quickfix's parser, the trailer is the first <SOH>10= from the end of the body on."""
    head = buf.find(b"\x01", start, start + 32)
    if head < 0:
        if len(buf) - start >= 32:
            raise FrameError("garbled", "no BeginString (8) field")
        return 0
    if len(buf) < head + 3:
        return 0
    if buf[start:start + 2] != b"8=" or buf[head + 1:head + 3] != b"9=":
        raise FrameError("garbled", "a message starts with BeginString (8) then BodyLength (9)")
    end = buf.find(b"\x01", head + 3, head + 13)
    if end < 0:
        if len(buf) - head > 13:
            raise FrameError("garbled", "BodyLength (9) is not a number")
        return 0
    digits = bytes(buf[head + 3:end])
    if not digits.isdigit():
        raise FrameError("garbled", "BodyLength (9) is not a number")
    body_end = end + 1 + int(digits)
    if body_end + _TRAILER - start > limit:
        raise FrameError("oversized", f"BodyLength (9) {int(digits)}: a message is at most {limit} bytes")
    if len(buf) < body_end:
        return 0
    trailer = buf.find(b"\x0110=", body_end - 1, start + limit)
    close = buf.find(b"\x01", trailer + 4, start + limit) if trailer >= 0 else -1
    if close < 0:
        if len(buf) - start >= limit:
            raise FrameError("oversized", f"no CheckSum (10) within {limit} bytes")
        return 0
    return close + 1


def logon_fields(msg: bytes) -> dict[int, str]:
    """The tags of a Logon's header and body, first occurrence of each."""
    out: dict[int, str] = {}
    for pair in msg.split(b"\x01")[:-1]:
        tag, _, value = pair.partition(b"=")
        if tag.isdigit():
            out.setdefault(int(tag), value.decode("latin-1"))
    return out


def _fd_floor(reserve: int) -> int:
    """The lowest descriptor number the door uses: above every number quickfix gets (it
    takes the lowest free one), with room for `reserve` above it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(65536, hard if hard != resource.RLIM_INFINITY else 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft // 2 < reserve:
        raise RuntimeError(f"the FIX door needs {2 * reserve} descriptors; the limit is {soft}")
    return soft // 2


@dataclass(eq=False)
class _Peer:
    sock: socket.socket
    source: str
    opened: float
    buf: bytearray = field(default_factory=bytearray)  # from the trader, not yet framed
    parsed: int = 0  # how much of buf is whole messages
    session: fix.SessionID | None = None  # set by a valid Logon
    inner: socket.socket | None = None  # to quickfix, once spliced
    to_outer: bytearray = field(default_factory=bytearray)
    to_inner: bytearray = field(default_factory=bytearray)


class FixDoor:
    """One thread: accepts traders on host:port, splices admitted sessions to `inner`."""

    def __init__(self, cfg: FixConfig, sessions: dict[tuple[str, str], fix.SessionID], metrics: Metrics) -> None:
        """sessions: (BeginString, trader CompID) -> the acceptor's SessionID."""
        self.cfg, self.sessions, self.metrics = cfg, sessions, metrics
        self._dir = tempfile.mkdtemp(prefix="oms-fix-")  # mode 0700, and short (Unix socket paths: 107 bytes)
        self.inner = os.path.join(self._dir, "acceptor")
        self.registered = fix.Session.isSessionRegistered  # a quickfix connection of the session is alive
        self._floor = _fd_floor(cfg.max_pending + 4 * len(sessions) + 16)
        self._sel = selectors.DefaultSelector()
        self._pending: dict[_Peer, None] = {}  # no Logon admitted yet, oldest first
        self._spliced: dict[fix.SessionID, _Peer] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sock: socket.socket | None = None

    def inner_listener(self) -> socket.socket:
        """The socket the quickfix acceptor behind the door accepts on (gateways.fix_session.Endpoint)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.inner)
        s.listen(socket.SOMAXCONN)
        return s

    def start(self) -> None:
        self.sock = self._high(listener(self.cfg.host, self.cfg.port))
        self.sock.setblocking(False)
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="fix-door", daemon=True)
        self._thread.start()
        log.info("trader FIX port on %s", bound_address(self.sock))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for peer in [*self._pending, *self._spliced.values()]:
            self._close(peer)
        if self.sock is not None:
            self._sel.unregister(self.sock)
            self.sock.close()
        self._sel.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        """Admissions and deadlines are looked at every 20 ms while a Logon waits, else
        every 250 ms: not after every message, which would cost the spliced traffic."""
        due, waiting = 0.0, False
        while not self._stop.is_set():
            for key, events in self._sel.select(0.02 if waiting else 0.25):
                try:
                    self._event(key, events)
                except Exception:  # one connection's trouble never stops the door
                    log.exception("FIX door: connection failed")
                    if key.data is not None:
                        self._close(key.data[0])
            waiting = any(p.session is not None for p in self._pending)
            now = time.monotonic()
            if waiting or now >= due:
                try:
                    self._admit_and_expire()
                except Exception:
                    log.exception("FIX door: admission failed")
                waiting = any(p.session is not None for p in self._pending)
                due = now + 0.25

    def _event(self, key: selectors.SelectorKey, events: int) -> None:
        if key.data is None:
            self._accept()
            return
        peer, inner = key.data
        if peer.sock.fileno() < 0:
            return  # closed earlier in this round
        if events & selectors.EVENT_WRITE:
            self._flush(peer)
        if events & selectors.EVENT_READ and peer.sock.fileno() >= 0:
            (self._from_inner if inner else self._from_outer)(peer)

    def _accept(self) -> None:
        assert self.sock is not None
        for _ in range(64):
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, or the peer left at once
                log.warning("FIX door: accept failed: %s", exc)
                return
            sock = self._high(sock)
            sock.setblocking(False)
            peer = _Peer(sock, addr[0] if isinstance(addr, tuple) else "local", time.monotonic())
            if not self._make_room(peer.source):
                self._refuse(peer, "total_cap", "every pending slot holds a valid Logon")
                continue
            self._pending[peer] = None
            self._sel.register(sock, selectors.EVENT_READ, (peer, False))
            self.metrics.fix_pending.set(len(self._pending))

    def _make_room(self, source: str) -> bool:
        """Close the oldest silent connection of `source` at its cap, and the oldest silent
        one at the total cap; False if only connections with a valid Logon are pending."""
        same = [p for p in self._pending if p.source == source]
        if len(same) >= self.cfg.max_pending_per_source:
            oldest = next((p for p in same if p.session is None), None)
            if oldest is None:
                return False
            self._refuse(oldest, "source_cap", f"more than {self.cfg.max_pending_per_source} connections from "
                                               f"{source} without a Logon")
        if len(self._pending) >= self.cfg.max_pending:
            oldest = next((p for p in self._pending if p.session is None), None)
            if oldest is None:
                return False
            self._refuse(oldest, "total_cap", f"more than {self.cfg.max_pending} connections without a Logon")
        return True

    def _from_outer(self, peer: _Peer) -> None:
        data = self._recv(peer, peer.sock)
        if data is None:
            return
        peer.buf += data
        limit = self.cfg.max_message_bytes if peer.inner is not None else LOGON_MAX_BYTES
        if peer.inner is None and len(peer.buf) > LOGON_MAX_BYTES:
            self._refuse(peer, "oversized", f"more than {LOGON_MAX_BYTES} bytes before the Logon is answered")
            return
        try:
            while (end := self._frame(peer, limit)):
                if peer.inner is None and peer.session is None and peer.parsed == 0:
                    self._check_logon(peer, bytes(peer.buf[:end]))
                    if peer.sock.fileno() < 0:
                        return
                peer.parsed = end
        except FrameError as exc:
            self._refuse(peer, exc.reason, str(exc))
            return
        if peer.inner is not None:
            self._forward(peer)

    @staticmethod
    def _frame(peer: _Peer, limit: int) -> int:
        """`frame` of the next message; after logon, bytes that are no FIX framing are dropped
        up to the next BeginString, as quickfix's parser drops them (the session stays up)."""
        while True:
            try:
                return frame(peer.buf, peer.parsed, limit)
            except FrameError as exc:
                if peer.inner is None or exc.reason != "garbled":
                    raise
                assert peer.session is not None
                log.info("FIX door: %s: %s; dropped up to the next BeginString (8)", peer.session.toString(), exc)
                nxt = peer.buf.find(b"8=", peer.parsed + 1)
                del peer.buf[peer.parsed:nxt if nxt >= 0 else max(peer.parsed, len(peer.buf) - 1)]
                if nxt < 0:
                    return 0

    def _forward(self, peer: _Peer) -> None:
        """The whole messages received so far go to quickfix."""
        peer.to_inner += peer.buf[:peer.parsed]
        del peer.buf[:peer.parsed]
        peer.parsed = 0
        self._flush(peer)

    def _check_logon(self, peer: _Peer, msg: bytes) -> None:
        f = logon_fields(msg)
        sid = self.sessions.get((f.get(8, ""), f.get(49, "")))
        if f.get(35) != "A":
            self._refuse(peer, "not_logon", f"first message is {f.get(35, '?')[:8]!r}, not a Logon (35=A)")
        elif sid is None or f.get(56) != self.cfg.comp_id:
            self._refuse(peer, "unknown_session", f"no session {f.get(8, '?')[:10]} {f.get(49, '?')[:32]!r} -> "
                                                  f"{f.get(56, '?')[:32]!r}")
        else:
            peer.session = sid

    def _admit_and_expire(self) -> None:
        now = time.monotonic()
        self._reap_spliced()
        zombie = any(self.registered(sid) for sid in self.sessions.values() if sid not in self._spliced)
        for peer in list(self._pending):
            sid = peer.session
            if sid is not None and not zombie and sid not in self._spliced and not self.registered(sid):
                self._splice(peer, sid)
                zombie = True  # one new quickfix connection per round
            elif now - peer.opened > self.cfg.logon_timeout_s:
                if sid is None:
                    self.metrics.fix_logon_timeouts.inc()
                    log.info("FIX door: no Logon from %s within %.1f s", peer.source, self.cfg.logon_timeout_s)
                    self._close(peer)
                else:
                    self._refuse(peer, "session_busy", f"session {sid.toString()} is still connected")

    def _reap_spliced(self) -> None:
        """Notice spliced connections quickfix has ended before deciding on a new one."""
        for peer in list(self._spliced.values()):
            assert peer.inner is not None
            try:
                gone = peer.inner.recv(1, socket.MSG_PEEK) == b""
            except (BlockingIOError, InterruptedError):
                gone = False
            except OSError:
                gone = True
            if gone:
                self._close(peer)

    def _splice(self, peer: _Peer, sid: fix.SessionID) -> None:
        inner = self._high(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            inner.connect(self.inner)
        except OSError as exc:
            inner.close()
            log.error("FIX door: cannot reach the acceptor at %s: %s", self.inner, exc)
            self._close(peer)
            return
        inner.setblocking(False)
        del self._pending[peer]
        self.metrics.fix_pending.set(len(self._pending))
        peer.inner = inner
        self._spliced[sid] = peer
        log.info("FIX door: %s from %s admitted", sid.getTargetCompID().getValue(), peer.source)
        self._forward(peer)  # the Logon and whatever came with it

    def _from_inner(self, peer: _Peer) -> None:
        assert peer.inner is not None
        data = self._recv(peer, peer.inner)
        if data is not None:
            peer.to_outer += data
            self._flush(peer)

    def _recv(self, peer: _Peer, sock: socket.socket) -> bytes | None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        if not data:
            self._close(peer)
            return None
        return data

    def _flush(self, peer: _Peer) -> None:
        """Send what is queued each way, then watch for what each socket needs: writability
        while output waits, readability unless its output is stuck at the other side (a slow
        peer makes the door stop reading, never buffer without bound)."""
        for buf, dst in ((peer.to_inner, peer.inner), (peer.to_outer, peer.sock)):
            if buf and dst is not None:
                try:
                    del buf[:dst.send(buf)]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._close(peer)
                    return
        cap = 2 * self.cfg.max_message_bytes
        self._watch(peer.sock, (peer, False), len(peer.to_inner) <= cap, bool(peer.to_outer))
        if peer.inner is not None:
            self._watch(peer.inner, (peer, True), len(peer.to_outer) <= cap, bool(peer.to_inner))

    def _watch(self, sock: socket.socket, data: tuple[_Peer, bool], read: bool, write: bool) -> None:
        events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        key = self._sel.get_map().get(sock) if sock.fileno() >= 0 else None
        if key is not None and key.events == events:
            return
        if events and key is not None:
            self._sel.modify(sock, events, data)
        elif events and sock.fileno() >= 0:
            self._sel.register(sock, events, data)
        elif key is not None:
            self._sel.unregister(sock)

    # ------------------------------------------------------------------ closing
    def _refuse(self, peer: _Peer, reason: str, text: str) -> None:
        self.metrics.fix_refused.labels(reason).inc()
        log.info("FIX door: closed %s: %s", peer.source, text)
        self._close(peer)

    def _close(self, peer: _Peer) -> None:
        self._pending.pop(peer, None)
        if peer.session is not None and self._spliced.get(peer.session) is peer:
            del self._spliced[peer.session]
        for sock in (peer.sock, peer.inner):
            if sock is not None and sock.fileno() >= 0:
                try:
                    self._sel.unregister(sock)
                except (KeyError, ValueError):
                    pass
                sock.close()
        self.metrics.fix_pending.set(len(self._pending))

    def _high(self, sock: socket.socket) -> socket.socket:
        """The same socket under a descriptor number above the floor (see the module doc)."""
        fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, self._floor)
        sock.close()
        return socket.socket(fileno=fd)
