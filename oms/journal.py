"""The journal: every event, durable before anyone is told of it. SQLite in WAL mode.

Records are opaque bytes with a sequence number and a CRC over both. `append` stages
records in the open transaction; `commit` makes all of them durable at once (one
fsync: the group commit). Opening a journal never hides damage: a torn WAL tail and
uncommitted frames that SQLite drops are measured before it drops them, records that
fail their CRC or break the sequence are cut off, and each repair is logged.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from oms.model import SCHEMA

log = logging.getLogger("oms.journal")

FORMAT_VERSION = "1"
_CHUNK = 10_000


class JournalError(Exception):
    """The file cannot be used as a journal; it is left untouched."""


def check_schema(path: Path, row: tuple[str] | None) -> int:
    """The event schema a journal's meta row records (1 before it was recorded); a journal
    written by a newer OMS is refused rather than misread."""
    schema = int(row[0]) if row is not None else 1
    if schema > SCHEMA:
        raise JournalError(f"{path}: written by a newer OMS (event schema {schema}; this one reads up to {SCHEMA})")
    return schema


class RecoveryReport(msgspec.Struct, frozen=True):
    kept: int
    discarded: int
    first_bad_seq: int | None
    torn_wal_bytes: int
    uncommitted_wal_frames: int
    detail: str


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little")))


def _wal_tail(path: Path) -> tuple[int, int]:
    """(torn bytes, complete frames after the last commit) of the WAL, read before SQLite recovers it.

    A WAL is a 32-byte header and frames of 24 + page_size bytes; a frame whose header
    has a non-zero "database size" ends a transaction, and frames belong to the current
    WAL generation while their salts match the header's.
    """
    wal = Path(f"{path}-wal")
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0, 0
    if len(data) < 32:
        return len(data), 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frame = 24 + page_size
    n_frames, torn = divmod(len(data) - 32, frame)
    after_commit = 0
    for i in range(n_frames):
        head = data[32 + i * frame: 32 + i * frame + 24]
        if head[8:16] != salts:
            break  # a frame of an older generation: not part of this WAL
        after_commit = 0 if struct.unpack(">I", head[4:8])[0] else after_commit + 1
    return torn, after_commit


class Journal:
    def __init__(self, path: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        torn, uncommitted = _wal_tail(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(fsync)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(f"{self.path}: not an OMS journal: {exc}") from exc
        except JournalError:
            self._db.close()
            raise
        self._in_tx = False
        self.recovery = self._verify(torn, uncommitted)

    def _prepare(self, fsync: bool) -> None:
        db = self._db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not {"records", "meta"} <= tables:
            raise JournalError(f"{self.path}: not an OMS journal (tables: {', '.join(sorted(tables))})")
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise JournalError(f"{self.path}: cannot switch to WAL mode")
        db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        if not tables:
            db.execute("BEGIN")
            db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, crc INTEGER NOT NULL, payload BLOB NOT NULL)")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT_VERSION,))
            db.execute("COMMIT")
        version = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        if version is None or version[0] != FORMAT_VERSION:
            raise JournalError(f"{self.path}: journal format {version and version[0]!r}, expected {FORMAT_VERSION}")
        schema = check_schema(self.path, db.execute("SELECT value FROM meta WHERE key='schema'").fetchone())
        if schema < SCHEMA:  # from now on it may hold this version's events
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))

    def _verify(self, torn: int, uncommitted: int) -> RecoveryReport | None:
        """Check every record in order; cut the journal at the first one that is not intact."""
        expected, bad = 1, None
        for seq, crc, payload in self._rows(1, with_crc=True):
            if seq != expected or not isinstance(payload, bytes) or crc != _crc(seq, payload):
                bad = expected if seq != expected else seq
                break
            expected += 1
        kept = expected - 1
        discarded = 0
        if bad is not None:
            discarded = self._db.execute("SELECT count(*) FROM records WHERE seq >= ?", (bad,)).fetchone()[0]
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM records WHERE seq >= ?", (bad,))
            self._db.execute("COMMIT")
        self._seq = kept
        if bad is None and not torn and not uncommitted:
            return None
        parts = []
        if torn or uncommitted:
            parts.append(f"dropped a torn WAL tail ({torn} bytes, {uncommitted} uncommitted frames)")
        if bad is not None:
            parts.append(f"record {bad} failed its check: discarded it and {discarded - 1} after it")
        detail = f"journal {self.path}: recovered {kept} records; " + "; ".join(parts)
        log.warning(detail)
        return RecoveryReport(kept, discarded, bad, torn, uncommitted, detail)

    def _rows(self, start: int, with_crc: bool = False) -> Iterator[tuple]:
        cols = "seq, crc, payload" if with_crc else "seq, payload"
        last = start - 1
        while True:
            rows = self._db.execute(
                f"SELECT {cols} FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (last, _CHUNK)
            ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    # ------------------------------------------------------------------ writing
    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def append(self, records: Sequence[bytes]) -> int:
        """Stage records in the open transaction; durable only after `commit`."""
        self._begin()
        first = self._seq + 1
        self._db.executemany(
            "INSERT INTO records (seq, crc, payload) VALUES (?, ?, ?)",
            [(seq, _crc(seq, rec), rec) for seq, rec in enumerate(records, first)],
        )
        self._seq += len(records)
        return self._seq

    def commit(self) -> None:
        """One transaction, one fsync, for everything appended since the last commit."""
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def set_meta(self, key: str, value: str) -> None:
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def metas(self, prefix: str) -> dict[str, str]:
        """Every meta value whose key starts with `prefix`, by the rest of the key."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {k[len(prefix):]: v for k, v in rows}

    # ------------------------------------------------------------------ reading
    @property
    def last_seq(self) -> int:
        return self._seq

    def record_crc(self, seq: int) -> int | None:
        """The CRC of record `seq` (None: no such record): what ties a snapshot to its journal."""
        row = self._db.execute("SELECT crc FROM records WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else row[0]

    def replay(self, start_seq: int = 1) -> Iterator[tuple[int, bytes]]:
        """Records from `start_seq` on, in order, read in chunks."""
        yield from self._rows(start_seq)

    def close(self) -> None:
        if self._in_tx:
            self._db.execute("ROLLBACK")  # never committed, never acknowledged
            self._in_tx = False
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JournalReader:
    """A second, read-only connection for followers (the stream publisher): WAL lets it read
    committed records while the engine writes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def last_seq(self) -> int:
        return self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]

    def after(self, seq: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        return self._db.execute(
            "SELECT seq, payload FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()

    def close(self) -> None:
        self._db.close()
