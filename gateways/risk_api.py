"""The risk and operations API: kill switches, limits (with how much of each is used),
overrides, re-enabling executions, post-trade evaluation on demand, and read-only views
of the trader and venue sessions.

Only users with role `risk` change controls. A change is an engine command whose user is
the authenticated one (never a field of the body) and which carries the user's reason;
the engine journals it as `RiskChanged` (streamed on `oms.compliance.change`). An attempt
by any other role still goes to the engine, which refuses it and journals a
`ComplianceAlert` (config guarantees that only `risk` users are in `risk.admins`), and
the caller gets 403. Input that cannot be applied (unknown scope, account, control; a
negative or absurd limit) is refused with 4xx naming the field before anything is sent.
"""
import datetime
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from litestar import Request, get, post
from litestar.params import RawBody

from gateways.http_server import threaded
from gateways.http_api import ApiError, _Body, _decode, command, query
from oms.config import ApiUser, Config
from oms.engine import Engine
from oms.fixed import price_str
from oms.model import (
    ComplianceAlert, EvaluatePostTrade, ReenableExecutions, RiskChanged, SetKillSwitch, SetLimit, SetOverride, Side,
)
from oms.runtime import Runtime
from risk.compliance import RiskConfigError, control_named, parse_rule
from risk.controls import UNLIMITED, Control
from risk.kernel import _observe

Sessions = Callable[[], dict[str, list[dict[str, Any]]]]  # {"traders": [...], "venues": [...]} from the FIX gateways

_MONEY = {Control.CREDIT, Control.GROSS_EXPOSURE, Control.NET_EXPOSURE, Control.FIRM_GROSS}
# controls whose figure builds up as orders work and fill: what "utilisation" means
_ACCRUING = (Control.MAX_OPEN_ORDERS, Control.POSITION_LONG, Control.POSITION_SHORT, Control.CREDIT,
             Control.GROSS_EXPOSURE, Control.NET_EXPOSURE, Control.FIRM_GROSS)
_PER_INSTRUMENT = {Control.POSITION_LONG, Control.POSITION_SHORT}
_SIDES = {s.name: s for s in Side}


class KillSwitchIn(_Body):
    scope: Literal["firm", "account", "session", "instrument", "venue"]
    reason: str
    key: str = ""
    on: bool = True
    allow_reducing: bool = False
    reduce_only: bool = False


class LimitIn(_Body):
    control: str
    value: str | int
    reason: str
    scope: Literal["firm", "account", "instrument", "account_instrument"] = "firm"
    account: str = ""
    symbol: str = ""
    soft_pct: int | None = None


class OverrideIn(_Body):
    account: str
    control: str
    until: str  # ISO 8601 with an offset, e.g. 2026-12-01T17:00:00Z
    reason: str


class ReenableIn(_Body):
    symbol: str
    side: Literal["BUY", "SELL", "SELL_SHORT", "SELL_SHORT_EXEMPT"]
    reason: str


def _bad(field: str, text: str, status: int = 422) -> ApiError:
    return ApiError(status, "BAD_FIELD", f"{field}: {text}", field=field)


def utilisation(engine: Engine) -> list[dict[str, Any]]:
    """Each configured limit of an accruing control against its figure now, per account
    (and instrument for positions): the figure a next order of nothing would be checked at."""
    c = engine.compliance
    lim, book, acct, inst = c.lim, c.book, c.acct, c.inst
    accounts, symbols = list(c.accounts), list(c.symbols)
    out = []
    for control in _ACCRUING:
        cells = np.argwhere(lim[control] != UNLIMITED)
        if control not in _PER_INSTRUMENT:  # an account-wide figure: its tightest limit
            seen: dict[int, int] = {}
            for a, i in cells.tolist():
                seen[a] = min(seen.get(a, UNLIMITED), int(lim[control, a, i]))
            cells = [(a, -1, v) for a, v in seen.items()]
        else:
            cells = [(a, i, int(lim[control, a, i])) for a, i in cells.tolist()]
        for a, i, limit in cells:
            figure = int(_observe(book, acct, inst, a, max(i, 0), 1, 0, 0, 0, 0, int(control))[1])
            figure -= control is Control.MAX_OPEN_ORDERS  # its figure counts the next order
            shown = price_str if control in _MONEY else str
            out.append({"account": accounts[a], "control": control.label, "symbol": symbols[i] if i >= 0 else None,
                        "figure": shown(figure), "limit": shown(limit),
                        "pct": round(100 * abs(figure) / limit, 1) if limit else (100.0 if figure else 0.0)})
    return out


def controls(engine: Engine) -> dict[str, Any]:
    """Kill switches on, overrides in force, executions throttled."""
    c = engine.compliance
    return {"kill_switches": [{"scope": s.scope, "key": s.key, "user": s.user, "reason": s.reason,
                               "allow_reducing": s.allow_reducing, "reduce_only": s.reduce_only}
                              for s in c.kill.values()],
            "overrides": [{"account": a, "control": ctl.label, "until": _iso(until)}
                          for (a, ctl), until in c.overrides.items()],
            "throttled": [{"symbol": sym, "side": Side(side).name} for sym, side in sorted(c.exec_throttled)]}


def _iso(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(timespec="seconds")


class RiskApi:
    def __init__(self, cfg: Config, runtime: Runtime, sessions: Sessions | None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.sessions = sessions or (lambda: {"traders": [], "venues": []})
        self.names = {"account": {a.id for a in cfg.accounts},
                      "session": {s.comp_id for s in cfg.fix.sessions} | set(cfg.api_entitlements()),
                      "instrument": {i.symbol for i in cfg.instruments}, "venue": {v.name for v in cfg.venues}}

    # ------------------------------------------------------------------ changes
    def change(self, user: ApiUser, cmd: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions
               ) -> dict[str, Any]:
        """The engine applies it (journaled, streamed) or, for any role but risk, refuses it with an alert."""
        if user.role == "risk":
            if not cmd.reason.strip():
                raise _bad("reason", "every change needs a reason", 400)
            self._check(cmd)
        for ev in command(self.runtime, cmd):
            if isinstance(ev, RiskChanged):
                return {"status": "applied", "user": ev.user, "reason": ev.reason, "ts": ev.ts,
                        "change": type(cmd).__name__}
            if isinstance(ev, ComplianceAlert) and ev.control == "authorisation":
                if user.role != "risk":
                    raise ApiError(403, "FORBIDDEN", f"{user.name} ({user.role}) may not change controls; "
                                                     "the attempt is in the compliance alerts")
                raise ApiError(422, "REFUSED", ev.text)
        raise ApiError(500, "INTERNAL", "the engine did not apply the change (see the OMS log)")

    def _check(self, cmd: Any) -> None:
        if isinstance(cmd, SetKillSwitch):
            if cmd.scope != "firm" and cmd.key not in self.names[cmd.scope]:
                raise _bad("key", f"unknown {cmd.scope} {cmd.key!r}")
        elif isinstance(cmd, SetLimit):
            try:
                parse_rule(cmd)
            except RiskConfigError as exc:
                raise _bad(exc.key, exc.reason) from None
            if cmd.scope in ("account", "account_instrument") and cmd.account not in self.names["account"]:
                raise _bad("account", f"unknown account {cmd.account!r}")
            if cmd.scope in ("instrument", "account_instrument") and cmd.symbol not in self.names["instrument"]:
                raise _bad("symbol", f"unknown instrument {cmd.symbol!r}")
            if cmd.soft_pct is not None and not 0 < cmd.soft_pct <= 100:
                raise _bad("soft_pct", "a percentage above 0 and at most 100")
        elif isinstance(cmd, SetOverride):
            if cmd.account not in self.names["account"]:
                raise _bad("account", f"unknown account {cmd.account!r}")
            try:
                control_named(cmd.control)
            except RiskConfigError as exc:
                raise _bad("control", exc.reason) from None
        elif isinstance(cmd, ReenableExecutions) and cmd.symbol not in self.names["instrument"]:
            raise _bad("symbol", f"unknown instrument {cmd.symbol!r}")

    def evaluate(self, user: ApiUser) -> dict[str, Any]:
        if user.role != "risk":
            raise ApiError(403, "FORBIDDEN", f"{user.name} ({user.role}) may not run post-trade evaluations")
        events = command(self.runtime, EvaluatePostTrade(user=user.name))
        return {"alerts": [{"control": a.control, "level": a.level, "account": a.account, "text": a.text}
                           for a in events if isinstance(a, ComplianceAlert)]}

    # ------------------------------------------------------------------ routes
    def routes(self, users: Any) -> list[Any]:
        api = self

        def acting(request: Request) -> ApiUser:
            return users.authenticate(request)

        @get("/v1/risk/controls")
        @threaded
        def get_controls(request: Request) -> dict[str, Any]:
            """Kill switches on, overrides in force, throttled executions."""
            acting(request)
            return query(api.runtime, controls)

        @post("/v1/risk/kill-switch", status_code=200)
        @threaded
        def kill_switch(request: Request, body: RawBody) -> dict[str, Any]:
            """Turn a kill switch on or off (role risk)."""
            user, req = acting(request), _decode(body, KillSwitchIn)
            return api.change(user, SetKillSwitch(user=user.name, scope=req.scope, key=req.key, on=req.on,
                                                  allow_reducing=req.allow_reducing, reduce_only=req.reduce_only,
                                                  reason=req.reason))

        @get("/v1/risk/limits")
        @threaded
        def get_limits(request: Request) -> dict[str, Any]:
            """The limit rules in force (configured, then set at runtime) and how much of each is used now."""
            acting(request)
            return query(api.runtime, lambda e: {
                "rules": [{"control": r.control, "value": r.value, "scope": r.scope, "account": r.account,
                           "symbol": r.symbol, "soft_pct": r.soft_pct} for r in e.compliance.rules],
                "utilisation": utilisation(e)})

        @post("/v1/risk/limits", status_code=200)
        @threaded
        def set_limit(request: Request, body: RawBody) -> dict[str, Any]:
            """Set a limit (role risk); it takes effect on the next order."""
            user, req = acting(request), _decode(body, LimitIn)
            return api.change(user, SetLimit(user=user.name, control=req.control, value=str(req.value),
                                             scope=req.scope, account=req.account, symbol=req.symbol,
                                             soft_pct=req.soft_pct, reason=req.reason))

        @post("/v1/risk/overrides", status_code=200)
        @threaded
        def override(request: Request, body: RawBody) -> dict[str, Any]:
            """Let one account pass one control until a time (role risk)."""
            user, req = acting(request), _decode(body, OverrideIn)
            try:
                until = datetime.datetime.fromisoformat(req.until)
            except ValueError:
                raise _bad("until", "an ISO 8601 time with an offset, e.g. 2026-12-01T17:00:00Z", 400) from None
            if until.tzinfo is None:
                raise _bad("until", "needs an offset (Z or +hh:mm)", 400)
            return api.change(user, SetOverride(user=user.name, account=req.account, control=req.control,
                                                until=int(until.timestamp()) * 10**9, reason=req.reason))

        @post("/v1/risk/reenable", status_code=200)
        @threaded
        def reenable(request: Request, body: RawBody) -> dict[str, Any]:
            """Lift the repeated-execution throttle of a symbol and side (role risk)."""
            user, req = acting(request), _decode(body, ReenableIn)
            return api.change(user, ReenableExecutions(user=user.name, symbol=req.symbol, side=_SIDES[req.side],
                                                       reason=req.reason))

        @post("/v1/risk/post-trade", status_code=200)
        @threaded
        def post_trade(request: Request) -> dict[str, Any]:
            """Evaluate every post-trade rule now (role risk); the changes of level found."""
            return api.evaluate(acting(request))

        @get("/v1/sessions")
        @threaded
        def sessions(request: Request) -> dict[str, Any]:
            """Trader and venue FIX sessions: configured, and whether logged on."""
            acting(request)
            return api.sessions()

        return [get_controls, kill_switch, get_limits, set_limit, override, reenable, post_trade, sessions]


def fix_sessions(cfg: Config, trader: Any, venues: Any) -> Sessions:
    """The read-only view of the FIX sessions: the trader acceptor's (logged on or not) and
    the venue links' (up or down), from the gateways that own them."""

    def read() -> dict[str, list[dict[str, Any]]]:
        import quickfix as fix

        traders = []
        for s in cfg.fix.sessions:
            sid = trader.sids.get(s.comp_id) if trader is not None else None
            session = fix.Session.lookupSession(sid) if sid is not None else None
            traders.append({"session": s.comp_id, "begin_string": s.begin_string, "accounts": s.accounts,
                            "logged_on": bool(session is not None and session.isLoggedOn())})
        links = venues.links if venues is not None else {}
        return {"traders": traders, "venues": [{"venue": v.name, "begin_string": v.begin_string,
                                                "up": bool(v.name in links and links[v.name].up)}
                                               for v in cfg.venues]}

    return read
