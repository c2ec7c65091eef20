"""End of day: the OMS writes the day's reports itself into <run_dir>/reports/<date>/, once
per trading date: when the day's `DayEnded` commits (`[reports] at = "end_of_day"`: the
calendar's close or an operator's EndOfDay), the reports of that trading date; or at a
clock time (`at = "HH:MM[:SS]"`, local time of the calendar's time zone), those of the
date the clock reads.

The reports run in a process of their own (spawned: a fresh interpreter), so a pass over
a large journal never competes with the engine for the interpreter lock; they read the
journal on a read-only connection while trading goes on.
"""
from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import queue
import threading
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path

from oms.config import AT_END_OF_DAY, Config
from oms.model import DayEnded
from oms.reporting.facts import zone_of

log = logging.getLogger("oms.reporting.schedule")
# a stop waits this long for the reports already due (1,000,000 orders: ~12 s, ~25 s without the extract)
STOP_WAIT_S = 300.0


def parse_at(text: str, zone: str = "UTC") -> dt.time:
    """HH:MM or HH:MM:SS in the time zone."""
    return dt.time.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(zone))


def next_run(at: dt.time, now: float) -> float:
    """The first time at or after `now` (epoch seconds) the clock reads `at` (in its zone)."""
    today = dt.datetime.fromtimestamp(now, at.tzinfo).date()
    for day in (today, today + dt.timedelta(days=1)):
        when = dt.datetime.combine(day, at).timestamp()
        if when >= now:
            return when
    raise AssertionError("unreachable")


def _write(cfg: Config, journal: Path, out: Path, date: str) -> None:
    """In the child process: the reports, or one line saying why not."""
    from oms import reporting

    r = cfg.reports
    try:
        paths = reporting.write(cfg, journal, out, date, reports=r.reports, fmt=r.format, chart_fmt=r.charts or None)
    except reporting.ReportError as exc:
        print(f"end-of-day reports of {date}: {exc}", flush=True)
        raise SystemExit(2) from None
    print(f"end-of-day reports of {date}: {len(paths)} files in {out}", flush=True)


class EndOfDay:
    def __init__(self, cfg: Config, journal: Path, reports_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.journal, self.dir, self.clock = cfg, journal, reports_dir, clock
        self.at = None if cfg.reports.at == AT_END_OF_DAY else parse_at(cfg.reports.at, zone_of(cfg))
        self._dates: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # due; None: stop
        self._thread = threading.Thread(target=self._loop, name="end-of-day", daemon=True)
        self.runs: list[tuple[str, int]] = []  # (date, exit code) of each run
        self._target = _write  # what the child runs
        self._proc: multiprocessing.process.BaseProcess | None = None  # the run under way
        self._ending = False  # a stop that waited long enough: no further run

    def start(self) -> None:
        when = "at each end of day" if self.at is None else f"at {self.at.strftime('%H:%M:%S')} {zone_of(self.cfg)}"
        log.info("the day's reports %s into %s", when, self.dir)
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """After the reports already due (a day ended just before the stop): they are not lost,
        unless they take longer than `timeout`; then the run under way is ended (logged, and
        `oms report` writes them again from the journal) rather than the stop hanging on it."""
        self._dates.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._ending = True
            proc = self._proc
            log.error("end-of-day reports still running %.0f s into the stop: ended; write them with oms report",
                      timeout)
            if proc is not None:
                proc.terminate()
            self._thread.join(10)

    def on_events(self, events: list) -> None:
        """A runtime listener (at="end_of_day"): a DayEnded is durable, its date's reports are due."""
        if DayEnded in map(type, events):
            for ev in events:
                if type(ev) is DayEnded:
                    self._dates.put(ev.date)

    def _loop(self) -> None:
        when = None if self.at is None else next_run(self.at, self.clock())
        while True:
            try:
                date = self._dates.get(timeout=None if when is None else max(0.0, when - self.clock()))
            except queue.Empty:
                assert self.at is not None and when is not None
                date = dt.datetime.fromtimestamp(when, self.at.tzinfo).date().isoformat()
                when = next_run(self.at, when + 1)
            if date is None or self._ending:
                return
            self.run(date)

    def run(self, date: str) -> int:
        """The reports of `date` into <reports dir>/<date>/; the child's exit code (2: nothing to report)."""
        proc = multiprocessing.get_context("spawn").Process(
            target=self._target, args=(self.cfg, self.journal, self.dir / date, date), name=f"oms-report-{date}")
        t0 = time.perf_counter()
        proc.start()
        self._proc = proc
        proc.join()
        self._proc = None
        code = proc.exitcode if proc.exitcode is not None else -1
        self.runs.append((date, code))
        (log.info if code == 0 else log.warning)("end-of-day reports of %s: exit %d after %.1f s", date, code,
                                                 time.perf_counter() - t0)
        return code
