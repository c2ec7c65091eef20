"""The journal's records read straight into columns: a Numba scan of the msgpack bytes.

Decoding every record into a Python object, and then reading its fields back out, was
most of a report's time. Here one pass over a chunk of records (one blob from SQLite)
writes, per record, its kind and the fields the reports use: integers into int64
columns, text as (offset, length) into the blob, gathered into Arrow string columns
without a Python object per value. Events the reports need whole (compliance,
allocations, splits: a few) are decoded by msgspec from their bytes; other kinds give
their time only.

`scan_ref` is the plain-Python reference (msgspec's own decoding) of `columns`; a
property test holds them equal.
"""
from __future__ import annotations

import queue

import msgspec
import numpy as np
import pyarrow as pa
from numba import njit

from oms.journal import crc
from oms.model import Event

# kind -> its fields the reports read as columns: "i" int (or None), "s" str (or None),
# "NewOrder" the nested order's own fields
HOT: dict[str, tuple[tuple[str, str], ...]] = {
    "OrderAccepted": (("ts", "i"), ("order_id", "s"), ("venue", "s"), ("order", "NewOrder")),
    "ExecutionReport": (("ts", "i"), ("order_id", "s"), ("exec_id", "s"), ("exec_type", "s"), ("ord_status", "s"),
                        ("account", "s"), ("symbol", "s"), ("side", "s"), ("order_qty", "i"), ("cum_qty", "i"),
                        ("cum_value", "i"), ("last_qty", "i"), ("last_px", "i"), ("price", "i"),
                        ("exec_ref_id", "s"), ("text", "s"), ("restatement_reason", "i")),
    "ChildOrderSent": (("ts", "i"), ("child_id", "s"), ("order_id", "s"), ("venue", "s"), ("cl_ord_id", "s"),
                       ("symbol", "s"), ("qty", "i"), ("price", "i")),
    "ChildReplaceSent": (("ts", "i"), ("child_id", "s"), ("qty", "i"), ("price", "i")),
    "ChildUpdated": (("ts", "i"), ("child_id", "s"), ("status", "s"), ("qty", "i"), ("cum_qty", "i"),
                     ("price", "i"), ("venue_exec_id", "s"), ("fill_exec_id", "s")),
    "BestPrice": (("ts", "i"), ("symbol", "s"), ("bid", "i"), ("ask", "i")),
}
NESTED = {"NewOrder": (("session", "s"), ("cl_ord_id", "s"), ("account", "s"), ("symbol", "s"), ("side", "s"),
                       ("ord_type", "s"), ("qty", "i"), ("price", "i"), ("tif", "s"))}
# decoded whole (msgspec) from their bytes
WHOLE = ("OrderRejected", "CancelRejected", "ComplianceAlert", "RiskChanged", "AllocationBooked",
         "AllocationCanceled", "AllocationRejected", "SplitApplied")
KINDS = (*HOT, *WHOLE, "other")  # a record's kind: its index here
OTHER = len(KINDS) - 1
_INT, _STR, _MAP = 0, 1, 3
_ONE = msgspec.msgpack.Decoder(Event)


def _layout() -> tuple[np.ndarray, ...]:
    """The field tables as arrays for the kernel: per table (each kind, then the nested
    order), its type name and fields (name, kind, slot, nested table). Ints and text have
    slots of their own, each kind its own run of both (a nested order's within its kind's):
    `ints` and `texts`, the first of each kind's."""
    names: list[bytes] = [b"type"]  # name 0: the tag's key
    tables = [(k, HOT.get(k, (("ts", "i"),))) for k in KINDS] + list(NESTED.items())
    fstart, fname, fkind, fslot, fsub, tname, ints, texts = [0], [], [], [], [], [], [], []
    slot, nested_at = [0, 0], {}  # the next int slot, the next text slot
    for g, (kind, fields) in enumerate(tables):
        tname.append(len(names))
        names.append(kind.encode())
        if g < len(KINDS):
            ints.append(slot[0])
            texts.append(slot[1])
        else:
            slot = list(nested_at[kind])
        for name, k in fields:
            fname.append(len(names))
            names.append(name.encode())
            fkind.append({"i": _INT, "s": _STR}.get(k, _MAP))
            fsub.append(len(KINDS) + list(NESTED).index(k) if k in NESTED else -1)
            if k in NESTED:
                fslot.append(-1)
                nested_at[k] = tuple(slot)
                slot[0] += sum(sk == "i" for _, sk in NESTED[k])
                slot[1] += sum(sk == "s" for _, sk in NESTED[k])
            else:
                fslot.append(slot[k == "s"])
                slot[k == "s"] += 1
        fstart.append(len(fname))
    ints.append(max(s for s, k in zip(fslot, fkind) if k == _INT) + 1)
    texts.append(max(s for s, k in zip(fslot, fkind) if k == _STR) + 1)
    at = np.cumsum([0] + [len(n) for n in names])
    return (np.frombuffer(b"".join(names), np.uint8), at.astype(np.int64), np.array(tname, np.int64),
            np.array(fstart, np.int64), np.array(fname, np.int64), np.array(fkind, np.int64),
            np.array(fslot, np.int64), np.array(fsub, np.int64), np.array(ints, np.int64), np.array(texts, np.int64))


_TABLES = _layout()
INTS, TEXTS = int(_TABLES[-2][-1]), int(_TABLES[-1][-1])


def slots(kind: str) -> list[tuple[str, str, int]]:
    """(field, "i"/"s", slot among the ints or the texts) of a hot kind's columns; the
    nested order's as order.<field>."""
    g = KINDS.index(kind)
    out, slot = [], {"i": int(_TABLES[-2][g]), "s": int(_TABLES[-1][g])}
    for name, k in HOT[kind]:
        for field, fk in ([(f"{name}.{sub}", sk) for sub, sk in NESTED[k]] if k in NESTED else [(name, k)]):
            out.append((field, fk, slot[fk]))
            slot[fk] += 1
    return out


# ---------------------------------------------------------------- the kernel
@njit(cache=True, inline="always")
def _uint(blob, p, n):
    v = 0
    for k in range(n):
        v = (v << 8) | np.int64(blob[p + k])
    return v


@njit(cache=True, inline="always")
def _head(blob, p):
    """(kind, size or value, position after the header) of the msgpack value at p: kind 0
    int (value), 1 str (length), 2 nil, 3 bool (value), 4 map (entries), 5 array (items),
    6 other (bytes to skip); -1 on bytes that are not msgpack, or an int beyond int64."""
    b = np.int64(blob[p])
    if b <= 0x7F:
        return 0, b, p + 1
    if b >= 0xE0:
        return 0, b - 256, p + 1
    if 0xA0 <= b <= 0xBF:
        return 1, b - 0xA0, p + 1
    if 0x80 <= b <= 0x8F:
        return 4, b - 0x80, p + 1
    if 0x90 <= b <= 0x9F:
        return 5, b - 0x90, p + 1
    if b == 0xC0:
        return 2, 0, p + 1
    if b == 0xC2 or b == 0xC3:
        return 3, b - 0xC2, p + 1
    if 0xCC <= b <= 0xCF:
        n = 1 << (b - 0xCC)
        if n == 8 and blob[p + 1] >= 0x80:
            return -1, 0, p
        return 0, _uint(blob, p + 1, n), p + 1 + n
    if 0xD0 <= b <= 0xD3:
        n = 1 << (b - 0xD0)
        v = _uint(blob, p + 1, n)
        if n < 8 and v >= 1 << (8 * n - 1):
            v -= 1 << (8 * n)
        return 0, v, p + 1 + n
    if 0xD9 <= b <= 0xDB:
        n = 1 << (b - 0xD9)
        return 1, _uint(blob, p + 1, n), p + 1 + n
    if b == 0xDC or b == 0xDD:
        n = 2 if b == 0xDC else 4
        return 5, _uint(blob, p + 1, n), p + 1 + n
    if b == 0xDE or b == 0xDF:
        n = 2 if b == 0xDE else 4
        return 4, _uint(blob, p + 1, n), p + 1 + n
    if 0xC4 <= b <= 0xC6:  # bin
        n = 1 << (b - 0xC4)
        return 6, _uint(blob, p + 1, n), p + 1 + n
    if b == 0xCA or b == 0xCB:
        return 6, 4 if b == 0xCA else 8, p + 1
    if 0xD4 <= b <= 0xD8:  # fixext: a type byte and 1..16 bytes
        return 6, 1 + (1 << (b - 0xD4)), p + 1
    if 0xC7 <= b <= 0xC9:  # ext: its length, a type byte, the bytes
        n = 1 << (b - 0xC7)
        return 6, 1 + _uint(blob, p + 1, n), p + 1 + n
    return -1, 0, p


@njit(cache=True)
def _skip(blob, p):
    """The position after the value at p (maps and arrays with all they hold); -1 if malformed."""
    left = 1
    while left:
        left -= 1
        k, v, p = _head(blob, p)
        if k < 0:
            return -1
        if k == 1 or k == 6:
            p += v
        elif k == 4:
            left += 2 * v
        elif k == 5:
            left += v
    return p


@njit(cache=True, inline="always")
def _is(blob, p, n, names, name_at, k):
    """Whether the n bytes at p are name k."""
    a = name_at[k]
    if name_at[k + 1] - a != n:
        return False
    for j in range(n):
        if blob[p + j] != names[a + j]:
            return False
    return True


@njit(cache=True, inline="always")
def _same(blob, a, b, n):
    for j in range(n):
        if blob[a + j] != blob[b + j]:
            return False
    return True


_KEYS = 64  # keys of a map whose place is remembered


@njit(cache=True)
def _fields(blob, p, entries, g, r, names, name_at, fstart, fname, fkind, fslot, fsub, vals, present, offs, lens,
            seen_at, seen_n, seen_f):
    """Read a map's entries against table g into row r of its slots (a nested map's against
    its own table, then back); the position after it (-1: malformed)."""
    left, count, outer_left, outer = entries, entries, 0, -1
    while left or outer >= 0:
        if not left:
            left, count, g, outer = outer_left, entries, outer, -1
            continue
        left -= 1
        k, n, p = _head(blob, p)
        if k != 1:
            return -1
        j = min(count - left - 1, _KEYS - 1)
        if seen_n[g, j] == n and _same(blob, seen_at[g, j], p, n):
            f = seen_f[g, j]  # the key the last record of its kind had here (msgspec keeps the fields' order)
        else:
            f = fstart[g]
            while f < fstart[g + 1] and not _is(blob, p, n, names, name_at, fname[f]):
                f += 1
            seen_at[g, j], seen_n[g, j], seen_f[g, j] = p, n, f
        p += n
        k, v, q = _head(blob, p)
        if f == fstart[g + 1]:  # a field the reports do not read
            if k == 0 or k == 2 or k == 3:
                p = q
            elif k == 1 or k == 6:
                p = q + v
            else:
                p = _skip(blob, p)
                if p < 0:
                    return -1
            continue
        want, s = fkind[f], fslot[f]
        if want == 3 and k == 4 and outer < 0:
            outer_left, outer, left, count, g, p = left, g, v, v, fsub[f], q
        elif want == 0 and k == 0:
            vals[s, r], present[s, r] = v, True
            p = q
        elif want == 1 and k == 1:
            offs[s, r], lens[s, r] = q, v
            p = q + v
        else:
            p = _skip(blob, p)
            if p < 0:
                return -1
    return p


@njit(cache=True, nogil=True)
def scan(blob, n, first_seq, names, name_at, tname, fstart, fname, fkind, fslot, fsub, ints, texts, kind, ts, count,
         seqs, vals, present, end, offs, lens):
    """n records from the start of blob, the first `first_seq`: each one's kind (index in
    KINDS) and time; its fields (and a hot kind's, its seq) into the next row of its kind
    (`count` rows each, from 0): ints and whether present into vals/present, a str's offset
    and length (-1: absent) into offs/lens; where each record ends. The number of records
    read: n, or the index of the first malformed one."""
    p = 0
    seen_at = np.zeros((tname.shape[0], _KEYS), np.int64)
    seen_n = np.full((tname.shape[0], _KEYS), -1, np.int64)
    seen_f = np.zeros((tname.shape[0], _KEYS), np.int64)
    for r in range(n):
        k, entries, p = _head(blob, p)
        if k != 4:
            return r
        g, q = OTHER, p
        for _ in range(entries):  # the tag ("type", first as msgspec writes it)
            k, m, q = _head(blob, q)
            if k != 1:
                return r
            if _is(blob, q, m, names, name_at, 0):
                k, m, q = _head(blob, q + m)
                if k == 1:
                    for t in range(OTHER):
                        if _is(blob, q, m, names, name_at, tname[t]):
                            g = t
                            break
                break
            q = _skip(blob, q + m)
            if q < 0:
                return r
        row = count[g]
        for s in range(ints[g], ints[g + 1]):
            vals[s, row], present[s, row] = 0, False
        for s in range(texts[g], texts[g + 1]):
            lens[s, row] = -1
        p = _fields(blob, p, entries, g, row, names, name_at, fstart, fname, fkind, fslot, fsub, vals, present,
                    offs, lens, seen_at, seen_n, seen_f)
        if p < 0:
            return r
        count[g] += 1
        kind[r], end[r] = g, p
        if g < seqs.shape[0]:  # a hot kind
            seqs[g, row] = first_seq + r
        ts[r] = vals[ints[g], row]  # every kind's first field
    return n


@njit(cache=True, nogil=True)
def gather(blob, offsets, lengths):
    """The strings at (offset, length) of blob, one after another, and Arrow's offsets of
    them (an absent one, length -1, is empty)."""
    out_at = np.zeros(offsets.shape[0] + 1, np.int32)
    for r in range(offsets.shape[0]):
        out_at[r + 1] = out_at[r] + max(lengths[r], 0)
    data = np.empty(out_at[-1], np.uint8)
    for r in range(offsets.shape[0]):
        if lengths[r] > 0:
            a, o = out_at[r], offsets[r]
            for k in range(lengths[r]):  # short strings: a loop beats a slice's copy
                data[a + k] = blob[o + k]
    return data, out_at


def gather_ref(blob: bytes, offsets, lengths) -> tuple[bytes, list[int]]:
    """Plain Python: `gather`."""
    parts = [blob[o:o + n] if n >= 0 else b"" for o, n in zip(offsets, lengths)]
    return b"".join(parts), [0, *np.cumsum([len(x) for x in parts]).tolist()]


# ---------------------------------------------------------------- chunks
class Chunk(msgspec.Struct, array_like=True):
    """Records first..first+n-1 in columns, as the scan leaves them: what a read keeps, and
    what the report extract stores (`oms.reporting.extract`). Buffers are raw arrays."""

    first: int
    n: int
    crcs: tuple[int, int]  # the journal's check of its first and last record: what ties it to them
    kind: memoryview  # int8 per record: its index in KINDS
    ts: memoryview  # int64 per record
    rows: list[int]  # per kind
    seqs: list[memoryview]  # per hot kind: int64 per row
    vals: list[memoryview]  # per hot kind: int64 [its int slots, rows]
    present: list[memoryview]  # per hot kind: bool [its int slots, rows]
    text: list[tuple[memoryview | None, memoryview, memoryview]]  # per text slot: Arrow validity, offsets, data
    whole: list[tuple[int, memoryview]]  # (seq, bytes) of the records of the kinds decoded whole


_scratch: queue.SimpleQueue[tuple[np.ndarray, ...]] = queue.SimpleQueue()  # reused: fresh pages cost


def _raw(a: np.ndarray) -> memoryview:
    """An array's bytes: the array's own (contiguous), not a copy."""
    return memoryview(a.view(np.uint8))


def _copy(a: np.ndarray) -> memoryview:
    """A copy of an array's bytes (of the scratch, which the next scan overwrites)."""
    return memoryview(a.tobytes())


def scan_chunk(blob: bytes, n: int, first_seq: int) -> Chunk:
    """n records, one blob (the journal's payloads one after another), through the kernel.
    Runs on any thread, several at once (the kernels hold no GIL). A ValueError at a
    record this OMS cannot read."""
    try:
        scratch = _scratch.get_nowait()
    except queue.Empty:
        scratch = ()
    if not scratch or scratch[0].shape[0] < n:
        scratch = (np.empty(n, np.int64), np.empty((TEXTS, n), np.int64), np.empty((TEXTS, n), np.int32),
                   np.empty((len(HOT), n), np.int64), np.empty((INTS, n), np.int64), np.empty((INTS, n), np.bool_))
    try:
        end, offs, lens, seqs, vals, present = scratch
        kind, ts, rows = np.empty(n, np.int8), np.empty(n, np.int64), np.zeros(len(KINDS), np.int64)
        buf = np.frombuffer(blob, np.uint8)
        read = scan(buf, n, first_seq, *_TABLES, kind, ts, rows, seqs, vals, present, end, offs, lens)
        if read < n:
            raise ValueError(f"record {first_seq + read}: not an event this OMS can read")
        ints, texts, whole = _TABLES[-2], _TABLES[-1], memoryview(blob)
        text = []
        for t in range(len(HOT)):
            m = int(rows[t])
            for s in range(int(texts[t]), int(texts[t + 1])):
                data, out_at = gather(buf, offs[s, :m], lens[s, :m])
                has = lens[s, :m] >= 0
                text.append((None if has.all() else _raw(np.packbits(has, bitorder="little")), _raw(out_at),
                             _raw(data)))
        starts = np.concatenate([[0], end[:n - 1]])
        checks = (crc(first_seq, blob[:int(end[0])]), crc(first_seq + n - 1, blob[int(starts[-1]):int(end[n - 1])]))
        hot, decoded = range(len(HOT)), np.flatnonzero((kind >= len(HOT)) & (kind < OTHER)).tolist()
        return Chunk(
            first_seq, n, checks, _raw(kind), _raw(ts), rows.tolist(), [_copy(seqs[t, :rows[t]]) for t in hot],
            [_copy(vals[ints[t]:ints[t + 1], :rows[t]]) for t in hot],
            [_copy(present[ints[t]:ints[t + 1], :rows[t]]) for t in hot], text,
            [(first_seq + r, whole[starts[r]:end[r]]) for r in decoded])
    finally:
        _scratch.put(scratch)


# ---------------------------------------------------------------- columns
class Columns:
    """The records of a read in columns, chunk after chunk: per record its kind and time; per
    hot kind its rows' seq and fields but those in `skip` ((kind, field)); the whole events
    decoded. The ints go into arrays reserved for all `capacity` records (pages never written
    cost nothing); text is kept per chunk and joined once."""

    def __init__(self, capacity: int, skip: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.n, self.skip = 0, skip
        self._kind = np.empty(capacity, np.int8)
        self._ts = np.empty(capacity, np.int64)
        self.count = np.zeros(len(KINDS), np.int64)
        self.seqs = np.empty((len(HOT), capacity), np.int64)
        self.vals = np.empty((INTS, capacity), np.int64)
        self.present = np.empty((INTS, capacity), np.bool_)
        self.text: dict[tuple[str, str], list[pa.Array]] = {}
        self.whole: list[tuple[int, Event]] = []

    @property
    def kind(self) -> np.ndarray:
        return self._kind[:self.n]

    @property
    def ts(self) -> np.ndarray:
        return self._ts[:self.n]

    def keep(self, chunk: Chunk) -> None:
        """The next chunk (in order): its records after those kept, its rows of each kind
        after theirs, its text and its whole events (decoded)."""
        at, n = self.n, chunk.n
        if at + n > len(self._ts):
            raise ValueError(f"records {chunk.first} to {chunk.first + n - 1}: more than the {len(self._ts)} reserved")
        self._kind[at:at + n] = np.frombuffer(chunk.kind, np.int8)
        self._ts[at:at + n] = np.frombuffer(chunk.ts, np.int64)
        ints = _TABLES[-2]
        for g, m in enumerate(chunk.rows[:len(HOT)]):
            if m:
                c, a, b = int(self.count[g]), int(ints[g]), int(ints[g + 1])
                self.vals[a:b, c:c + m] = np.frombuffer(chunk.vals[g], np.int64).reshape(b - a, m)
                self.present[a:b, c:c + m] = np.frombuffer(chunk.present[g], np.bool_).reshape(b - a, m)
                self.seqs[g, c:c + m] = np.frombuffer(chunk.seqs[g], np.int64)
        for t, name in enumerate(HOT):
            m = chunk.rows[t]
            for field, k, s in slots(name) if m else ():
                if k == "s" and (name, field) not in self.skip:
                    valid, offsets, data = chunk.text[s]
                    self.text.setdefault((name, field), []).append(pa.Array.from_buffers(pa.string(), m, [
                        None if valid is None else pa.py_buffer(valid), pa.py_buffer(offsets), pa.py_buffer(data)]))
        self.whole += [(seq, _ONE.decode(raw)) for seq, raw in chunk.whole]
        self.count += np.asarray(chunk.rows, np.int64)
        self.n = at + n

    def columns(self) -> dict[str, dict[str, object]]:
        """Per hot kind ({} without rows): "seq", each int field and whether present ("<field>?"),
        views of what the kernel wrote, and each text field (Arrow); the text let go here."""
        out: dict[str, dict[str, object]] = {}
        for t, name in enumerate(HOT):
            m = int(self.count[t])
            c: dict[str, object] = {"seq": self.seqs[t, :m]} if m else {}
            for field, k, s in slots(name) if m else ():
                if k == "i":
                    c[field], c[field + "?"] = self.vals[s, :m], self.present[s, :m]
                elif (name, field) not in self.skip:
                    c[field] = pa.concat_arrays(self.text.pop((name, field)))
            out[name] = c
        return out


def scan_ref(records: list[bytes]) -> list[tuple[str, dict[str, object]]]:
    """Plain Python: each record's kind and the values of its columns (None: absent or nil),
    from msgspec's decoding of the same bytes."""
    out = []
    for raw in records:
        d = msgspec.msgpack.decode(raw)
        kind = d.get("type") if d.get("type") in KINDS[:OTHER] else "other"
        values: dict[str, object] = {}
        if kind in HOT:
            for field, k, _ in slots(kind):
                v = d
                for part in field.split("."):
                    v = v.get(part) if isinstance(v, dict) else None
                values[field] = v if type(v) is (int if k == "i" else str) else None
        else:
            values["ts"] = d["ts"] if type(d.get("ts")) is int else None
        out.append((kind, values))
    return out
