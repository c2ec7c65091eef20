"""The report extract: the journal's records as the scan leaves them (`scan.Chunk`), kept
in files beside the journal (`<journal>.extract/`), so a report reads columns instead of
parsing every record's msgpack again (1,000,000 orders: 7.5 M records, 1.9 GB).

It is a cache, never a source of truth. A chunk file names its first and last record and
the journal's check (CRC) of both, and carries the scan's layout; a report uses it only
when all of these match the journal it reads, and scans the journal otherwise (then
writes the chunk again). Only whole chunks are kept (`CHUNK` records, or the rest of an
archive segment): the journal's tail is always scanned. No fsync: a chunk lost or torn by
a crash is scanned again.

Who writes it: any report that scanned a whole chunk the extract lacked, and in a running
OMS a `Keeper` that starts a low-priority process extending it whenever a few chunks
have been journaled since (the process lingers while trading goes on, then leaves).

    python -m oms.reporting.extract JOURNAL     # extend the extract of a journal now
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from oms.reporting import scan

log = logging.getLogger("oms.reporting.extract")

CHUNK = 20_000  # records a chunk: small enough that SQLite and the kernel reuse memory the last chunk freed
VERSION = 1
LAYOUT = f"{VERSION}:" + hashlib.sha256(repr((scan.HOT, scan.NESTED, scan.WHOLE)).encode()).hexdigest()[:16]
SUFFIX = ".chunk"


class _File(msgspec.Struct, array_like=True):
    layout: str
    chunk: scan.Chunk


_DECODER = msgspec.msgpack.Decoder(_File)


def _mapped(path: Path) -> mmap.mmap:
    """A file's bytes, mapped from the page cache at once (MAP_POPULATE): on this kind of
    VM faulting in fresh memory page by page, as a read into a new buffer does, costs more
    than the read. Chunk files are only ever replaced (renamed over), never changed in
    place, so the mapping stays whole while a chunk's columns refer to it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def directory(journal: Path) -> Path:
    return Path(f"{journal}.extract")


class Extract:
    """The chunk files of one journal, each named by its first and last record and their
    checks: `find` the one starting at a record, `load` it, `store` one scanned."""

    def __init__(self, journal: Path) -> None:
        self.dir = directory(journal)
        self.writable = True
        self._index: dict[int, tuple[int, tuple[int, int], Path]] = {}  # first seq -> (last seq, checks, file)
        try:
            paths = [p for p in self.dir.iterdir() if p.name.endswith(SUFFIX)]
        except OSError:
            paths = []
        for p in paths:
            try:
                first, last, a, b = p.name[:-len(SUFFIX)].split("-")
                self._index[int(first)] = (int(last), (int(a, 16), int(b, 16)), p)
            except ValueError:
                continue

    def find(self, first: int) -> tuple[int, tuple[int, int]] | None:
        """(last record, the checks of its first and last) of the chunk stored from `first`."""
        found = self._index.get(first)
        return None if found is None else found[:2]

    def end(self) -> int:
        """The last record of the run of chunks from record 1 (0: none)."""
        at = 0
        while (found := self.find(at + 1)) is not None:
            at = found[0]
        return at

    def load(self, first: int) -> scan.Chunk | None:
        """The chunk stored from record `first` (None: unreadable, or not what its name says,
        or from another scan layout)."""
        found = self._index.get(first)
        if found is None:
            return None
        last, crcs, path = found
        try:
            f = _DECODER.decode(_mapped(path))
        except (OSError, ValueError, msgspec.DecodeError):
            return None
        c = f.chunk
        return c if f.layout == LAYOUT and (c.first, c.first + c.n - 1, c.crcs) == (first, last, crcs) else None

    def store(self, chunk: scan.Chunk) -> None:
        """Write a chunk (another stored from the same record is replaced); the extract stops
        being written, said once, where the folder cannot be."""
        if not self.writable:
            return
        first, last = chunk.first, chunk.first + chunk.n - 1
        path = self.dir / f"{first:012d}-{last:012d}-{chunk.crcs[0]:08x}-{chunk.crcs[1]:08x}{SUFFIX}"
        try:
            self.dir.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(msgspec.msgpack.encode(_File(LAYOUT, chunk)))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self.writable = False
            log.warning("report extract not written (%s): reports scan the journal", exc)
            return
        old = self._index.get(first)
        if old is not None and old[2] != path:
            old[2].unlink(missing_ok=True)
        self._index[first] = (last, chunk.crcs, path)


def extend(journal: Path) -> int:
    """Scan and store every whole chunk of the journal the extract lacks; the last record
    the extract now holds from record 1 on."""
    from oms.reporting.facts import Reader

    reader = Reader(journal)
    try:
        reader.extend()
        return reader.extract.end() if reader.extract is not None else 0
    finally:
        reader.close()


class Keeper:
    """In a running OMS: keeps the extract close behind the journal. When `behind` records
    are journaled past what it last saw extracted (checked every `check_s`), it starts `python -m
    oms.reporting.extract --follow` (nice 10), which extends the extract while whole chunks
    keep coming and leaves after `LINGER_S` without one."""

    def __init__(self, journal: Path, last_seq: Callable[[], int], behind: int = 3 * CHUNK,
                 check_s: float = 5.0) -> None:
        self.journal, self.last_seq, self.behind, self.check_s = journal, last_seq, behind, check_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="report-extract", daemon=True)
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # a cache: a chunk half written is a temporary file, scanned again next time
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _loop(self) -> None:
        seen = Extract(self.journal).end()
        while not self._stop.wait(self.check_s):
            if self.proc is not None:
                if self.proc.poll() is None:
                    continue
                self.proc = None
                seen = Extract(self.journal).end()
            if self.last_seq() - seen >= self.behind:
                self.runs += 1
                self.proc = subprocess.Popen([sys.executable, "-m", "oms.reporting.extract", "--follow",
                                              str(self.journal)], stdin=subprocess.DEVNULL)


LINGER_S = 60.0
POLL_S = 2.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m oms.reporting.extract", description=__doc__.split("\n\n")[0])
    p.add_argument("journal", type=Path)
    p.add_argument("--follow", action="store_true",
                   help=f"keep extending while whole chunks keep coming; leave after {LINGER_S:g} s without one "
                        "(and with the process that started it)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from oms.reporting.facts import ReportError

    if args.follow:
        from oms.roles import die_with_parent

        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `oms run`, which ends this process
        os.nice(10)
    t0 = time.perf_counter()
    idle_since, end = time.monotonic(), -1
    while True:
        try:
            now = extend(args.journal)
        except ReportError as exc:
            print(f"report extract: {exc}", file=sys.stderr)
            return 2
        if now != end:
            log.info("report extract of %s holds records 1 to %d (%.1f s)", args.journal, now,
                     time.perf_counter() - t0)
            end, idle_since = now, time.monotonic()
        if not args.follow or time.monotonic() - idle_since > LINGER_S:
            return 0
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
