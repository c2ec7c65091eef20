"""What the engine process and the FIX gateway process say to each other, and how.

A Unix stream socket carries length-prefixed msgpack frames, batches both ways: the
gateway sends the commands its FIX sessions produced since its last frame, the engine
sends each group commit's journal records as they are (already msgpack, never re-encoded).
Measured on this machine (benchmarks/ipc_rate.py) a frame round trip is tens of
microseconds, below one journal commit; a shared-memory ring would save little and
needs its own wake-up.
"""
from __future__ import annotations

import socket
import struct
import threading

import msgspec

from oms.model import Command

_LEN = struct.Struct("<I")
MAX_FRAME = 256 * 1024 * 1024


class Hello(msgspec.Struct, tag=True):
    """Engine to gateway, first: where the journal stands when the gateway's feed starts.
    Every later Committed frame follows `last_seq` without a gap."""

    last_seq: int
    marks: dict[str, int]  # FIX source -> MsgSeqNum of its last durable message (oms.runtime.IN_MARK)


class Committed(msgspec.Struct, tag=True):
    """Engine to gateway: the records of one group commit, durable, in journal order."""

    first_seq: int
    records: list[bytes]


class Submit(msgspec.Struct, tag=True):
    """Gateway to engine: commands, each with the FIX message it came from (or None)."""

    commands: list[Command]
    origins: list[tuple[str, int] | None]


class SessionState(msgspec.Struct):
    name: str
    begin_string: str
    up: bool


class Status(msgspec.Struct, tag=True):
    """Gateway to engine, at start and every second: its sessions, its counters, and
    whether it has finished starting (reports recovered, trader port open)."""

    ready: bool
    traders: list[SessionState]
    venues: list[SessionState]
    counters: dict[str, float]  # metric sample name{labels} -> value (oms.metrics.GATEWAY_METRICS)
    recovered_reports: int = 0


Frame = Hello | Committed | Submit | Status
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Frame)


class Channel:
    """One end of the socket: `send` from any thread (serialised), `receive` from one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._buf = bytearray()

    def send(self, frame: Frame) -> None:
        payload = _ENCODER.encode(frame)
        with self._lock:
            self.sock.sendall(_LEN.pack(len(payload)) + payload)

    def receive(self) -> Frame | None:
        """The next frame; None when the other end has gone."""
        while True:
            if len(self._buf) >= 4:
                (n,) = _LEN.unpack_from(self._buf)
                if n > MAX_FRAME:
                    raise ValueError(f"frame of {n} bytes")
                if len(self._buf) >= 4 + n:
                    data = bytes(self._buf[4:4 + n])
                    del self._buf[:4 + n]
                    return _DECODER.decode(data)
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return None
            if not chunk:
                return None
            self._buf += chunk

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
