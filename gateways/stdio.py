"""Command gateway over standard input and output, one JSON object a line.

For scripting, operations and tests: each line is a command (the tagged Structs of
`oms.model`, prices in fixed point); every event is written back as a JSON line once
it is durable. A line that is not a valid command gets an `{"error": ...}` line and
changes nothing.
"""
from __future__ import annotations

import sys
import threading
from typing import IO, TYPE_CHECKING

import msgspec

from oms.model import Command, Event

if TYPE_CHECKING:
    from oms.runtime import Runtime

_decoder = msgspec.json.Decoder(Command)
_encoder = msgspec.json.Encoder()


class StdioGateway:
    def __init__(self, runtime: Runtime, inp: IO[bytes] | None = None, out: IO[bytes] | None = None) -> None:
        self.runtime = runtime
        self.inp = inp or sys.stdin.buffer
        self.out = out or sys.stdout.buffer
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def _write(self, line: bytes) -> None:
        with self._lock:
            self.out.write(line + b"\n")
            self.out.flush()

    def _reply(self, events: list[Event]) -> None:
        self._write(b"\n".join(_encoder.encode(ev) for ev in events) if events else b"[]")

    def serve(self) -> None:
        """Read until end of input; runs on its own thread."""
        try:
            for raw in self.inp:
                line = raw.strip()
                if not line:
                    continue
                try:
                    cmd = _decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self._write(_encoder.encode({"error": str(exc)}))
                    continue
                self.runtime.submit(cmd, self._reply)
        finally:
            self.finished.set()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve, name="stdio-gateway", daemon=True)
        t.start()
        return t
