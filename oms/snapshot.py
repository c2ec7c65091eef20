"""Snapshots: the whole derived state at one journal record, so that start-up loads the
latest and replays only the records after it.

A snapshot holds the engine's state and its compliance state (orders, children, their
indexes, the crossing book, the children awaiting an answer, allocations, the trading
day; exposure, positions and cash, windows, kill switches, limits, breaches) as one
pickle, behind a header naming the journal record it stands for, that record's CRC, the
state hash and a fingerprint of the configuration it was derived under. One that does
not match its journal (a record cut off, another journal) or its configuration (other
accounts, instruments or limits: their state would differ from a replay) is passed
over, and the journal replayed from further back. Files are written whole (temporary
file, fsync, rename), so a crash never leaves half of one.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import pickle
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from oms.journal import Journal, JournalError, archive, durable_replace
from oms.model import DayEnded

if TYPE_CHECKING:
    from oms.config import Config
    from oms.engine import Engine

log = logging.getLogger("oms.snapshot")

MAGIC = b"OMSSNAP1"
KEEP = 3  # snapshots kept; older ones are deleted once a new one is durable


class SnapshotError(Exception):
    """A snapshot file that cannot be used."""


class Header(msgspec.Struct, frozen=True):
    seq: int  # the last journal record the state holds
    record_crc: int  # that record's CRC (0 for none): the snapshot belongs to this journal
    state_hash: str
    fingerprint: str  # of the configuration the state was derived under
    crc: int  # of the payload
    orders: int = 0


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector off while millions of objects are made at once (a snapshot, a
    replay): it would walk them all again and again, for garbage there is none of. What
    was made is then frozen out of its reach: state that lives as long as the process."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def freeze(state: object, compliance: object) -> bytes:
    with no_gc():
        return pickle.dumps((state, compliance), protocol=5)


def thaw(payload: bytes) -> tuple:
    """(state, compliance) of a snapshot's payload."""
    with no_gc():
        return pickle.loads(payload)


def directory(journal_path: Path) -> Path:
    """Where a journal's snapshots live: beside it, `<journal>.snapshots/`."""
    return Path(f"{journal_path}.snapshots")


def fingerprint(*parts: object) -> str:
    """What the derived state depends on besides the events (reference data, limits)."""
    return hashlib.sha256(msgspec.msgpack.encode(parts, order="sorted")).hexdigest()


def write(folder: Path, journal: Journal, state: object, compliance: object, state_hash: str, fp: str,
          orders: int = 0) -> Path:
    """Write a snapshot of `state` and `compliance`, which hold every journal record so far."""
    seq = journal.last_seq
    payload = freeze(state, compliance)
    header = msgspec.msgpack.encode(Header(seq, journal.record_crc(seq) or 0, state_hash, fp, zlib.crc32(payload),
                                           orders))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seq:015d}.snapshot"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header)
        f.write(payload)
    durable_replace(tmp, path)
    for old in sorted(folder.glob("*.snapshot"))[:-KEEP]:
        old.unlink()
    return path


def read_header(path: Path) -> tuple[Header, int]:
    """The header and where the payload starts."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
            raise SnapshotError(f"{path}: not an OMS snapshot")
        (n,) = struct.unpack("<I", head[len(MAGIC):])
        try:
            return msgspec.msgpack.decode(f.read(n), type=Header), len(head) + n
        except msgspec.DecodeError as exc:
            raise SnapshotError(f"{path}: damaged header: {exc}") from exc


def read_payload(path: Path) -> tuple[Header, bytes]:
    header, start = read_header(path)
    payload = path.read_bytes()[start:]
    if zlib.crc32(payload) != header.crc:
        raise SnapshotError(f"{path}: damaged (CRC mismatch)")
    return header, payload


def latest(folder: Path, journal: Journal, fp: str, until: int = 0) -> tuple[Header, bytes] | None:
    """The newest snapshot that belongs to this journal and configuration (and holds no
    record after `until`, when given); those passed over are logged."""
    for path in sorted(folder.glob("*.snapshot"), reverse=True):
        try:
            header, payload = read_payload(path)
        except (OSError, SnapshotError) as exc:
            log.warning("snapshot passed over: %s", exc)
            continue
        if until and header.seq > until:
            continue
        if header.seq > journal.last_seq or (journal.record_crc(header.seq) or 0) != header.record_crc:
            log.warning("snapshot %s passed over: the journal does not hold its record %d", path, header.seq)
            continue
        if header.fingerprint != fp:
            log.warning("snapshot %s passed over: taken under another configuration", path)
            continue
        return header, payload
    return None


class Snapshots:
    """The snapshots of one journal, under one configuration."""

    def __init__(self, journal: Journal, cfg: Config,
                 on_writer: Callable[[Callable[[], None]], None] | None = None) -> None:
        """`on_writer(fn)`: runs fn where the journal's writer runs (a running OMS's journal
        thread), for the archive's deletes; None: nothing else writes the journal."""
        self.journal = journal
        self.on_writer = on_writer
        self.folder = directory(journal.path)
        self.fp = fingerprint(cfg.reference_data(), cfg.risk)
        self.archiving = cfg.journal.archive
        self._archiver: threading.Thread | None = None

    def take(self, engine: Engine) -> Path:
        """Snapshot the engine's state; it must hold every journal record and no more."""
        t0 = time.perf_counter()
        state = engine.state
        path = write(self.folder, self.journal, state, engine.compliance, state.state_hash(), self.fp,
                     len(state.orders))
        log.info("snapshot %s: %d orders at record %d in %.3f s", path, len(state.orders), self.journal.last_seq,
                 time.perf_counter() - t0)
        if self.archiving and (self._archiver is None or not self._archiver.is_alive()):  # else the next one will
            oldest = int(min(self.folder.glob("*.snapshot")).stem)
            self._archiver = threading.Thread(target=self._archive, args=(oldest,), name="oms-archive", daemon=True)
            self._archiver.start()
        return path

    def _archive(self, before: int) -> None:
        """The records before the oldest snapshot kept out of the live journal, off the
        engine's thread: a start-up never reads them, and the kept snapshots can each be
        fallen back on. A failure is logged; the next snapshot tries again."""
        try:
            on_writer, journal = self.on_writer, self.journal
            drop = None if on_writer is None else lambda upto: on_writer(lambda: journal.drop_through(upto))
            done = archive(journal.path, before, drop=drop)
        except (OSError, sqlite3.Error, JournalError) as exc:
            log.error("journal %s: archiving the records before %d failed: %s", self.journal.path, before, exc)
            return
        if done is not None:
            log.info("journal %s: %d records before %d archived%s in %.3f s (write %.3f s, delete %.3f s, "
                     "the longest delete transaction %.1f ms)", self.journal.path, done.records, before,
                     f" to {done.segment}" if done.segment else "", done.write_s + done.delete_s, done.write_s,
                     done.delete_s, done.longest_lock_s * 1e3)

    def wait(self) -> None:
        """Until an archiving under way is done."""
        if self._archiver is not None:
            self._archiver.join()

    def find(self, until: int = 0) -> tuple[bytes, int] | None:
        """The latest usable snapshot (holding no record after `until`) as an Engine takes it:
        (payload, the journal record it holds)."""
        found = latest(self.folder, self.journal, self.fp, until)
        return None if found is None else (found[1], found[0].seq)

    def at_end_of_day(self, request: Callable[[Callable[[Engine], object]], None]) -> Callable[[list], None]:
        """A runtime listener: once a DayEnded is durable, `request` a snapshot on the engine's thread."""
        def listen(events: list) -> None:
            if any(type(ev) is DayEnded for ev in events):
                request(self.take)
        return listen
