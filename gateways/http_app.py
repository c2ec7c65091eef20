"""The OMS's HTTP application: the allocation API, the risk and operations API and the
web console, one Litestar app on one port (`[api]`), with an OpenAPI document at
/v1/openapi.json.

Who acts is the authenticated user: a bearer token (`Authorization: Bearer ...`), or the
console's session cookie (HttpOnly, SameSite=Strict) that signing in with a token sets.
A request that changes something on a cookie also needs the session's CSRF token in
`X-OMS-CSRF` (only the console's own page can read it), so another site cannot act
through a signed-in browser. Tokens are compared, never logged or shown. Every refusal,
the framework's own included (404, 405, 413, ...), is JSON: `{"error", "text"}`.
"""
import hmac
import logging
import secrets
import time
from typing import Any

from litestar import Litestar, Request, Response, Router, delete, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath, RawBody

from gateways.console import Console
from gateways.http_api import AllocationApi, ApiError, _Body, _decode
from gateways.http_server import HttpServer, threaded
from gateways.report_api import ReportApi
from gateways.day_api import DayApi
from gateways.risk_api import RiskApi, Sessions
from oms.config import API_OPEN_USER, ApiUser, Config
from oms.metrics import Metrics
from oms.runtime import Runtime

log = logging.getLogger("gateways.http_app")

MAX_BODY = 1 << 20
COOKIE = "oms_session"
_SESSION_S = 12 * 3600
_NAMES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
          413: "TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "TOO_MANY_REQUESTS", 503: "BUSY"}
_SAFE = {"GET", "HEAD", "OPTIONS"}


class SignIn(_Body):
    token: str


class Users:
    """Bearer tokens and console sessions to users."""

    def __init__(self, users: list[ApiUser]) -> None:
        self.users = users
        self.open = ApiUser(name=API_OPEN_USER, token="", role="pm") if not users else None
        self.sessions: dict[str, tuple[ApiUser, str, float]] = {}  # session id -> (user, csrf token, expiry)

    def by_token(self, token: str) -> ApiUser | None:
        found = None
        for u in self.users:  # every token compared, in constant time: no timing tells which one is close
            if hmac.compare_digest(u.token.encode(), token.encode()):
                found = u
        return found

    def authenticate(self, request: Request) -> ApiUser:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and (user := self.by_token(token.strip())) is not None:
            return user
        session = self.sessions.get(request.cookies.get(COOKIE, ""))
        if session is not None and session[2] > time.monotonic():
            user, csrf, _ = session
            if request.method not in _SAFE and not hmac.compare_digest(request.headers.get("x-oms-csrf", ""), csrf):
                raise ApiError(403, "CSRF", "a change from the console needs its X-OMS-CSRF header")
            return user
        if self.open is not None:
            return self.open
        raise ApiError(401, "UNAUTHORIZED", "a valid bearer token is required (Authorization: Bearer <token>)")

    def sign_in(self, token: str) -> tuple[str, ApiUser]:
        user = self.by_token(token)
        if user is None:
            raise ApiError(401, "UNAUTHORIZED", "unknown token")
        now = time.monotonic()
        self.sessions = {k: v for k, v in self.sessions.items() if v[2] > now}
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = (user, secrets.token_urlsafe(32), now + _SESSION_S)
        return sid, user

    def csrf(self, request: Request) -> str:
        session = self.sessions.get(request.cookies.get(COOKIE, ""))
        return session[1] if session is not None else ""


async def _the_document_only(request: Request) -> None:
    """Paths below the OpenAPI document are 404 like any other (Litestar's own page there is HTML)."""
    if request.path_params:
        raise NotFoundException(f"no route {request.url.path}")


def _json_refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return Response(exc.body, status_code=exc.status)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        return Response({"error": _NAMES.get(status, f"HTTP_{status}"), "text": exc.detail}, status_code=status,
                        headers=exc.headers)
    log.error("API request %s %s failed", request.method, request.url.path, exc_info=exc)
    return Response({"error": "INTERNAL", "text": "internal error (see the OMS log)"}, status_code=500)


class HttpApi:
    """Builds the application, runs it on its server, feeds the console from the runtime."""

    def __init__(self, cfg: Config, runtime: Runtime, metrics: Metrics | None = None,
                 sessions: Sessions | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.users = Users(cfg.api.users)
        self.alloc = AllocationApi(cfg, runtime)
        self.risk = RiskApi(cfg, runtime, sessions)
        self.day = DayApi(runtime)
        self.console = Console(cfg, runtime, self.risk, metrics)
        self.reports = ReportApi(cfg, runtime.journal.path)
        runtime.listeners.append(self.console.on_events)
        self.app = Litestar(
            route_handlers=[*self._allocation_routes(), *self._session_routes(), *self.risk.routes(self.users),
                            *self.day.routes(self.users), *self.console.routes(self.users), *self.reports.routes(self.users)],
            exception_handlers={Exception: _json_refusal, HTTPException: _json_refusal, 404: _json_refusal},
            openapi_config=OpenAPIConfig(
                title="OMS: allocation, risk and operations API", version="1",
                render_plugins=[JsonRenderPlugin(path="/")], openapi_router=Router("/v1/openapi.json", route_handlers=[], include_in_schema=False,
                                      before_request=_the_document_only)),
            request_max_body_size=MAX_BODY, on_startup=[self.console.start], on_shutdown=[self.console.stop],
            logging_config=None,
        )
        self.server: HttpServer | None = None

    async def _counted(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, with every answer counted by method and status."""
        if scope["type"] != "http" or self.metrics is None:
            return await self.app(scope, receive, send)
        requests = self.metrics.api_requests

        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                requests.labels(scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting)

    def start(self) -> None:
        a = self.cfg.api
        self.server = HttpServer(self._counted, a.host, a.port, deadline_s=a.request_timeout_s,
                                 max_connections=a.max_connections)
        self.server.start()
        log.info("HTTP API and console on http://%s:%d/ (%s)", a.host, self.port,
                 f"{len(a.users)} users" if a.users else "open: no users configured")

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.reports.stop()

    # ------------------------------------------------------------------ routes
    def _allocation_routes(self) -> list[Any]:
        api, users = self.alloc, self.users

        def answer(result: tuple[int, Any]) -> Response:
            return Response(result[1], status_code=result[0])

        def writer(request: Request) -> str:
            """The acting user of a change: anyone but a viewer."""
            user = users.authenticate(request)
            if user.role == "viewer":
                raise ApiError(403, "FORBIDDEN", f"{user.name} is a viewer: it may look, not change")
            return user.name

        @get("/v1/health")
        @threaded
        def health(request: Request) -> Response:
            return answer(api.health(users.authenticate(request).name))

        @get("/v1/orders/{order_id:str}")
        @threaded
        def get_order(request: Request, order_id: FromPath[str]) -> Response:
            return answer(api.get_order(users.authenticate(request).name, order_id))

        @post("/v1/allocations")
        @threaded
        def allocate(request: Request, body: RawBody) -> Response:
            return answer(api.allocate(writer(request), body))

        @get("/v1/allocations/{alloc_id:str}")
        @threaded
        def get_allocation(request: Request, alloc_id: FromPath[str]) -> Response:
            return answer(api.get_allocation(users.authenticate(request).name, alloc_id))

        @delete("/v1/allocations/{alloc_id:str}", status_code=200)
        @threaded
        def cancel_allocation(request: Request, alloc_id: FromPath[str]) -> Response:
            return answer(api.cancel_allocation(writer(request), alloc_id))

        @get("/v1/accounts/{account:str}/positions")
        @threaded
        def positions(request: Request, account: FromPath[str]) -> Response:
            return answer(api.positions(users.authenticate(request).name, account))

        @post("/v1/rebalance")
        @threaded
        def rebalance(request: Request, body: RawBody) -> Response:
            return answer(api.rebalance(writer(request), body))

        return [health, get_order, allocate, get_allocation, cancel_allocation, positions, rebalance]

    def _session_routes(self) -> list[Any]:
        users = self.users

        @post("/v1/session", sync_to_thread=False)
        def sign_in(body: RawBody) -> Response:
            """Sign in with a token: sets the console's session cookie."""
            sid, user = users.sign_in(_decode(body, SignIn).token)
            return Response({"user": user.name, "role": user.role}, status_code=200, cookies=[
                Cookie(key=COOKIE, value=sid, httponly=True, samesite="strict", path="/", max_age=_SESSION_S)])

        @get("/v1/session", sync_to_thread=False)
        def whoami(request: Request) -> Response:
            """Who the console acts as, and the CSRF token its changes carry."""
            user = users.authenticate(request)
            return Response({"user": user.name, "role": user.role, "accounts": user.accounts,
                             "csrf": users.csrf(request), "open": users.open is not None})

        @delete("/v1/session", status_code=200, sync_to_thread=False)
        def sign_out(request: Request) -> Response:
            users.sessions.pop(request.cookies.get(COOKIE, ""), None)
            return Response({"user": None}, cookies=[Cookie(key=COOKIE, value="", httponly=True, samesite="strict",
                                                            path="/", max_age=0)])

        return [sign_in, whoami, sign_out]
