"""Configuration: TOML decoded into typed Structs, then checked for meaning.

Every problem becomes a `ConfigError` naming the file, the key and the reason, so an
operator can fix it without reading code.
"""
from __future__ import annotations

import datetime as dt
import datetime as dt
import ipaddress
import os
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from oms.calendar import WEEKDAYS, Calendar, parse_hhmm
from oms.engine import ReferenceData, VenuePolicy
from oms.fixed import MAX_FX, MAX_QTY, FixedPointError, to_money, to_price
from oms.model import Account, Instrument
from oms.positions import rates_for
from oms.router import CROSS, INTERNAL, POLICIES
from risk.compliance import RiskConfigError, parse_post_trade, parse_rule
from risk.config import RiskConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"


class ConfigError(Exception):
    def __init__(self, path: str | os.PathLike, key: str, reason: str) -> None:
        super().__init__(f"{path}: {key}: {reason}")
        self.path, self.key, self.reason = str(path), key, reason


class _Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class Listen(_Base):
    host: str = "127.0.0.1"
    port: int = 0


class JournalConfig(_Base):
    path: str = "journal.db"  # relative to run_dir
    commit: Literal["event", "group"] = "group"
    window_us: int = 0  # how long a group waits for more commands; 0 = what queued during the last commit
    max_batch: int = 4096
    fsync: bool = True
    archive: bool = True  # after a snapshot, move the records before the oldest kept one to <journal>.archive/


class SessionConfig(_Base):
    comp_id: str
    begin_string: Literal["FIX.4.2", "FIX.4.4"] = "FIX.4.4"
    accounts: list[str] = []
    username: str = ""  # when set, Logon must carry Username (553) and Password (554)
    password: str = ""
    cancel_on_disconnect: bool = False
    default_account: str = ""  # for orders without Account (1); none: they need one unless one account
    # a drop copy for the back office: receives a copy (CopyMsgIndicator 797=Y) of every trader-facing
    # ExecutionReport of its accounts, whichever session the order came from; sends no orders
    drop_copy: bool = False


class FixConfig(_Base):
    host: str = "127.0.0.1"  # beyond loopback only when every session has a username and password
    port: int = 9876
    comp_id: str = "OMS"
    sessions: list[SessionConfig] = []
    logon_timeout_s: float = 5.0  # a connection's Logon must arrive within this
    max_pending: int = 256  # connections without a Logon yet, in all (the oldest makes way)
    max_pending_per_source: int = 16  # ... and from one source address
    max_message_bytes: int = 1_048_576  # a longer message closes the connection (4 KiB before logon)


class NatsUser(_Base):
    """A user of the embedded server and what it may do (subjects; wildcards allowed):
    user and password, or an nkey (the public key; the client signs with its seed)."""

    user: str = ""
    password: str = ""
    nkey: str = ""
    publish: list[str] = []
    subscribe: list[str] = msgspec.field(default_factory=lambda: ["_INBOX.>"])


class NatsConfig(_Base):
    embedded: bool = True
    host: str = "127.0.0.1"
    port: int = 4222
    url: str = ""  # an existing server, or a cluster's as a comma-separated list; when set, nothing is embedded
    encoding: Literal["msgpack", "json"] = "msgpack"
    user: str = ""  # the OMS's credentials (and the embedded server's, when set)
    password: str = ""
    nkey_seed: str = ""  # or the OMS's nkey: its seed file (relative paths from the base directory, as run_dir)
    users: list[NatsUser] = []  # other users of the embedded server, e.g. a read-only compliance feed
    positions_interval_ms: int = 100  # an account's positions are published at most this often
    max_backlog: int = 10_000  # events read ahead of NATS; when full, the journal holds the rest

    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()] or [f"nats://{self.host}:{self.port}"]

    def seed_path(self, base: Path) -> Path | None:
        return None if not self.nkey_seed else base / self.nkey_seed  # an absolute path stays itself

    def auth(self, base: Path) -> dict[str, str]:
        """The OMS's own credentials as nats.connect arguments."""
        seed = self.seed_path(base)
        if seed is not None:
            return {"nkeys_seed": str(seed)}
        return {"user": self.user, "password": self.password} if self.user else {}


class SimConfig(_Base):
    """A simulated venue: its synthetic liquidity and the faults it injects."""

    enabled: bool = True
    spread_bps: float = 4.0  # quoted spread around the mid
    depth: int = 5  # price levels quoted each side (0: no synthetic liquidity)
    level_qty: int = 500  # quantity at the best level; deeper levels grow by this much
    level_ticks: int = 1  # distance between quoted levels, in ticks
    volatility_bps: float = 2.0  # standard deviation of the mid's step
    drift_bps: float = 0.0  # mean of the mid's step
    price_offset_bps: float = 0.0  # this venue's mid relative to the reference price
    tick_ms: int = 250  # how often the mid moves and quotes refresh
    seed: int = 1
    latency_ms: int = 0  # delay before each answer
    reject_rate: float = 0.0  # share of new orders rejected at random
    disconnect_every_s: float = 0.0  # drop every session this often (0: never)
    self_trade: Literal["none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement"] = "cancel_newest"
    status_requests: bool = True  # False: OrderStatusRequest gets a BusinessMessageReject, as some venues do


class CalendarConfig(_Base):
    """The trading day, in local time of `time_zone`: it starts at `open` and ends at `close`
    on the weekdays that are not holidays."""

    time_zone: str = "UTC"  # an IANA name, e.g. "America/New_York"
    open: str = "09:30"  # HH:MM
    close: str = "16:00"
    holidays: list[str] = []  # YYYY-MM-DD
    weekdays: list[str] = msgspec.field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    # new orders while no trading day is open, or outside their instrument's hours: routed at once, held
    # until the day (the instrument's hours) starts, or rejected
    outside_hours: Literal["accept", "hold", "reject"] = "accept"

    def calendar(self, venues: list[VenueConfig], instruments: list[InstrumentConfig]) -> Calendar:
        return Calendar(self.time_zone, parse_hhmm(self.open), parse_hhmm(self.close), frozenset(self.holidays),
                        frozenset(WEEKDAYS.index(d) for d in self.weekdays),
                        {v.name: _hours(v.hours) for v in venues if v.hours}, self.outside_hours,
                        {i.symbol: _hours(i.hours) for i in instruments if i.hours})


def _hours(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return parse_hhmm(start), parse_hhmm(end)


class VenueConfig(_Base):
    name: str
    host: str = "127.0.0.1"
    port: int = 0
    begin_string: Literal["FIX.4.2", "FIX.4.4"] = "FIX.4.4"
    comp_id: str = ""  # the venue's CompID; defaults to its name
    clients: list[str] = msgspec.field(default_factory=lambda: ["OMS"])  # CompIDs that may log on
    market_data: bool = True  # subscribe to the venue's quotes (MarketDataRequest) at each logon
    # recovery: sequence numbers are kept across restarts (the venue resends what the OMS
    # missed) unless the venue's rules want a reset at every logon
    reset_on_logon: bool = False
    ack_timeout_s: float = 5.0  # no answer to an order, cancel, replace or status request: in doubt
    on_timeout: Literal["status", "cancel"] = "status"  # "cancel": also cancel an order left in doubt
    unknown_child: Literal["resend", "reject"] = "resend"  # a child the venue never received
    hours: str = ""  # "HH:MM-HH:MM" in the calendar's time zone where the venue's differ: routed around outside
    sim: SimConfig = SimConfig()

    @property
    def venue_comp_id(self) -> str:
        return self.comp_id or self.name


class InstrumentConfig(_Base):
    symbol: str
    tick_size: str = "0.01"
    lot_size: int = 1
    currency: str = "USD"
    ref_price: str = "100"  # where simulated venues start quoting
    # "HH:MM-HH:MM" in the calendar's time zone where the instrument's differ from the day's: outside them its
    # new orders are held or refused (calendar.outside_hours)
    hours: str = ""


class AccountConfig(_Base):
    id: str
    name: str = ""
    base_currency: str = "USD"


class ApiUser(_Base):
    """A user of the HTTP API and console: its bearer token, its role and the accounts it
    may act for. Only `risk` users change compliance controls (and they must be in
    risk.admins, the engine's own list); `viewer` users change nothing."""

    name: str
    token: str
    accounts: list[str] = []  # empty: every account
    role: Literal["risk", "trader", "pm", "viewer"] = "pm"


class ApiConfig(_Base):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    users: list[ApiUser] = []  # none: the API is open, which is refused off loopback
    request_timeout_s: float = 10.0  # a request's headers and body must arrive within this (slow clients closed)
    max_connections: int = 256  # open HTTP connections at most; one more is closed at once

    def session(self, user: str) -> str:
        """The order session of an API user (its entitlements are its accounts)."""
        return f"API:{user}"


API_OPEN_USER = "api"  # who an API without users acts as


AT_END_OF_DAY = "end_of_day"  # [reports] at: when the day's DayEnded commits


class ReportsConfig(_Base):
    """End-of-day reports written by the OMS itself into <run_dir>/reports/<date>/."""

    # "end_of_day": the trading date's, when its DayEnded commits; HH:MM or HH:MM:SS in the calendar's time
    # zone: the date's at that time; "": not written
    at: str = ""
    reports: list[str] = []  # names or groups (blotter, tca, all); empty: all
    format: Literal["csv", "parquet", "json"] = "csv"
    charts: Literal["", "png", "svg"] = ""  # "": no charts
    # keep the report extract (the journal's records as columns, <journal>.extract/) close behind the journal, in a
    # low-priority process of its own: every report then reads columns rather than parsing every record
    extract: bool = True


class Config(_Base):
    run_dir: str = "run"
    journal: JournalConfig = JournalConfig()
    metrics: Listen = Listen(port=9100)
    api: ApiConfig = ApiConfig()
    nats: NatsConfig = NatsConfig()
    fix: FixConfig = FixConfig()
    default_venue: str = ""
    default_policy: Literal["direct", "best", "sweep"] = "direct"  # for orders without ExDestination
    # a venue's reject of a BEST or SWEEP child sends its quantity to the next venue (direct orders
    # went where the trader said: their reject goes back to the trader)
    reroute_on_reject: bool = True
    # BEST and SWEEP orders cross resting CROSS orders (ExDestination CROSS) of other accounts first
    internal_cross: bool = False
    venues: list[VenueConfig] = []
    instruments: list[InstrumentConfig] = []
    accounts: list[AccountConfig] = []
    risk: RiskConfig = RiskConfig()
    fx: dict[str, str] = {}  # value of one unit of each currency in USD, e.g. EUR = "1.08"
    calendar: CalendarConfig | None = None  # none: the day starts and ends by operator command only
    # a new order in a halted symbol is held (acknowledged, routed when trading resumes) or rejected
    halt_policy: Literal["hold", "reject"] = "hold"
    reports: ReportsConfig = ReportsConfig()

    def run_path(self, base: Path) -> Path:
        run_dir = Path(self.run_dir)
        return run_dir if run_dir.is_absolute() else base / run_dir

    def journal_path(self, base: Path) -> Path:
        path = Path(self.journal.path)
        return path if path.is_absolute() else self.run_path(base) / path

    def reference_data(self) -> ReferenceData:
        return ReferenceData(
            instruments={
                i.symbol: Instrument(i.symbol, to_price(i.tick_size), i.lot_size, i.currency)
                for i in self.instruments
            },
            accounts={a.id: Account(a.id, a.name, a.base_currency) for a in self.accounts},
            venues=tuple(v.name for v in self.venues),
            default_venue=self.default_venue,
            default_route=self.default_venue if self.default_policy == "direct" else self.default_policy.upper(),
            reroute_on_reject=self.reroute_on_reject,
            internal_cross=self.internal_cross,
            entitlements={**{s.comp_id: frozenset(s.accounts) for s in self.fix.sessions if not s.drop_copy},
                          **self.api_entitlements()},
            ref_prices={i.symbol: to_price(i.ref_price) for i in self.instruments},
            venue_policies={v.name: VenuePolicy(int(v.ack_timeout_s * 1e9), v.on_timeout, v.unknown_child)
                            for v in self.venues},
            calendar=self.calendar.calendar(self.venues, self.instruments) if self.calendar else None,
            halt_policy=self.halt_policy,
        )


    def fx_rates(self) -> np.ndarray:
        """rates[a, i]: one unit of instrument i's currency in account a's base currency."""
        usd = {ccy: to_price(v, "fx rate", MAX_FX) for ccy, v in self.fx.items()}
        return rates_for([a.base_currency for a in self.accounts], [i.currency for i in self.instruments], usd)

    def api_entitlements(self) -> dict[str, frozenset[str]]:
        every = frozenset(a.id for a in self.accounts)
        users = self.api.users or [ApiUser(name=API_OPEN_USER, token="")]
        return {self.api.session(u.name): frozenset(u.accounts) or every for u in users}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _check(path: str | os.PathLike, cfg: Config) -> None:
    """Meaning the types cannot express: ports, ticks, references between sections."""

    def fail(key: str, reason: str) -> None:
        raise ConfigError(path, key, reason)

    for key, port in (("metrics.port", cfg.metrics.port), ("api.port", cfg.api.port),
                      ("nats.port", cfg.nats.port), ("fix.port", cfg.fix.port)):
        if not 0 <= port <= 65535:
            fail(key, f"port {port} is not between 0 and 65535")
    if cfg.journal.window_us < 0 or cfg.journal.max_batch < 1:
        fail("journal", "window_us must be >= 0 and max_batch >= 1")
    symbols: set[str] = set()
    for n, inst in enumerate(cfg.instruments):
        key = f"instruments[{n}]"
        if inst.symbol in symbols:
            fail(f"{key}.symbol", f"duplicate symbol {inst.symbol!r}")
        symbols.add(inst.symbol)
        for name in ("tick_size", "ref_price"):
            try:
                positive = to_price(getattr(inst, name)) > 0
            except FixedPointError as exc:
                fail(f"{key}.{name}", str(exc))
            else:
                if not positive:
                    fail(f"{key}.{name}", "must be positive")
        if inst.lot_size < 1:
            fail(f"{key}.lot_size", "must be at least 1")
    accounts = {a.id for a in cfg.accounts}
    if len(accounts) != len(cfg.accounts):
        fail("accounts", "duplicate account id")
    for n, s in enumerate(cfg.fix.sessions):
        for acc in s.accounts:
            if acc not in accounts:
                fail(f"fix.sessions[{n}].accounts", f"unknown account {acc!r}")
        if s.drop_copy and (s.cancel_on_disconnect or s.default_account or not s.accounts):
            fail(f"fix.sessions[{n}]", f"drop-copy session {s.comp_id} sends no orders (no cancel_on_disconnect "
                                       "nor default_account) and needs the accounts it receives copies of")
        if s.default_account and s.default_account not in s.accounts:
            fail(f"fix.sessions[{n}].default_account", f"{s.default_account!r} is not one of the session's "
                                                       f"accounts {s.accounts}")
        if not is_loopback(cfg.fix.host) and not (s.username and s.password):
            fail(f"fix.sessions[{n}].password", f"a FIX port open to {cfg.fix.host} needs a username and password "
                                                "for every session (without them it listens on loopback only)")
    f = cfg.fix
    if not 0 < f.logon_timeout_s <= 300 or f.max_pending < 1 or f.max_pending_per_source < 1 \
            or not 4096 <= f.max_message_bytes <= 1 << 30:
        fail("fix", "logon_timeout_s must be above 0 and at most 300, max_pending and max_pending_per_source at "
                    "least 1, max_message_bytes between 4096 and 1073741824")
    names, tokens = set(), set()
    for n, u in enumerate(cfg.api.users):
        if not u.name or u.name in names:
            fail(f"api.users[{n}].name", "each API user needs a distinct name")
        if len(u.token) < 16 or u.token in tokens:
            fail(f"api.users[{n}].token", "each API user needs its own token of at least 16 characters")
        if u.name in {x.comp_id for x in cfg.fix.sessions}:
            fail(f"api.users[{n}].name", f"{u.name!r} names a FIX session: allocation acks go to the session of that name")
        names.add(u.name)
        tokens.add(u.token)
        for acc in u.accounts:
            if acc not in accounts:
                fail(f"api.users[{n}].accounts", f"unknown account {acc!r}")
        if (u.role == "risk") != (u.name in cfg.risk.admins):
            where = "in" if u.name in cfg.risk.admins else "not in"
            fail(f"api.users[{n}].role", f"{u.name!r}: role risk and a place in risk.admins go together "
                                          f"(role {u.role!r}, {where} risk.admins)")
    if not 0 < cfg.api.request_timeout_s <= 300 or cfg.api.max_connections < 1:
        fail("api", "request_timeout_s must be above 0 and at most 300, max_connections at least 1")
    if cfg.api.enabled and not cfg.api.users and not is_loopback(cfg.api.host):
        fail("api.users", f"an API open to {cfg.api.host} needs users with tokens (without them it listens on "
                          "loopback only)")
    for n, v in enumerate(cfg.venues):
        if not 0 <= v.port <= 65535:
            fail(f"venues[{n}].port", f"port {v.port} is not between 0 and 65535")
        if not 0 < v.ack_timeout_s <= 3600:
            fail(f"venues[{n}].ack_timeout_s", "must be above 0 and at most 3600 seconds")
        if v.sim.enabled and v.port == 0:
            fail(f"venues[{n}].port", f"simulated venue {v.name} needs a port")
        if v.sim.enabled and not is_loopback(v.host):
            fail(f"venues[{n}].host", f"simulated venue {v.name} has no credentials: it listens on loopback only")
        if not 0.0 <= v.sim.reject_rate <= 1.0:
            fail(f"venues[{n}].sim.reject_rate", "must be between 0 and 1")
        if v.sim.depth < 0 or v.sim.level_qty < 1 or v.sim.tick_ms < 1 or v.sim.level_ticks < 1:
            fail(f"venues[{n}].sim", "depth >= 0, level_qty >= 1, level_ticks >= 1 and tick_ms >= 1 are required")
    if cfg.calendar is not None:
        _check_calendar(cfg.calendar, cfg.venues, cfg.instruments, fail)
    elif any(v.hours for v in cfg.venues) or any(i.hours for i in cfg.instruments):
        fail("calendar", "venue and instrument hours need a [calendar] (their time zone)")
    venues = [v.name for v in cfg.venues]
    if len(set(venues)) != len(venues):
        fail("venues", "duplicate venue name")
    reserved = set(venues) & {*POLICIES, CROSS, INTERNAL}
    if reserved:
        fail("venues", f"{sorted(reserved)[0]} names a routing policy or the internal crossing book, not a venue")
    if venues and cfg.default_venue not in venues:
        fail("default_venue", f"{cfg.default_venue!r} is not one of the venues {venues}")
    if cfg.reports.at and cfg.reports.at != AT_END_OF_DAY:
        try:
            dt.time.fromisoformat(cfg.reports.at)
        except ValueError:
            fail("reports.at", f"{cfg.reports.at!r} is not {AT_END_OF_DAY!r} nor a time of day HH:MM or HH:MM:SS")
    if cfg.reports.reports:
        from oms.reporting import ReportError, names  # imports this module, and pyarrow: only when needed

        try:
            names(cfg.reports.reports)
        except ReportError as exc:
            fail("reports.reports", str(exc))
    for ccy, rate in cfg.fx.items():
        try:
            ok = to_price(rate, "fx rate", MAX_FX) > 0
        except FixedPointError as exc:
            fail(f"fx.{ccy}", str(exc))
        else:
            if not ok:
                fail(f"fx.{ccy}", "must be positive")
    for n, rule in enumerate(cfg.risk.limits):
        try:
            parse_rule(rule)
        except RiskConfigError as exc:
            fail(f"risk.limits[{n}].{exc.key}", exc.reason)
        for name, known in (("account", accounts), ("symbol", symbols)):
            if getattr(rule, name) and getattr(rule, name) not in known:
                fail(f"risk.limits[{n}].{name}", f"unknown {name} {getattr(rule, name)!r}")
    for n, pt in enumerate(cfg.risk.post_trade):
        try:
            parse_post_trade(pt)
        except RiskConfigError as exc:
            fail(f"risk.post_trade[{n}].{exc.key}", exc.reason)
        if pt.account and pt.account not in accounts:
            fail(f"risk.post_trade[{n}].account", f"unknown account {pt.account!r}")
    for acc, nav in cfg.risk.nav.items():
        if acc not in accounts:
            fail(f"risk.nav.{acc}", f"unknown account {acc!r}")
        try:
            positive = to_money(nav, "NAV") > 0
        except FixedPointError as exc:
            fail(f"risk.nav.{acc}", str(exc))
        else:
            if not positive:
                fail(f"risk.nav.{acc}", "a NAV must be positive")
    if not 0 <= cfg.risk.soft_pct <= 100:
        fail("risk.soft_pct", "must be between 0 and 100")
    for key, shares in [*((f"risk.adv.{s}", v) for s, v in cfg.risk.adv.items()),
                        *((f"risk.locates[{n}].qty", loc.qty) for n, loc in enumerate(cfg.risk.locates))]:
        if not 0 <= shares <= MAX_QTY:
            fail(key, f"{shares} is out of range (0 to {MAX_QTY})")
    if cfg.nats.positions_interval_ms < 0 or cfg.nats.max_backlog < 1:
        fail("nats", "positions_interval_ms must be >= 0 and max_backlog >= 1")
    if not cfg.nats.url and not is_loopback(cfg.nats.host) \
            and not (cfg.nats.user or cfg.nats.nkey_seed):
        fail("nats.host", f"an embedded NATS server open to {cfg.nats.host} needs the OMS's user and password or "
                          "nkey (without them it listens on loopback only)")
    if cfg.nats.user and cfg.nats.nkey_seed:
        fail("nats.nkey_seed", "the OMS authenticates with user/password or an nkey, not both")
    for n, u in enumerate(cfg.nats.users):
        if bool(u.user) == bool(u.nkey) or (u.nkey and u.password):
            fail(f"nats.users[{n}]", "give user and password, or nkey (a public key), not both")
        if u.nkey and not u.nkey.startswith("U"):
            fail(f"nats.users[{n}].nkey", "a user's public nkey starts with U")


def _check_calendar(cal: CalendarConfig, venues: list[VenueConfig], instruments: list[InstrumentConfig],
                    fail: Callable[[str, str], None]) -> None:
    try:
        zoneinfo.ZoneInfo(cal.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        fail("calendar.time_zone", f"unknown time zone {cal.time_zone!r}")
    for key, text in (("open", cal.open), ("close", cal.close)):
        try:
            parse_hhmm(text)
        except ValueError as exc:
            fail(f"calendar.{key}", str(exc))
    if parse_hhmm(cal.open) >= parse_hhmm(cal.close):
        fail("calendar.close", f"the day must close ({cal.close}) after it opens ({cal.open})")
    for n, day in enumerate(cal.holidays):
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            fail(f"calendar.holidays[{n}]", f"{day!r} is not a date YYYY-MM-DD")
    bad = [d for d in cal.weekdays if d not in WEEKDAYS]
    if bad or not cal.weekdays:
        fail("calendar.weekdays", f"{bad[0]!r} is not one of {', '.join(WEEKDAYS)}" if bad else "no trading weekday")
    for key, name, hours in [*((f"venues[{n}].hours", v.name, v.hours) for n, v in enumerate(venues)),
                             *((f"instruments[{n}].hours", i.symbol, i.hours) for n, i in enumerate(instruments))]:
        if hours:
            try:
                start, end = _hours(hours)
            except ValueError as exc:
                fail(key, f"{exc} (hours are HH:MM-HH:MM)")
            if start >= end:
                fail(key, f"{name} must close after it opens")
    if cal.outside_hours == "accept" and any(i.hours for i in instruments):
        fail("calendar.outside_hours", 'instrument hours need "hold" or "reject" (with "accept" every order is '
                                       "routed at any hour)")


def load(path: str | os.PathLike) -> Config:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(path, "-", f"cannot read: {exc.strerror}") from exc
    try:
        cfg = msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        reason, _, where = msg.partition(" - at `")
        key = where.rstrip("`").removeprefix("$").removeprefix(".")
        if reason.startswith("Object contains unknown field `"):  # name the offending key itself
            key = ".".join(filter(None, (key, reason.split("`")[1])))
        raise ConfigError(path, key or "-", reason) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(path, "-", f"not valid TOML: {exc}") from exc
    _check(path, cfg)
    return cfg
