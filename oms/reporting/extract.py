"""The report extract: the journal's records as the scan leaves them (`scan.Chunk`), kept
in files beside the journal (`<journal>.extract/`), so a report reads columns instead of
parsing every record's msgpack again (1,000,000 orders: 7.5 M records, 1.9 GB).

It is a cache, never a source of truth. A chunk file names its first and last record,
the journal's check (CRC) of both and the scan's layout, and carries a CRC of its body:
a report uses it only when all of these match the journal it reads and the code reading
it, and scans the journal otherwise (then writes the chunk again). Only whole chunks are
kept (`CHUNK` records, or the rest of an archive segment): the journal's tail is always
scanned. No fsync: a chunk lost or torn by a crash is scanned again.

Who writes it: any report that scanned a whole chunk the extract lacked, and in a running
OMS a `Keeper` that starts a low-priority process extending it whenever a few chunks
have been journaled since (the process lingers while trading goes on, then leaves).

    oms extract JOURNAL     # extend the extract of a journal now (exit 2: it cannot)
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import pyarrow as pa

from oms.reporting import scan

log = logging.getLogger("oms.reporting.extract")

CHUNK = 20_000  # records a chunk: small enough that SQLite and the kernel reuse memory the last chunk freed
VERSION = 2
# what a chunk's columns depend on: the fields read and how the kernel reads them
LAYOUT = hashlib.sha256(repr((VERSION, scan.HOT, scan.NESTED, scan.WHOLE)).encode()
                        + Path(scan.__file__).read_bytes()).hexdigest()[:16]
SUFFIX = ".chunk"
STALE_S = 600.0  # a temporary or unreachable file this old is left over (a write killed, a chain cut): deleted


class _File(msgspec.Struct, array_like=True):
    layout: str
    check: int  # CRC-32 of `body`: a chunk file torn or zeroed by a crash is never read as columns
    body: memoryview  # the Chunk, msgpack


_FILE = msgspec.msgpack.Decoder(_File)
_CHUNK = msgspec.msgpack.Decoder(scan.Chunk)


def _mapped(path: Path) -> pa.Buffer:
    """A file's bytes mapped from the page cache, its descriptor closed (the mapping lives as
    long as a column refers to it): on this kind of VM, faulting in fresh memory for a read
    costs more than the read. Chunk files are only ever replaced (renamed over), never
    changed in place, so the mapping stays whole."""
    with pa.memory_map(str(path), "r") as f:
        return f.read_buffer()


def directory(journal: Path) -> Path:
    """Where a journal's extract is kept: beside it, like its archive."""
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
                first, last, a, b, layout = p.name[:-len(SUFFIX)].split("-")
                if layout == LAYOUT:  # another's: left for `tidy`
                    self._index[int(first)] = (int(last), (int(a, 16), int(b, 16)), p)
            except ValueError:
                continue

    def find(self, first: int) -> tuple[int, tuple[int, int]] | None:
        """(last record, the checks of its first and last) of the chunk stored from `first`."""
        found = self._index.get(first)
        return None if found is None else found[:2]

    def _chain(self) -> list[tuple[int, Path]]:
        """(last record, file) of each chunk of the run from record 1, in order."""
        run, at = [], 0
        while (found := self._index.get(at + 1)) is not None:
            at = found[0]
            run.append((at, found[2]))
        return run

    def end(self) -> int:
        """The last record of the run of chunks from record 1 (0: none)."""
        run = self._chain()
        return run[-1][0] if run else 0

    def load(self, first: int) -> scan.Chunk | None:
        """The chunk stored from record `first` (None: unreadable, or not what its name says,
        or from another scan layout)."""
        found = self._index.get(first)
        if found is None:
            return None
        last, crcs, path = found
        try:
            f = _FILE.decode(_mapped(path))
            if f.layout != LAYOUT or zlib.crc32(f.body) != f.check:
                return None
            c = _CHUNK.decode(f.body)
        except (OSError, ValueError, msgspec.DecodeError):
            return None
        return c if (c.first, c.first + c.n - 1, c.crcs) == (first, last, crcs) else None

    def tidy(self) -> None:
        """Delete the files older than STALE_S that no run of chunks from record 1 reaches:
        temporary files (a write killed), another scan layout's chunks, chunks cut off (stored
        again with other bounds)."""
        reached = {path for _, path in self._chain()}
        old = time.time() - STALE_S
        try:
            files = [p for p in self.dir.iterdir() if p not in reached]
        except OSError:
            return
        for p in files:
            try:
                if p.stat().st_mtime < old:
                    p.unlink()
            except OSError:
                pass

    def store(self, chunk: scan.Chunk) -> None:
        """Write a chunk (another stored from the same record is replaced); the extract stops
        being written, said once, where the folder cannot be."""
        if not self.writable:
            return
        first, last = chunk.first, chunk.first + chunk.n - 1
        path = self.dir / f"{first:012d}-{last:012d}-{chunk.crcs[0]:08x}-{chunk.crcs[1]:08x}-{LAYOUT}{SUFFIX}"
        try:
            self.dir.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".", suffix=".tmp")
            try:
                body = msgspec.msgpack.encode(chunk)
                with os.fdopen(fd, "wb") as out:
                    out.write(msgspec.msgpack.encode(_File(LAYOUT, zlib.crc32(body), memoryview(body))))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self.writable = False
            why = f"{self.dir} is not a folder" if self.dir.exists() and not self.dir.is_dir() else exc
            log.warning("report extract not written (%s): reports scan the journal", why)
            return
        old = self._index.get(first)
        if old is not None and old[2] != path:
            old[2].unlink(missing_ok=True)
        self._index[first] = (last, chunk.crcs, path)


class ExtractError(Exception):
    """The extract cannot be written (a folder not writable, a full disk)."""


def extend(journal: Path, after: int = 0) -> int:
    """Scan and store every whole chunk the extract lacks after record `after` (the chunks
    up to it taken as checked), then delete left-over files; the last record of the run of
    chunks from record 1 the extract now holds."""
    from oms.reporting.facts import Reader

    reader = Reader(journal)
    try:
        reader.extend(after)
        assert reader.extract is not None
        if not reader.extract.writable:
            raise ExtractError(f"{reader.extract.dir}: cannot be written" if reader.extract.dir.is_dir() or not
                               reader.extract.dir.exists() else f"{reader.extract.dir} is not a folder")
        reader.extract.tidy()
        return reader.extract.end()
    finally:
        reader.close()


class Keeper:
    """In a running OMS: keeps the extract close behind the journal. When `behind` records
    are journaled past what it last saw extracted (checked every `check_s`), it starts
    `oms extract --follow` (nice 10), which extends the extract while
    whole chunks keep coming and leaves after `LINGER_S` without one. A run that fails (the
    extract cannot be written, a record cannot be read) is tried again `RETRY_S` later, not
    at once: reports scan meanwhile."""

    RETRY_S = 600.0

    def __init__(self, journal: Path, last_seq: Callable[[], int], behind: int = 3 * CHUNK,
                 check_s: float = 5.0) -> None:
        self.journal, self.last_seq, self.behind, self.check_s = journal, last_seq, behind, check_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="report-extract", daemon=True)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # a cache: a chunk half written is a temporary file, deleted later
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _seen(self) -> int:
        """The extract's end (0 when it is past the journal's: another journal's chunks)."""
        end = Extract(self.journal).end()
        return end if end <= self.last_seq() else 0

    def _loop(self) -> None:
        seen, retry_at = self._seen(), 0.0
        while not self._stop.wait(self.check_s):
            if self.proc is not None:
                code = self.proc.poll()
                if code is None:
                    continue
                self.proc, seen = None, self._seen()
                if code:
                    retry_at = time.monotonic() + self.RETRY_S
                    log.warning("the report extract process ended with exit code %s: tried again in %.0f s", code,
                                self.RETRY_S)
            if time.monotonic() >= retry_at and self.last_seq() - seen >= self.behind:
                self.proc = subprocess.Popen([sys.executable, "-m", "oms.cli", "extract", "--follow", str(os.getpid()),
                                              str(self.journal)], stdin=subprocess.DEVNULL)


LINGER_S = 60.0
POLL_S = 2.0


def keep_extending(journal: Path, follow: int | None = None) -> int:
    """`oms extract`: extend the extract once, or (`follow`: started by the OMS of that pid)
    for as long as whole chunks keep coming; 2 where it cannot."""
    from oms.reporting.facts import ReportError

    if follow:
        from oms.roles import die_with_parent

        die_with_parent()
        if os.getppid() != follow:
            return 0  # the OMS ended before this process could follow it
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `oms run`, which ends this process
        os.nice(10)
    t0 = time.perf_counter()
    idle_since, end = time.monotonic(), 0
    while True:
        try:
            now = extend(journal, end)
        except (ReportError, ExtractError) as exc:
            print(f"oms extract: {exc}", file=sys.stderr)
            return 2
        if now != end or not follow:
            log.info("report extract of %s holds records 1 to %d (%.1f s)", journal, now, time.perf_counter() - t0)
            end, idle_since = now, time.monotonic()
        if not follow or time.monotonic() - idle_since > LINGER_S:
            return 0
        time.sleep(POLL_S)
