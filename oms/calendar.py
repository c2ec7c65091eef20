"""The trading calendar: when a trading day starts and ends, on the OMS's own clock.

Local times in one time zone; trading days are the configured weekdays that are not
holidays. A venue may keep other hours (the router avoids it outside them), and so may an
instrument (its new orders wait, or are refused, outside them). The engine
asks `due` on every timer tick; what it decides is journaled, so a replay never asks
the calendar again.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo

import msgspec

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NS = 1_000_000_000


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of "HH:MM"; ValueError otherwise."""
    h, sep, m = text.partition(":")
    if not sep or len(h) != 2 or len(m) != 2 or not (h + m).isdigit() or int(h) > 23 or int(m) > 59:
        raise ValueError(f"{text!r} is not a time HH:MM")
    return int(h) * 60 + int(m)


def hours_text(hours: tuple[int, int]) -> str:
    """(open, close) minutes as "HH:MM-HH:MM"."""
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in hours)


class Calendar(msgspec.Struct, frozen=True):
    time_zone: str = "UTC"
    open_min: int = 9 * 60 + 30  # start of day, minutes after local midnight
    close_min: int = 16 * 60  # end of day
    holidays: frozenset[str] = frozenset()  # YYYY-MM-DD
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    venue_hours: dict[str, tuple[int, int]] = {}  # venue -> (open, close) minutes, where they differ
    # new orders while no day is open or their instrument's hours are not: "accept" (routed), "hold" or "reject"
    outside_hours: str = "accept"
    instrument_hours: dict[str, tuple[int, int]] = {}  # symbol -> (open, close) minutes, where they differ

    def _zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def local(self, ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / _NS, self._zone())

    def date_of(self, ns: int) -> str:
        return self.local(ns).date().isoformat()

    def trading_date(self, date: str) -> bool:
        return date not in self.holidays and dt.date.fromisoformat(date).weekday() in self.weekdays

    def at(self, date: str, minutes: int) -> int:
        """The instant (ns) of local time `minutes` on `date`."""
        day = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(minutes // 60, minutes % 60),
                                  self._zone())
        return int(day.timestamp()) * _NS

    def due(self, now: int, day: str, day_open: bool) -> str | None:
        """What the clock asks for: "end" once the open day is past its close (or its date),
        "start" inside the hours of a trading date later than the last day, else None."""
        t = self.local(now)
        date, minute = t.date().isoformat(), t.hour * 60 + t.minute
        if day_open:
            return "end" if date > day or (date == day and minute >= self.close_min) else None
        if date > day and self.trading_date(date) and self.open_min <= minute < self.close_min:
            return "start"
        return None

    def venue_closed(self, venue: str, now: int) -> bool:
        return self._outside(self.venue_hours.get(venue), now)

    def instrument_closed(self, symbol: str, now: int) -> bool:
        return self._outside(self.instrument_hours.get(symbol), now)

    def _outside(self, hours: tuple[int, int] | None, now: int) -> bool:
        if hours is None:
            return False
        t = self.local(now)
        return not hours[0] <= t.hour * 60 + t.minute < hours[1]

    def next_date(self, date: str) -> str:
        """The trading date after `date`."""
        d = dt.date.fromisoformat(date)
        while True:
            d += dt.timedelta(days=1)
            if self.trading_date(d.isoformat()):
                return d.isoformat()
