"""The journal: every event, durable before anyone is told of it. SQLite in WAL mode.

Records are opaque bytes with a sequence number and a CRC over both. `append` stages
records in the open transaction; `commit` makes all of them durable at once (one
fsync: the group commit). Opening a journal never hides damage: a torn WAL tail and
uncommitted frames that SQLite drops are measured before it drops them, records that
fail their CRC or break the sequence are cut off, and each repair is logged.

History older than the oldest kept snapshot may be archived: moved into segment files
beside the journal (`segments`), read by `Journal.replay`, `Journal.record_crc` and
`JournalReader.after` as if it had never left.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec

from oms.model import SCHEMA

log = logging.getLogger("oms.journal")

FORMAT_VERSION = "1"
_CHUNK = 10_000
ARCHIVED = "archived"  # meta: the last seq moved out of the live journal into the archive


class JournalError(Exception):
    """The file cannot be used as a journal; it is left untouched."""


def check_schema(path: Path, row: tuple[str] | None) -> int:
    """The event schema a journal's meta row records (1 before it was recorded); a journal
    written by a newer OMS is refused rather than misread."""
    schema = int(row[0]) if row is not None else 1
    if schema > SCHEMA:
        raise JournalError(f"{path}: written by a newer OMS (event schema {schema}; this one reads up to {SCHEMA})")
    return schema


def archive_dir(path: str | os.PathLike) -> Path:
    """Where a journal's archive segments live: beside it, `<journal>.archive/`."""
    return Path(f"{path}.archive")


def segments(path: str | os.PathLike) -> list[Path]:
    """Every file holding a journal's records, oldest first: its archive segments
    (`<journal>.archive/<first>-<last>.journal`, zero-padded: name order is seq order),
    then the live journal. Each is an SQLite database with the journal's `records` (seq,
    crc, payload) and `meta` (format, schema) tables. Segments may overlap (a crash
    between an archive's write and the delete from the live journal, or a read while the
    delete runs): a reader takes each seq once, from the first file holding it, by
    reading each file from after the last seq it took (`seq > ?`)."""
    return sorted(archive_dir(path).glob("*.journal")) + [Path(path)]


def _span(segment: Path) -> tuple[int, int]:
    first, last = segment.stem.split("-")
    return int(first), int(last)


def _after(db: sqlite3.Connection, seq: int, limit: int, cols: str = "seq, payload") -> list[tuple]:
    return db.execute(f"SELECT {cols} FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()


class _Archive:
    """A journal's archive segments, each opened read-only when first read; the list is
    looked at again when a seq is asked for that no segment known holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._spans: list[tuple[int, int, Path]] = []
        self._dbs: dict[Path, sqlite3.Connection] = {}

    def last(self) -> int:
        self._refresh()
        return max((last for _, last, _ in self._spans), default=0)

    def after(self, seq: int, limit: int, cols: str) -> list[tuple]:
        """Records after `seq` from the first segment holding any ([] when none does)."""
        for known in (True, False):
            if not known:
                self._refresh()
            for _first, last, segment in self._spans:
                if last > seq:
                    return _after(self._db(segment), seq, limit, cols)
        return []

    def _refresh(self) -> None:
        self._spans = [(*_span(s), s) for s in segments(self.path)[:-1]]

    def _db(self, segment: Path) -> sqlite3.Connection:
        if segment not in self._dbs:
            self._dbs[segment] = sqlite3.connect(f"file:{segment}?mode=ro", uri=True, check_same_thread=False)
        return self._dbs[segment]

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()


def _history(live: sqlite3.Connection, archive: _Archive, seq: int, limit: int,
             cols: str = "seq, payload") -> list[tuple]:
    """Up to `limit` records after `seq`, in order: from the live journal, or from the
    archive when the live journal no longer starts right after `seq`. The archive holds
    only records older than the live journal's, so a reader that has caught up never looks
    there; a record in neither (an archive moved away) is an error, never skipped."""
    rows = _after(live, seq, limit, cols)
    if not rows or rows[0][0] == seq + 1:
        return rows
    older = archive.after(seq, limit, cols)
    if not older or older[0][0] != seq + 1:
        raise JournalError(f"{archive.path}: record {seq + 1} is neither in the journal (which goes on at "
                           f"{rows[0][0]}) nor in its archive {archive_dir(archive.path)}")
    return older


class RecoveryReport(msgspec.Struct, frozen=True):
    kept: int
    discarded: int
    first_bad_seq: int | None
    torn_wal_bytes: int
    uncommitted_wal_frames: int
    detail: str


def crc(seq: int, payload: bytes) -> int:
    """A record's check: over its seq and bytes (what the records table keeps beside each)."""
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
        self._archive = _Archive(self.path)
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
        """Check every record in order; cut the journal at the first one that is not intact.
        The live journal starts after what was archived."""
        expected, bad = int(self.get_meta(ARCHIVED) or 0) + 1, None
        for seq, check, payload in self._live_rows():
            if seq != expected or not isinstance(payload, bytes) or check != crc(seq, payload):
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

    def _live_rows(self) -> Iterator[tuple[int, int, bytes]]:
        seq = 0
        while rows := _after(self._db, seq, _CHUNK, "seq, crc, payload"):
            yield from rows
            seq = rows[-1][0]

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
            [(seq, crc(seq, rec), rec) for seq, rec in enumerate(records, first)],
        )
        self._seq += len(records)
        return self._seq

    def commit(self) -> None:
        """One transaction, one fsync, for everything appended since the last commit."""
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def drop_through(self, upto: int) -> None:
        """By the writer, between two commits: archived records through `upto` out of the
        live journal (see `archive`)."""
        if self._in_tx:
            raise JournalError("records are staged and not committed: drop archived ones after the commit")
        _drop_through(self._db, upto)

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
        if seq < 1:
            return None
        rows = _history(self._db, self._archive, seq - 1, 1, "seq, crc")
        return rows[0][1] if rows and rows[0][0] == seq else None

    def replay(self, start_seq: int = 1) -> Iterator[tuple[int, bytes]]:
        """Records from `start_seq` on, in order, read in chunks: from the archive while
        they are older than the live journal."""
        seq = start_seq - 1
        while rows := _history(self._db, self._archive, seq, _CHUNK):
            yield from rows
            seq = rows[-1][0]

    def close(self) -> None:
        if self._in_tx:
            self._db.execute("ROLLBACK")  # never committed, never acknowledged
            self._in_tx = False
        self._archive.close()
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Archived(msgspec.Struct, frozen=True):
    """What one `archive` did: the segment it wrote (None: it only finished a delete),
    the records that left the live journal, and how long its deletes took."""
    segment: str | None
    records: int
    write_s: float
    delete_s: float
    longest_lock_s: float  # the longest one delete took (waiting for the writer's turn included)


def archive(path: str | os.PathLike, before: int, chunk: int = 500,
            drop: Callable[[int], None] | None = None) -> Archived | None:
    """Move the live journal's records before seq `before` into a new archive segment.

    The segment is written whole (temporary file, fsync, rename) before any record leaves
    the live journal; the delete then runs in transactions of `chunk` records, each
    moving the meta mark `archived`. A crash in between leaves records in both (readers
    take each once), and the next call finishes the delete. `drop(upto)` deletes through
    `upto`: in a running OMS the journal's own writer does it between two commits
    (`Journal.drop_through` on the journal thread), so there is one writer and a commit
    waits for one chunk at most; without one, a connection of this call's own does.
    """
    path = Path(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (ARCHIVED,)).fetchone()
        done = int(row[0]) if row else 0
        written = max((_span(s)[1] for s in segments(path)[:-1]), default=0)
        first, last = max(done, written) + 1, before - 1
        t0 = time.perf_counter()
        segment = _write_segment(path, first, last) if last >= first else None
        write_s = time.perf_counter() - t0
        upto = max(written, last)
        if upto <= done:
            return None
        if drop is None:
            db.execute("PRAGMA synchronous=NORMAL")  # a delete lost to a power cut leaves records in both: read once
            drop = lambda hi: _drop_through(db, hi)  # noqa: E731
        t0, longest, lo = time.perf_counter(), 0.0, done
        while lo < upto:
            hi = min(lo + chunk, upto)
            t1 = time.perf_counter()
            drop(hi)
            longest, lo = max(longest, time.perf_counter() - t1), hi
        return Archived(segment and str(segment), upto - done, write_s, time.perf_counter() - t0, longest)
    finally:
        db.close()


def _drop_through(db: sqlite3.Connection, upto: int) -> None:
    """Archived records through `upto` out of the live journal, with the mark that says so,
    in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM records WHERE seq <= ?", (upto,))
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ARCHIVED, str(upto)))
    db.execute("COMMIT")


def _write_segment(path: Path, first: int, last: int) -> Path:
    """Records first..last of the live journal, with their CRCs and the journal's format and
    schema, as `<journal>.archive/<first>-<last>.journal`: the file is whole or absent."""
    folder = archive_dir(path)
    folder.mkdir(exist_ok=True)
    final = folder / f"{first:015d}-{last:015d}.journal"
    # a name of its own: two archivings of the same records at once (each snapshot's own, on
    # a slow disk) must never rename the other's half-written file into place
    fd, name = tempfile.mkstemp(prefix=final.stem + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        seg = sqlite3.connect(f"file:{tmp}", uri=True, isolation_level=None)
        try:
            seg.execute("PRAGMA journal_mode=OFF")  # a temporary file: whole, or thrown away
            seg.execute("ATTACH DATABASE ? AS live", (f"file:{path}?mode=ro",))
            seg.execute("BEGIN")
            seg.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, crc INTEGER NOT NULL, payload BLOB NOT NULL)")
            seg.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            seg.execute("INSERT INTO meta SELECT key, value FROM live.meta WHERE key IN ('format', 'schema')")
            seg.execute("INSERT INTO records SELECT seq, crc, payload FROM live.records WHERE seq BETWEEN ? AND ?",
                        (first, last))
            n, lo, hi = seg.execute("SELECT count(*), min(seq), max(seq) FROM records").fetchone()
            if (n, lo, hi) != (last - first + 1, first, last):
                raise JournalError(f"{path}: records {first}..{last} are not all in the live journal ({n} of them)")
            seg.execute("COMMIT")
        finally:
            seg.close()
        durable_replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # thrown away unless it was renamed into place
    return final


def durable_replace(tmp: Path, final: Path) -> None:
    """Make a file written under a temporary name durable, then give it its name durably:
    readers see it whole or not at all, before and after a crash."""
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalReader:
    """A second, read-only connection for followers (the stream publisher): WAL lets it read
    committed records while the engine writes, archived ones included."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._archive = _Archive(Path(path))

    def last_seq(self) -> int:
        live = self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        return live or self._archive.last()

    def after(self, seq: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Up to `limit` records after `seq`, in order, wherever they are kept."""
        return _history(self._db, self._archive, seq, limit)

    def close(self) -> None:
        self._archive.close()
        self._db.close()
