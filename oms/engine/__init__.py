"""The engine: the single writer. `Engine.handle(command) -> events`, no I/O.

One class, its handlers grouped by concern in the modules of this package:

| module | what |
|---|---|
| core.py | `handle` (a command's events, all or none), emitting reports and child updates |
| trader.py | new orders, status requests, cancel-on-disconnect |
| amend.py | cancel and replace, carried out on the children (the split-replace flow) |
| venue.py | venue reports: acks, fills, busts, cancels, replaces, rejects, restatements, Stopped |
| routing.py | internal crossing, routing by policy, re-routing, quotes |
| recovery.py | venues down and up, reconciliation, children in doubt, timeouts |
| allocations.py | block allocation and its cancel |
| risk_admin.py | limits, kill switches, overrides, the post-trade sweep |
| day.py | the trading day (start and end, GT orders carried), the timer, expiry |
| halts.py | trading halts: orders held or refused, routed on resume |
| corporate.py | a stock split: open orders restated |
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from oms.engine.allocations import Allocations
from oms.engine.amend import Amendments
from oms.engine.corporate import CorporateActions
from oms.engine.core import DEFAULT_POLICY, ReferenceData, SequentialIds, VenuePolicy
from oms.engine.day import TradingDay
from oms.engine.halts import Halts
from oms.engine.recovery import Recovery
from oms.engine.risk_admin import RiskAdministration
from oms.engine.routing import Routing
from oms.engine.trader import TraderCommands
from oms.engine.venue import VenueReports
from oms.model import (
    Allocate,
    Anomaly,
    CancelAllocation,
    CancelRequest,
    EndOfDay,
    EvaluatePostTrade,
    Event,
    MarketData,
    NewOrder,
    ReenableExecutions,
    ReplaceRequest,
    SessionLost,
    SetKillSwitch,
    SetLimit,
    SetOverride,
    StartOfDay,
    StatusRequest,
    StockSplit,
    Timer,
    TradingHalt,
    VenueCancelReject,
    VenueExecReport,
    VenueNotice,
    VenueReject,
    VenueStatus,
)
from risk.config import RiskConfig

__all__ = ["Engine", "ReferenceData", "SequentialIds", "VenuePolicy"]


class Engine(TraderCommands, Amendments, VenueReports, Routing, Recovery, Allocations, RiskAdministration,
             TradingDay, Halts, CorporateActions):
    def __init__(
        self,
        ref: ReferenceData,
        clock: Callable[[], int],
        ids: Callable[[], str],
        on_anomaly: Callable[[Anomaly], None] | None = None,
        risk: RiskConfig | None = None,
        history: Callable[[], Iterable[Event]] | None = None,
        snapshot: tuple[bytes, int] | None = None,
    ) -> None:
        self.ref = ref
        self.clock = clock
        self.ids = ids
        self.risk_cfg = risk or RiskConfig()
        # a snapshot's state (oms.snapshot) and the last journal record it holds: the state
        # starts from it, and an undo rebuilds from it too
        self._base, self.base_seq = snapshot or (None, 0)
        self.state, self.compliance = self._fresh_state()
        # where an undo rebuilds state from: every event applied before the current command.
        # Without a source (a standalone engine) the engine keeps its own log of them.
        self._log: list[Event] | None = [] if history is None else None
        self._history: Callable[[], Iterable[Event]] = history or (lambda: self._log or ())
        self.quotes: dict[str, dict[str, MarketData]] = {}  # symbol -> venue -> latest quote
        self.bbo: dict[str, tuple[int | None, int | None]] = {}  # symbol -> last journaled BestPrice
        self.venues_down: set[str] = set()  # live session status, for the router (not order state)
        # instruments outside their own hours at the last tick (at first: all, so the first tick releases
        # what a restart found held and due)
        self.instruments_closed: set[str] = set(ref.calendar.instrument_hours) if ref.calendar else set()
        # (symbol, venue) whose venue's session opened since the last tick: resumed on the tick unless the
        # venue repeated the symbol's own halt meanwhile (not journaled: a restart's logon reports it again)
        self.opening: dict[tuple[str, str], str] = {}  # -> the resume's reason
        self.duplicate_venue_execs = 0
        self._on_anomaly = on_anomaly
        self._min_timeout = min([p.ack_timeout_ns for p in ref.venue_policies.values()]
                                + [DEFAULT_POLICY.ack_timeout_ns])
        self._out: list[Event] = []
        self._now = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            NewOrder: self._new_order,
            CancelRequest: self._cancel_request,
            ReplaceRequest: self._replace_request,
            StatusRequest: self._status_request,
            VenueExecReport: self._venue_report,
            VenueCancelReject: self._venue_cancel_reject,
            VenueReject: self._venue_reject,
            MarketData: self._market_data,
            SessionLost: self._session_lost,
            Timer: self._timer,
            SetLimit: self._risk_change,
            SetKillSwitch: self._risk_change,
            SetOverride: self._risk_change,
            ReenableExecutions: self._risk_change,
            EvaluatePostTrade: self._evaluate_post_trade,
            VenueStatus: self._venue_status,
            Allocate: self._allocate,
            CancelAllocation: self._cancel_allocation,
            VenueNotice: self._venue_notice,
            StartOfDay: self._day_command,
            EndOfDay: self._day_command,
            TradingHalt: self._trading_halt,
            StockSplit: self._stock_split,
        }
