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

import msgspec
import numpy as np
import pyarrow as pa
from numba import njit

from oms.model import Event

# kind -> its fields the reports read as columns: "i" int (or None), "s" str (or None),
# "b" bool, "NewOrder" the nested order's own fields
HOT: dict[str, tuple[tuple[str, str], ...]] = {
    "OrderAccepted": (("ts", "i"), ("order_id", "s"), ("venue", "s"), ("order", "NewOrder")),
    "ExecutionReport": (("ts", "i"), ("order_id", "s"), ("exec_id", "s"), ("exec_type", "s"), ("ord_status", "s"),
                        ("account", "s"), ("symbol", "s"), ("side", "s"), ("order_qty", "i"), ("cum_qty", "i"),
                        ("cum_value", "i"), ("last_qty", "i"), ("last_px", "i"), ("price", "i"),
                        ("exec_ref_id", "s"), ("text", "s"), ("restatement_reason", "i")),
    "ChildOrderSent": (("ts", "i"), ("child_id", "s"), ("order_id", "s"), ("venue", "s"), ("cl_ord_id", "s"),
                       ("symbol", "s"), ("qty", "i"), ("price", "i"), ("resend", "b")),
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
_INT, _STR, _BOOL, _MAP = 0, 1, 2, 3
_ONE = msgspec.msgpack.Decoder(Event)


def _layout() -> tuple[np.ndarray, ...]:
    """The field tables as arrays for the kernel: per table (each kind, then the nested
    order), its type name and fields (name, kind, slot in the row, nested table)."""
    names: list[bytes] = [b"type"]  # name 0: the tag's key
    tables = [(k, HOT.get(k, (("ts", "i"),))) for k in KINDS] + list(NESTED.items())
    fstart, fname, fkind, fslot, fsub, tname = [0], [], [], [], [], []
    for g, (kind, fields) in enumerate(tables):
        tname.append(len(names))
        names.append(kind.encode())
        slot = 0 if g < len(KINDS) else len(HOT["OrderAccepted"]) - 1
        for name, k in fields:
            fname.append(len(names))
            names.append(name.encode())
            fkind.append({"i": _INT, "s": _STR, "b": _BOOL}.get(k, _MAP))
            fsub.append(len(KINDS) + list(NESTED).index(k) if k in NESTED else -1)
            fslot.append(slot)
            slot += 0 if k in NESTED else 1
        fstart.append(len(fname))
    at = np.cumsum([0] + [len(n) for n in names])
    return (np.frombuffer(b"".join(names), np.uint8), at.astype(np.int64), np.array(tname, np.int64),
            np.array(fstart, np.int64), np.array(fname, np.int64), np.array(fkind, np.int64),
            np.array(fslot, np.int64), np.array(fsub, np.int64))


_TABLES = _layout()
SLOTS = max(len(f) for f in HOT.values()) + len(NESTED["NewOrder"])


def slots(kind: str) -> list[tuple[str, str, int]]:
    """(field, "i"/"s"/"b", slot) of a hot kind's columns; the nested order's as order.<field>."""
    out, slot = [], 0
    for name, k in HOT[kind]:
        if k in NESTED:
            for sub, sk in NESTED[k]:
                out.append((f"{name}.{sub}", sk, slot))
                slot += 1
        else:
            out.append((name, k, slot))
            slot += 1
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
def _fields(blob, p, entries, g, r, names, name_at, fstart, fname, fkind, fslot, fsub, vals, present, seen_at, seen_n,
            seen_f):
    """Read a map's entries against table g into row r (a nested map's against its own
    table, then back); the position after it (-1: malformed)."""
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
        if f == fstart[g + 1]:
            p = _skip(blob, p)
            if p < 0:
                return -1
            continue
        k, v, q = _head(blob, p)
        want, s = fkind[f], fslot[f]
        if want == 3 and k == 4 and outer < 0:
            outer_left, outer, left, count, g, p = left, g, v, v, fsub[f], q
        elif (want == 0 and k == 0) or (want == 2 and k == 3):
            vals[r, s], present[r, s] = v, 1
            p = q
        elif want == 1 and k == 1:
            vals[r, s], present[r, s] = q, 1
            vals[r, SLOTS + s] = v
            p = q + v
        else:
            p = _skip(blob, p)
            if p < 0:
                return -1
    return p


@njit(cache=True)
def scan(blob, n, names, name_at, tname, fstart, fname, fkind, fslot, fsub, kind, end, vals, present):
    """n records from the start of blob: each one's kind (index in KINDS), where it ends,
    and its fields (ints; a str's offset, with its length SLOTS columns on). The number of
    records read: n, or the index of the first malformed one."""
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
        kind[r] = g
        p = _fields(blob, p, entries, g, r, names, name_at, fstart, fname, fkind, fslot, fsub, vals, present, seen_at,
                    seen_n, seen_f)
        if p < 0:
            return r
        end[r] = p
    return n


@njit(cache=True)
def gather(blob, offsets, lengths, present):
    """The strings at (offset, length) of blob, one after another, and Arrow's offsets of
    them (an absent one is empty)."""
    out_at = np.zeros(offsets.shape[0] + 1, np.int64)
    for r in range(offsets.shape[0]):
        out_at[r + 1] = out_at[r] + (lengths[r] if present[r] else 0)
    data = np.empty(out_at[-1], np.uint8)
    for r in range(offsets.shape[0]):
        if present[r]:
            data[out_at[r]:out_at[r + 1]] = blob[offsets[r]:offsets[r] + lengths[r]]
    return data, out_at


def gather_ref(blob: bytes, offsets, lengths, present) -> tuple[bytes, list[int]]:
    """Plain Python: `gather`."""
    parts = [blob[o:o + n] if ok else b"" for o, n, ok in zip(offsets, lengths, present)]
    return b"".join(parts), [0, *np.cumsum([len(x) for x in parts]).tolist()]


# ---------------------------------------------------------------- columns
class Chunk:
    """One blob's records in columns: per record its kind, time and bounds; per hot kind
    its rows' fields (`int`, `has`, `text`); the whole events decoded."""

    def __init__(self, blob: bytes, n: int, first_seq: int) -> None:
        buf = np.frombuffer(blob, np.uint8)
        self.kind = np.full(n, OTHER, np.int8)
        end = np.zeros(n, np.int64)
        vals = np.zeros((n, 2 * SLOTS), np.int64)
        present = np.zeros((n, SLOTS), np.bool_)
        read = scan(buf, n, *_TABLES, self.kind, end, vals, present)
        if read < n:
            raise ValueError(f"record {first_seq + read}: not an event this OMS can read")
        self.seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
        self.ts = vals[:, 0].copy()  # every kind's first field
        self.cols: dict[str, dict[str, object]] = {}
        for t, name in enumerate(HOT):
            rows = np.flatnonzero(self.kind == t)
            if not len(rows):
                continue
            c: dict[str, object] = {"seq": self.seq[rows]}
            for field, k, s in slots(name):
                has = present[rows, s]
                if k == "s":
                    data, at = gather(buf, vals[rows, s], vals[rows, SLOTS + s], has)
                    c[field] = pa.Array.from_buffers(pa.string(), len(rows), [
                        None if has.all() else pa.array(has).buffers()[1], pa.py_buffer(at.astype(np.int32)), pa.py_buffer(data)])
                else:
                    c[field] = vals[rows, s]
                    c[field + "?"] = has
            self.cols[name] = c
        whole = np.flatnonzero((self.kind >= len(HOT)) & (self.kind < OTHER))
        starts = np.concatenate([[0], end[:-1]])
        self.whole = [(int(self.seq[r]), _ONE.decode(blob[starts[r]:end[r]])) for r in whole.tolist()]


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
                ok = {"i": lambda x: type(x) is int, "s": lambda x: type(x) is str, "b": lambda x: type(x) is bool}[k]
                values[field] = (int(v) if k == "b" else v) if ok(v) else None
        else:
            values["ts"] = d["ts"] if type(d.get("ts")) is int else None
        out.append((kind, values))
    return out
