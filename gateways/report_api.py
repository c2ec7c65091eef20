"""Reports over HTTP: the same code as `oms report` (oms.reporting), computed in a process
of its own (spawned once, kept) from the running OMS's journal on a read-only
connection, so a pass over a large journal never holds the engine's interpreter.

| GET | what |
|---|---|
| /v1/reports | the catalogue: reports, groups, formats, charts, and the dates the journal covers |
| /v1/reports/{name}?date=&to=&format= | one report as a download: csv (default), parquet or json |
| /v1/reports/charts/{name}?date=&to=&format= | a chart: png (default) or svg |

A user restricted to some accounts gets only the rows of those accounts, and only the
reports that are per account (the roll-ups across accounts, the venue comparison and the
charts are for users of every account). The report process keeps one day's facts while
the journal does not grow, so the console's several downloads read it once.
"""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from gateways.http_api import ApiError
from gateways.http_server import threaded
from oms import reporting
from oms.config import ApiUser, Config
from oms.reporting.facts import Facts, Reader, ReportError, date_of, day_bounds, zone_of

_ACCOUNT_COLUMNS = ("account", "block_account")
_PER_ACCOUNT = frozenset(n for n in reporting.REPORTS if n not in ("tca-summary", "venues"))
_KINDS = {"report": (reporting.REPORTS, reporting.FORMATS), "chart": (reporting.CHARTS, reporting.CHART_FORMATS)}
_kept: tuple[tuple, Facts] | None = None  # in the report process: the last day's facts


def _facts(cfg: Config, journal: Path, first: str | None, to: str | None) -> tuple[Facts, str]:
    """In the report process: the facts of first..to (default: the journal's last date)."""
    global _kept
    reader = Reader(journal)
    try:
        last_seq, first = reader.last_seq, first or date_of(reader.span()[1], zone_of(cfg))
    finally:
        reader.close()
    key = (str(journal), first, to, last_seq)
    if _kept is None or _kept[0] != key:
        _kept = None  # the old day's memory goes before the new one's comes
        _kept = (key, reporting.make(cfg, journal, first, to))
    return _kept[1], first


def _render(cfg: Config, journal: Path, kind: str, name: str, first: str | None, to: str | None, fmt: str,
            accounts: list[str]) -> tuple[bytes, str]:
    """In the report process: (the file, its date) of a report (its rows of `accounts`
    only, when given) or of a chart."""
    facts, first = _facts(cfg, journal, first, to)
    if kind == "chart":
        return reporting.chart(facts, name, fmt), first
    table = reporting.REPORTS[name](facts)
    columns = [c for c in _ACCOUNT_COLUMNS if c in table.column_names]
    if accounts:
        import pyarrow as pa
        import pyarrow.compute as pc

        allowed = pa.array(accounts)
        keep = pc.is_in(table.column(columns[0]), value_set=allowed)
        for c in columns[1:]:
            keep = pc.or_(keep, pc.is_in(table.column(c), value_set=allowed))
        table = table.filter(keep)
    return reporting.encode(table, fmt), first


class ReportApi:
    def __init__(self, cfg: Config, journal: Path) -> None:
        self.cfg, self.journal = cfg, journal
        self.zone = zone_of(cfg)
        self.every_account = frozenset(a.id for a in cfg.accounts)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def stop(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def span(self) -> tuple[str, str]:
        try:
            reader = Reader(self.journal)
        except ReportError as exc:
            raise ApiError(404, "NO_DATA", str(exc)) from None
        try:
            first, last = reader.span()
        finally:
            reader.close()
        return date_of(first, self.zone), date_of(last, self.zone)

    def render(self, kind: str, name: str, user: ApiUser, date: str | None, to: str | None, fmt: str) -> Response:
        """A report or a chart (`kind`) of date..to as a download."""
        names, formats = _KINDS[kind]
        if name not in names:
            raise ApiError(404, "NOT_FOUND", f"no {kind} {name!r}: one of {', '.join(names)}")
        if fmt not in formats:
            raise ApiError(400, "BAD_REQUEST", f"format: one of {', '.join(formats)}")
        if to is not None and date is None:
            raise ApiError(400, "BAD_REQUEST", "to: a range needs its first date too (date)")
        if date is not None:
            try:
                day_bounds(date, to, self.zone)
            except ReportError as exc:
                raise ApiError(400, "BAD_REQUEST", str(exc)) from None
        restricted = bool(user.accounts) and not frozenset(user.accounts) >= self.every_account
        if restricted and (kind == "chart" or name not in _PER_ACCOUNT):
            raise ApiError(403, "FORBIDDEN", f"{kind} {name} spans every account; {user.name} may see "
                                             f"{', '.join(user.accounts)} only")
        with self._lock:
            if self._pool is None:  # one process, kept: it holds the last day's facts
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=reporting.huge_pages, initargs=(False,))
            future = self._pool.submit(_render, self.cfg, self.journal, kind, name, date, to, fmt,
                                       list(user.accounts) if restricted else [])
        try:
            body, first = future.result()
        except ReportError as exc:
            raise ApiError(404, "NO_DATA", str(exc)) from None
        media = formats[fmt]
        filename = f"{'chart-' if kind == 'chart' else ''}{name}-{first}{f'_{to}' if to else ''}.{fmt}"
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def routes(self, users: Any) -> list[Any]:
        api = self

        @get("/v1/reports")
        @threaded
        def catalogue(request: Request) -> dict[str, Any]:
            """What can be asked for, and the dates the journal covers."""
            users.authenticate(request)
            first, last = api.span()
            return {"reports": list(reporting.REPORTS), "groups": reporting.GROUPS,
                    "formats": list(reporting.FORMATS), "charts": list(reporting.CHARTS),
                    "chart_formats": list(reporting.CHART_FORMATS), "first_date": first, "last_date": last}

        @get("/v1/reports/{name:str}")
        @threaded
        def report(request: Request, name: FromPath[str], date: FromQuery[str | None] = None,
                   to: FromQuery[str | None] = None, format: FromQuery[str] = "csv") -> Response:  # noqa: A002
            """One report of a trading date (default: the journal's last) or a range, as a download."""
            return api.render("report", name, users.authenticate(request), date, to, format)

        @get("/v1/reports/charts/{name:str}")
        @threaded
        def chart(request: Request, name: FromPath[str], date: FromQuery[str | None] = None,
                  to: FromQuery[str | None] = None, format: FromQuery[str] = "png") -> Response:  # noqa: A002
            """A chart (slippage, venues, pnl) as PNG or SVG."""
            return api.render("chart", name, users.authenticate(request), date, to, format)

        return [catalogue, report, chart]
