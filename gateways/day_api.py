"""Operations of the trading day over HTTP (role risk, the engine's risk admins): start and
end the day, halt and resume a symbol, split a stock. Each is an engine command, journaled;
the answer names the events it made, or the engine's refusal (its alert) as a 422."""
from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import RawBody

from gateways.http_api import ApiError, _Body, _decode, command, query
from gateways.http_server import threaded
from oms.config import ApiUser
from oms.engine import Engine
from oms.model import ComplianceAlert, EndOfDay, StartOfDay, StockSplit, TradingHalt
from oms.runtime import Runtime

_REFUSALS = frozenset({"authorisation", "trading_day", "trading_halt", "corporate_action"})


class StartIn(_Body):
    reason: str
    date: str = ""  # YYYY-MM-DD; "": the calendar's date of now, or the day after the last


class EndIn(_Body):
    reason: str


class HaltIn(_Body):
    symbol: str
    halted: bool
    reason: str


class SplitIn(_Body):
    symbol: str
    new: int  # shares for every `old`: 2 and 1 for a 2-for-1 split
    old: int
    reason: str


def day(engine: Engine) -> dict[str, Any]:
    st = engine.state
    return {"date": st.day or None, "open": st.day_open,
            "halts": {s: sorted(v or "operator" for v in venues) for s, venues in sorted(st.halts.items())}}


class DayApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def act(self, user: ApiUser, cmd: StartOfDay | EndOfDay | TradingHalt | StockSplit) -> dict[str, Any]:
        if user.role != "risk":
            raise ApiError(403, "FORBIDDEN", f"{user.name} ({user.role}) may not run the trading day")
        if not cmd.reason.strip():
            raise ApiError(400, "BAD_FIELD", "reason: every operation needs a reason", field="reason")
        events = command(self.runtime, cmd)
        refused = [e for e in events if type(e) is ComplianceAlert and e.control in _REFUSALS and e.level == "hard"]
        if refused:
            raise ApiError(422, "REFUSED", refused[0].text)
        return {"status": "applied", "events": [type(e).__name__ for e in events], **query(self.runtime, day)}

    def routes(self, users: Any) -> list[Any]:
        api = self

        @get("/v1/day")
        @threaded
        def get_day(request: Request) -> dict[str, Any]:
            """The trading date, whether a day is open, and the symbols halted (by venue, or an operator)."""
            users.authenticate(request)
            return query(api.runtime, day)

        @post("/v1/day/start", status_code=200)
        @threaded
        def start(request: Request, body: RawBody) -> dict[str, Any]:
            """Start the trading day now (role risk): daily counters reset, GT orders restated."""
            user, req = users.authenticate(request), _decode(body, StartIn)
            return api.act(user, StartOfDay(user=user.name, date=req.date, reason=req.reason))

        @post("/v1/day/end", status_code=200)
        @threaded
        def end(request: Request, body: RawBody) -> dict[str, Any]:
            """End the trading day now (role risk): DAY orders done for day, GTD orders of the day expired."""
            user, req = users.authenticate(request), _decode(body, EndIn)
            return api.act(user, EndOfDay(user=user.name, reason=req.reason))

        @post("/v1/halts", status_code=200)
        @threaded
        def halt(request: Request, body: RawBody) -> dict[str, Any]:
            """Halt or resume trading in a symbol everywhere (role risk)."""
            user, req = users.authenticate(request), _decode(body, HaltIn)
            return api.act(user, TradingHalt(symbol=req.symbol, halted=req.halted, user=user.name, reason=req.reason))

        @post("/v1/splits", status_code=200)
        @threaded
        def split(request: Request, body: RawBody) -> dict[str, Any]:
            """Split a stock (role risk): open orders and positions restated."""
            user, req = users.authenticate(request), _decode(body, SplitIn)
            return api.act(user, StockSplit(user=user.name, symbol=req.symbol, new=req.new, old=req.old,
                                            reason=req.reason))

        return [get_day, start, end, halt, split]
