"""Domain model: reference data, commands and events as msgspec Structs.

One definition serves the journal, the streams and the API. Prices are fixed-point
integers (see `oms.fixed`), quantities integer units. Enum values are the FIX codes,
so the gateways translate without tables of their own.
"""
from __future__ import annotations

import enum

import msgspec


class FixCode(str, enum.Enum):
    """A FIX code. Hashed in C like the str it is: these are dict and set keys on every
    command, and Enum's own __hash__ is a Python call."""

    __hash__ = str.__hash__


class Side(FixCode):
    BUY = "1"
    SELL = "2"
    SELL_SHORT = "5"


class OrdType(FixCode):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"


class TimeInForce(FixCode):
    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"
    GTD = "6"


class OrdStatus(FixCode):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    STOPPED = "7"  # a venue guarantees the price of what is left (L.1.a)
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class RestatementReason(enum.IntEnum):
    """ExecRestatementReason (378) of a Restated or unsolicited report."""

    GT_RENEWAL = 1  # a GT order carried into a new day (H.1.a)
    VERBAL_CHANGE = 2
    REPRICING = 3
    BROKER_OPTION = 4
    PARTIAL_DECLINE = 5  # the venue reduced the quantity (E.1.d)
    CANCEL_ON_TRADING_HALT = 6  # K.1.b
    CANCEL_ON_SYSTEM_FAILURE = 7
    MARKET_OPTION = 8
    CORPORATE_ACTION = 10  # a split restates quantities and prices (H.1.b)


class ExecType(FixCode):
    NEW = "0"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    RESTATED = "D"
    PENDING_REPLACE = "E"
    TRADE = "F"
    TRADE_CORRECT = "G"
    TRADE_CANCEL = "H"
    ORDER_STATUS = "I"


# ---------------------------------------------------------------- reference data


class Instrument(msgspec.Struct, frozen=True):
    symbol: str
    tick_size: int  # fixed-point price units
    lot_size: int = 1
    currency: str = "USD"


class Account(msgspec.Struct, frozen=True):
    account_id: str
    name: str = ""
    base_currency: str = "USD"


# ---------------------------------------------------------------- commands


class NewOrder(msgspec.Struct, tag=True, frozen=True, gc=False):
    session: str
    cl_ord_id: str
    account: str
    symbol: str
    side: Side
    ord_type: OrdType
    qty: int
    price: int | None = None
    stop_px: int | None = None
    tif: TimeInForce = TimeInForce.DAY
    expire_time: int | None = None  # ns since epoch, for GTD
    ex_destination: str | None = None
    poss_resend: bool = False


class CancelRequest(msgspec.Struct, tag=True, frozen=True, gc=False):
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str


class ReplaceRequest(msgspec.Struct, tag=True, frozen=True, gc=False):
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    qty: int
    price: int | None = None
    stop_px: int | None = None


class StatusRequest(msgspec.Struct, tag=True, frozen=True, gc=False):
    session: str
    cl_ord_id: str
    symbol: str = ""  # echoed when the order is unknown (G.1.a)
    side: Side = Side.BUY


class VenueExecReport(msgspec.Struct, tag=True, frozen=True, gc=False):
    """An ExecutionReport received from a venue about one of our child orders."""

    venue: str
    cl_ord_id: str
    exec_id: str
    exec_type: ExecType
    last_qty: int = 0
    last_px: int = 0
    order_qty: int | None = None  # the venue's OrderQty, read on Replaced
    exec_ref_id: str | None = None
    orig_cl_ord_id: str | None = None
    text: str = ""
    cum_qty: int | None = None  # read on an order status report, to reconcile
    avg_px: int | None = None
    ord_status: OrdStatus | None = None
    poss_dup: bool = False  # resent by the venue's session (PossDupFlag): may have been applied already
    price: int | None = None  # the venue's Price (44), read on Restated
    restatement_reason: int | None = None  # ExecRestatementReason (378)


class VenueCancelReject(msgspec.Struct, tag=True, frozen=True, gc=False):
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    reason: int = 99
    text: str = ""


class VenueReject(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A venue refused a message about a child order at the session or business level."""

    venue: str
    cl_ord_id: str
    text: str = ""


class VenueNotice(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A venue message the OMS cannot act on as an order event: a BusinessMessageReject
    (of a status request: `status_refused`), an ExecType or OrdStatus it does not know.
    Journaled as an Anomaly with an alert, never dropped."""

    venue: str
    kind: str  # status_refused, business_reject, unknown_exec_type
    text: str
    cl_ord_id: str = ""


class MarketData(msgspec.Struct, tag=True, frozen=True, gc=False):
    symbol: str
    venue: str
    bid: int | None = None
    ask: int | None = None
    last: int | None = None
    bid_size: int = 0
    ask_size: int = 0


class SessionLost(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A trader session with cancel-on-disconnect logged out: cancel its working orders."""

    session: str


class VenueStatus(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A venue session went up or down. Down: the router avoids the venue and its working
    children are in doubt; up again: each is asked for its status and reconciled."""

    venue: str
    up: bool


class Timer(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Clock tick: expires GTD orders, starts and ends the trading day by the calendar;
    with end_of_day, ends the day now (as EndOfDay does)."""

    end_of_day: bool = False


class StartOfDay(msgspec.Struct, tag=True, frozen=True, gc=False):
    """An operator starts the trading day now (authorised users only): daily counters reset,
    GT orders restated and carried. `date` (YYYY-MM-DD): the trading date; "" for the
    calendar's date of now, or the day after the last one when that is not later."""

    user: str
    date: str = ""
    reason: str = ""


class TradingHalt(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Trading in a symbol halted or resumed: at one venue (its SecurityStatus or
    TradingSessionStatus; `venue` named, no user), or everywhere by an operator (`user`, no
    venue). New orders are held (or rejected, by `halt_policy`) until it resumes."""

    symbol: str
    halted: bool
    venue: str = ""
    user: str = ""
    reason: str = ""
    session: bool = False  # the venue's whole session (TradingSessionStatus), not this symbol alone


class StockSplit(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A split of `symbol`, `new` shares for every `old` (2 for 1: new=2, old=1), by an
    operator (risk admins) before the day's trading: open orders and positions restated (H.1.b)."""

    user: str
    symbol: str
    new: int
    old: int
    reason: str = ""


class EndOfDay(msgspec.Struct, tag=True, frozen=True, gc=False):
    """An operator ends the trading day now: DAY orders done for day, GTD orders of the day
    expired, GTC orders carried."""

    user: str
    reason: str = ""


class SetLimit(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Change a compliance limit at runtime (authorised users only); takes effect on the next order."""

    user: str
    control: str
    value: str
    scope: str = "firm"  # firm, account, instrument, account_instrument
    account: str = ""
    symbol: str = ""
    soft_pct: int | None = None
    reason: str = ""  # why (the risk API requires one); journaled with the change


class SetKillSwitch(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Turn a kill switch on (block new orders in scope, cancel working ones) or off.
    reduce_only: instead of blocking everything, let only position-reducing orders through
    and leave working orders alone."""

    user: str
    scope: str  # firm, account, session, instrument, venue
    key: str = ""
    on: bool = True
    allow_reducing: bool = False
    reduce_only: bool = False
    reason: str = ""


class SetOverride(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Let one account's orders pass one control until a time (authorised users only)."""

    user: str
    account: str
    control: str
    until: int  # ns since epoch
    reason: str = ""


class ReenableExecutions(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Lift the repeated-execution throttle (RTS 6 art. 15(3)) for a symbol and side."""

    user: str
    symbol: str
    side: Side
    reason: str = ""


class EvaluatePostTrade(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Evaluate every post-trade rule for every account now (also done on each timer tick)."""

    user: str = ""


class AllocationTarget(msgspec.Struct, frozen=True, gc=False):
    account: str
    amount: int  # shares (method "qty"), or a weight in fixed point (method "ratio": 1e6 = 1)


class Allocate(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Allocate a block (a parent order's executed shares) to accounts at the block's average
    price: by explicit quantities, or by ratio in whole lots. qty: how many of the
    unallocated shares a ratio allocation splits (default: all of them)."""

    user: str
    alloc_id: str
    order_id: str  # the block; or "" and the block's ClOrdID in the session's
    method: str  # "qty" or "ratio"
    targets: tuple[AllocationTarget, ...]
    qty: int | None = None
    session: str = ""  # whose entitlements apply (a FIX session, or API:<user>); "": none checked
    cl_ord_id: str = ""
    symbol: str = ""  # when given (FIX), must be the block's
    side: Side | None = None


class CancelAllocation(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Take a booked allocation back: the shares return to the block's account at the values
    they left it with, and can be allocated again."""

    user: str
    alloc_id: str
    session: str = ""  # whose entitlements apply, as for Allocate


Command = (
    NewOrder
    | CancelRequest
    | ReplaceRequest
    | StatusRequest
    | VenueExecReport
    | VenueCancelReject
    | VenueReject
    | MarketData
    | SessionLost
    | Timer
    | SetLimit
    | SetKillSwitch
    | SetOverride
    | ReenableExecutions
    | EvaluatePostTrade
    | VenueStatus
    | Allocate
    | CancelAllocation
    | VenueNotice
    | StartOfDay
    | EndOfDay
    | TradingHalt
    | StockSplit
)


# ---------------------------------------------------------------- events


class OrderAccepted(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A trader's order passed validation and exists from now on (PendingNew)."""

    ts: int
    order_id: str
    exec_id: str
    order: NewOrder
    venue: str  # where the router sends it
    risk_px: int | None = None  # price its notional counts at (the reference for a market order)


class ExecutionReport(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A parent order changed (or reports) its state: one FIX ExecutionReport to the trader.

    Carries the order's resulting state, so applying it is an assignment and replay is exact.
    """

    ts: int
    order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    session: str
    account: str
    symbol: str
    side: Side
    cl_ord_id: str
    orig_cl_ord_id: str | None
    order_qty: int
    cum_qty: int
    leaves_qty: int
    cum_value: int  # exact sum of LastQty * LastPx, for AvgPx
    last_qty: int = 0
    last_px: int = 0
    price: int | None = None
    exec_ref_id: str | None = None
    reject_reason: int | None = None  # OrdRejReason
    text: str = ""
    # pending cancel/replace request now outstanding (None when none)
    pending_cl_ord_id: str | None = None
    pending_qty: int | None = None
    pending_price: int | None = None
    restatement_reason: int | None = None  # ExecRestatementReason (378) of a Restated report


class OrderRejected(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A NewOrderSingle refused before it became an order; changes no state."""

    ts: int
    exec_id: str
    order: NewOrder
    reason: str  # oms.reasons.Reason name
    text: str
    existing: ExecutionReport | None = None  # duplicate ClOrdID: the existing order's status


class CancelRejected(msgspec.Struct, tag=True, frozen=True, gc=False):
    """OrderCancelReject to the trader; clears the pending request when order_id is set."""

    ts: int
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    ord_status: OrdStatus
    reason: str
    text: str
    replace: bool  # CxlRejResponseTo: True for a replace request
    clears_pending: bool = False


class ChildOrderSent(msgspec.Struct, tag=True, frozen=True, gc=False):
    ts: int
    child_id: str
    order_id: str
    venue: str
    cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    qty: int
    price: int | None
    stop_px: int | None
    tif: TimeInForce
    resend: bool = False  # the same child again (same ClOrdID): its venue did not have it


class ChildCancelSent(msgspec.Struct, tag=True, frozen=True, gc=False):
    ts: int
    child_id: str
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    qty: int


class ChildReplaceSent(msgspec.Struct, tag=True, frozen=True, gc=False):
    ts: int
    child_id: str
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    qty: int
    price: int | None


class ChildUpdated(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A child order's state after a venue report (its resulting state, as for parents)."""

    ts: int
    child_id: str
    status: OrdStatus
    cl_ord_id: str
    qty: int
    cum_qty: int
    price: int | None
    venue_exec_id: str | None = None  # recorded so that each venue ExecID applies once
    fill_exec_id: str | None = None  # parent ExecID of the fill this report created/changed


class ChildStatusRequested(msgspec.Struct, tag=True, frozen=True, gc=False):
    """OrderStatusRequest (H) to a venue for a child in doubt after a reconnect."""

    ts: int
    child_id: str
    venue: str
    cl_ord_id: str
    symbol: str
    side: Side


class ChildInDoubt(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A child whose state at its venue nobody can vouch for: no answer in time to an order,
    cancel, replace or status request, or a venue that refuses status requests. Visible
    (and told to the trader) until the venue answers; `ask`: send a status request."""

    ts: int
    child_id: str
    venue: str
    cl_ord_id: str
    symbol: str
    side: Side
    reason: str
    ask: bool = True


class Anomaly(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Something the engine refused to apply (illegal transition, overfill, unknown child)."""

    ts: int
    kind: str
    detail: str


class RiskChanged(msgspec.Struct, tag=True, frozen=True, gc=False):
    """An authorised change to compliance: a limit, a kill switch, an override, a re-enable."""

    ts: int
    user: str
    change: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions
    reason: str = ""  # the user's, from the change (empty in journals from before reasons)


class ComplianceAlert(msgspec.Struct, tag=True, frozen=True, gc=False):
    """For the compliance feed: a soft limit breached by an accepted order, a throttle
    switched on, a refused authorisation."""

    ts: int
    control: str
    text: str
    account: str = ""
    symbol: str = ""
    order_id: str | None = None
    level: str = "soft"  # soft (order passed), hard (control acted); post-trade: warn, hard, clear


class BestPrice(msgspec.Struct, tag=True, frozen=True, gc=False):
    """The consolidated best bid and offer of a symbol changed (conflated: only a change is
    journaled). What execution-quality reports price orders and fills against after a restart."""

    ts: int
    symbol: str
    bid: int | None
    ask: int | None


class DayStarted(msgspec.Struct, tag=True, frozen=True, gc=False):
    """The trading day `date` began: daily counters start again from zero and each
    account's daily P&L from its positions at `marks` (symbol, price: what priced them then)."""

    ts: int
    date: str
    user: str = ""  # the operator who forced it; "": the calendar
    marks: tuple[tuple[str, int], ...] = ()


class DayEnded(msgspec.Struct, tag=True, frozen=True, gc=False):
    """The trading day `date` ended: what follows it (DoneForDay, Expired) is its close."""

    ts: int
    date: str
    user: str = ""


class HaltChanged(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Trading in `symbol` halted or resumed at `venue` ("": everywhere, by an operator)."""

    ts: int
    symbol: str
    venue: str
    halted: bool
    user: str = ""
    reason: str = ""


class SplitApplied(msgspec.Struct, tag=True, frozen=True, gc=False):
    """`symbol` split `new` for `old`: positions and open orders count `new` shares for every
    `old` (a remainder of a share is dropped), prices `old` / `new` of what they were."""

    ts: int
    symbol: str
    new: int
    old: int
    user: str = ""
    reason: str = ""


class AllocationShare(msgspec.Struct, frozen=True, gc=False):
    account: str
    qty: int
    value: int  # its part of the block's executed value (sum of LastQty x LastPx): the parts add up exactly


class AllocationBooked(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Shares of a block moved from its account to others at the block's average price."""

    ts: int
    alloc_id: str
    user: str
    order_id: str
    account: str  # the block's account, which gives the shares up
    symbol: str
    side: Side
    qty: int
    value: int
    shares: tuple[AllocationShare, ...]


class AllocationRejected(msgspec.Struct, tag=True, frozen=True, gc=False):
    """An allocation refused as a whole; changes no state. account: the target that failed a control."""

    ts: int
    alloc_id: str
    user: str
    order_id: str
    reason: str  # oms.reasons.Reason name
    text: str
    account: str = ""


class AllocationCanceled(msgspec.Struct, tag=True, frozen=True, gc=False):
    """A booking taken back: every move of `booking` reversed."""

    ts: int
    alloc_id: str
    user: str
    booking: AllocationBooked


Event = (
    OrderAccepted
    | ExecutionReport
    | OrderRejected
    | CancelRejected
    | ChildOrderSent
    | ChildCancelSent
    | ChildReplaceSent
    | ChildUpdated
    | Anomaly
    | ChildStatusRequested
    | ChildInDoubt
    | RiskChanged
    | ComplianceAlert
    | AllocationBooked
    | AllocationRejected
    | AllocationCanceled
    | BestPrice
    | DayStarted
    | DayEnded
    | HaltChanged
    | SplitApplied
)

# version of the journaled events; a journal records the highest that wrote to it, and code
# reading it refuses a newer one (2: BestPrice; 3: DayStarted, DayEnded, restatements, Stopped)
SCHEMA = 3

COMMAND_DECODER = msgspec.msgpack.Decoder(Command)
EVENT_ENCODER = msgspec.msgpack.Encoder()
EVENT_DECODER = msgspec.msgpack.Decoder(Event)
