"""Reports over HTTP: the same code as `oms report` (oms.reporting), read from the running
OMS's journal on a read-only connection, so the engine is never held up.

| GET | what |
|---|---|
| /v1/reports | the catalogue: reports, groups, formats, charts, and the dates the journal covers |
| /v1/reports/{name}?date=&to=&format= | one report as a download: csv (default), parquet or json |
| /v1/reports/charts/{name}?date=&to=&format= | a chart: png (default) or svg |

A user restricted to some accounts gets only the rows of those accounts, and only the
reports that are per account (the roll-ups across accounts, the venue comparison and the
charts are for users of every account). One day's facts are kept between requests
while the journal does not grow, so the console's several downloads read it once.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from gateways.http_api import ApiError
from gateways.http_server import threaded
from oms import reporting
from oms.config import ApiUser, Config
from oms.reporting.facts import Facts, Reader, ReportError, date_of, day_bounds, zone_of

_ACCOUNT_COLUMNS = ("account", "block_account")


class ReportApi:
    def __init__(self, cfg: Config, journal: Path) -> None:
        self.cfg, self.journal = cfg, journal
        self._lock = threading.Lock()
        self._cached: tuple[tuple, Facts] | None = None
        self.every_account = frozenset(a.id for a in cfg.accounts)

    def span(self) -> tuple[str, str]:
        reader = self._reader()
        try:
            first, last = reader.span()
        finally:
            reader.close()
        zone = zone_of(self.cfg)
        return date_of(first, zone), date_of(last, zone)

    def _reader(self) -> Reader:
        try:
            return Reader(self.journal)
        except ReportError as exc:
            raise ApiError(404, "NO_DATA", str(exc)) from None

    def facts(self, date: str | None, to: str | None) -> Facts:
        """The facts of date..to (default: the journal's last date), kept while the journal
        has not grown."""
        reader = self._reader()
        try:
            last_seq = reader.last_seq
            first = date or date_of(reader.span()[1], zone_of(self.cfg))
        finally:
            reader.close()
        try:
            day_bounds(first, to, zone_of(self.cfg))
        except ReportError as exc:
            raise ApiError(400, "BAD_REQUEST", str(exc)) from None
        key = (first, to, last_seq)
        with self._lock:  # one pass at a time; the next request for the same day finds it done
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
            try:
                facts = reporting.make(self.cfg, self.journal, first, to)
            except ReportError as exc:
                raise ApiError(404, "NO_DATA", str(exc)) from None
            self._cached = (key, facts)
            return facts

    def report(self, user: ApiUser, name: str, date: str | None, to: str | None, fmt: str) -> Response:
        if name not in reporting.REPORTS:
            raise ApiError(404, "NOT_FOUND", f"no report {name!r}: one of {', '.join(reporting.REPORTS)}")
        if fmt not in reporting.FORMATS:
            raise ApiError(400, "BAD_REQUEST", f"format: one of {', '.join(reporting.FORMATS)}")
        table = reporting.REPORTS[name](self.facts(date, to))
        table = self._entitled(user, name, table)
        return self._download(reporting.encode(table, fmt), reporting.FORMATS[fmt], f"{name}-{date or 'last'}.{fmt}")

    def chart(self, user: ApiUser, name: str, date: str | None, to: str | None, fmt: str) -> Response:
        self._all_accounts(user, f"chart {name}")
        try:
            body = reporting.chart(self.facts(date, to), name, fmt)
        except ReportError as exc:
            raise ApiError(404 if "unknown chart " in str(exc) else 400, "BAD_REQUEST", str(exc)) from None
        return self._download(body, reporting.CHART_FORMATS[fmt], f"chart-{name}-{date or 'last'}.{fmt}")

    def _entitled(self, user: ApiUser, name: str, table: pa.Table) -> pa.Table:
        """Only the rows of the user's accounts."""
        if not user.accounts or frozenset(user.accounts) >= self.every_account:
            return table
        columns = [c for c in _ACCOUNT_COLUMNS if c in table.column_names]
        if not columns:
            self._all_accounts(user, f"report {name}")
        allowed = pa.array(user.accounts)
        keep = None
        for c in columns:
            mine = pc.is_in(table.column(c), value_set=allowed)
            keep = mine if keep is None else pc.or_(keep, mine)
        return table.filter(keep)

    def _all_accounts(self, user: ApiUser, what: str) -> None:
        if user.accounts and not frozenset(user.accounts) >= self.every_account:
            raise ApiError(403, "FORBIDDEN", f"{what} spans every account; {user.name} may see "
                                             f"{', '.join(user.accounts)} only")

    @staticmethod
    def _download(body: bytes, media_type: str, filename: str) -> Response:
        return Response(body, media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

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
            return api.report(users.authenticate(request), name, date, to, format)

        @get("/v1/reports/charts/{name:str}")
        @threaded
        def chart(request: Request, name: FromPath[str], date: FromQuery[str | None] = None,
                  to: FromQuery[str | None] = None, format: FromQuery[str] = "png") -> Response:  # noqa: A002
            """A chart (slippage, venues, pnl) as PNG or SVG."""
            return api.chart(users.authenticate(request), name, date, to, format)

        return [catalogue, report, chart]
