"""Reports from the journal: what `oms report`, the HTTP API, the console and the
end-of-day schedule all call. One pass reads the journal (`facts`), each report is an
Arrow table (`tables`), written as CSV, Parquet or JSON, with charts in PNG or SVG.
The same journal and dates give the same bytes."""
from __future__ import annotations

import gc
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pyarrow as pa
from numpy._core import multiarray

from oms.config import Config
from oms.reporting import tables
from oms.reporting.facts import Facts, ReportError, day_bounds, read_facts, zone_of

REPORTS: dict[str, Callable[[Facts], pa.Table]] = {
    "orders": tables.orders,
    "executions": tables.executions,
    "allocations": tables.allocations,
    "positions": tables.positions,
    "compliance": tables.compliance,
    "tca-orders": tables.tca_orders,
    "tca-children": tables.tca_children,
    "tca-summary": tables.tca_summary,
    "venues": tables.venues,
}
GROUPS = {"blotter": ("orders", "executions"), "tca": ("tca-orders", "tca-children", "tca-summary", "venues"),
          "all": tuple(REPORTS)}
FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "json": "application/json"}
CHARTS = ("slippage", "venues", "pnl")
CHART_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}

__all__ = ["REPORTS", "GROUPS", "FORMATS", "CHARTS", "ReportError", "names", "encode", "chart", "make", "write",
           "huge_pages"]


def names(wanted: list[str] | tuple[str, ...]) -> list[str]:
    """Report names, groups expanded, in catalogue order; an unknown name is a ReportError."""
    out: set[str] = set()
    for n in wanted or ("all",):
        if n in GROUPS:
            out.update(GROUPS[n])
        elif n in REPORTS:
            out.add(n)
        else:
            raise ReportError(f"unknown report {n!r}: one of {', '.join([*REPORTS, *GROUPS])}")
    return [n for n in REPORTS if n in out]


def encode(table: pa.Table, fmt: str, path: Path | None = None) -> bytes:
    """The table as CSV (header row; decimals as written, times in ISO 8601 UTC), Parquet or
    JSON (an array of objects; decimals as strings, to stay exact): its bytes, or written
    straight to `path` (no copy of a large file in memory; then b"")."""
    sink = io.BytesIO() if path is None else str(path)
    if fmt == "csv":
        import pyarrow.csv as csv

        csv.write_csv(table, sink)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink, compression="zstd")
    elif fmt == "json":
        cast = table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f
                                     for f in table.schema]))
        data = msgspec.json.encode(cast.to_pylist())
        if path is None:
            return data
        path.write_bytes(data)
    else:
        raise ReportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    return sink.getvalue() if isinstance(sink, io.BytesIO) else b""


def make(cfg: Config, journal: Path, first: str, last: str | None = None, positions: bool = True,
         extract: bool = True) -> Facts:
    """The facts of the trading dates first..last (inclusive, in the calendar's time zone) from a journal (without
    positions when no report or chart wanted needs them; without the report extract: every record scanned)."""
    start, end = day_bounds(first, last, zone_of(cfg))
    return read_facts(cfg, journal, start, end, positions, extract)


def chart(facts: Facts, name: str, fmt: str) -> bytes:
    from oms.reporting import charts

    if name not in CHARTS:
        raise ReportError(f"unknown chart {name!r}: one of {', '.join(CHARTS)}")
    if fmt not in CHART_FORMATS:
        raise ReportError(f"unknown chart format {fmt!r}: one of {', '.join(CHART_FORMATS)}")
    return charts.render(facts, name, fmt)


def huge_pages(on: bool) -> bool:
    """NumPy asks the kernel for huge pages for its large arrays: a report makes gigabytes of
    them, and on a VM whose page cache is full each huge page waits on compaction (1-1.5 s
    more system time for the blotter of 1,000,000 orders). Set for the process (NumPy's
    NUMPY_MADVISE_HUGEPAGE, at run time); the previous setting."""
    return multiarray._set_madvise_hugepage(on)


def write(cfg: Config, journal: Path, out: Path, first: str, last: str | None = None,
          reports: list[str] | tuple[str, ...] = (), fmt: str = "csv", chart_fmt: str | None = None,
          extract: bool = True) -> list[Path]:
    """Write the reports (and charts) of first..last into `out`: <report>-<dates>.<format> (`extract`: see `make`)."""
    wanted = names(reports)
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    # millions of small objects, none in a cycle: the collector would only scan them again and
    # again (a quarter of the time). Callers are processes of their own (CLI, end of day).
    collecting = gc.isenabled()
    gc.disable()
    huge = huge_pages(False)
    try:
        return _write(cfg, journal, out, first, last, wanted, fmt, chart_fmt, extract)
    finally:
        huge_pages(huge)
        if collecting:
            gc.enable()


def _write(cfg: Config, journal: Path, out: Path, first: str, last: str | None, wanted: list[str], fmt: str,
           chart_fmt: str | None, extract: bool) -> list[Path]:
    facts = make(cfg, journal, first, last, bool({"positions"} & set(wanted) or chart_fmt), extract)
    out.mkdir(parents=True, exist_ok=True)
    dates = first if not last or last == first else f"{first}_{last}"
    written, writing = [], []
    with ThreadPoolExecutor(2) as pool:  # Arrow writes without the GIL: a report written while the next is made
        for n in wanted:
            if len(writing) == 2:  # no more tables alive at once than files being written
                writing.pop(0).result()
            path = out / f"{n}-{dates}.{fmt}"
            writing.append(pool.submit(encode, REPORTS[n](facts), fmt, path))
            written.append(path)
        for w in writing:
            w.result()
    for c in CHARTS if chart_fmt else ():
        path = out / f"chart-{c}-{dates}.{chart_fmt}"
        path.write_bytes(chart(facts, c, chart_fmt))  # type: ignore[arg-type]
        written.append(path)
    return written
