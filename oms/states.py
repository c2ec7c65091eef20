"""The one transition table of FIX OrdStatus, for parent (trader) and child (venue) orders.

`TABLE[(status, trigger)]` is the next status. `WORKING` means "the live status the
quantities say": Filled when CumQty reaches OrderQty, PartiallyFilled when something
is filled, New once acknowledged, else PendingNew. A pair that is absent is illegal:
for a trader's request it becomes a typed reject, for a venue report an anomaly that
is logged and counted, never applied. References are to the scenarios of
../shared/reference/fix-order-state-matrices.md.
"""
from __future__ import annotations

import enum

from oms.model import OrdStatus

S = OrdStatus


class Trigger(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's __hash__ is a Python call on every lookup

    ACK = "ack"  # venue accepted the order (ExecType New)
    FILL = "fill"  # a trade
    BUST = "bust"  # a trade canceled or corrected (quantities may go down)
    CANCEL_REQUEST = "cancel_request"
    CANCEL_DONE = "cancel_done"
    CANCEL_REJECT = "cancel_reject"
    REPLACE_REQUEST = "replace_request"
    REPLACE_DONE = "replace_done"
    REPLACE_REJECT = "replace_reject"
    REJECT = "reject"
    UNSOLICITED_CANCEL = "unsolicited_cancel"  # IOC/FOK remainder, venue or OMS action
    DONE_FOR_DAY = "done_for_day"
    EXPIRE = "expire"
    RESTATE = "restate"  # quantities or price restated: by the venue (E.1.c/d), a GT renewal (H.1.a), a split
    STOP = "stop"  # the venue guarantees the price of what is left (L.1.a)


class _Working:
    def __repr__(self) -> str:
        return "WORKING"


WORKING = _Working()


class _Stopped:
    """Stopped until the guaranteed quantity is all filled, then Filled (Filled ranks above Stopped)."""

    def __repr__(self) -> str:
        return "STOPPED_OR_FILLED"


STOPPED_OR_FILLED = _Stopped()

T = Trigger
_LIVE_COMMON = {
    T.FILL: WORKING,
    T.CANCEL_REQUEST: S.PENDING_CANCEL,
    T.REPLACE_REQUEST: S.PENDING_REPLACE,
    T.UNSOLICITED_CANCEL: S.CANCELED,  # E.1.b; I.1.b IOC remainder killed
    T.DONE_FOR_DAY: S.DONE_FOR_DAY,  # A.1.b
    T.EXPIRE: S.EXPIRED,
    T.RESTATE: WORKING,  # E.1.c/d: a reduction to CumQty leaves it Filled
    T.STOP: S.STOPPED,  # L.1.a
}

TABLE: dict[tuple[OrdStatus, Trigger], OrdStatus | _Working | _Stopped] = {
    # --- PendingNew: routed, not yet acknowledged
    (S.PENDING_NEW, T.ACK): WORKING,
    (S.PENDING_NEW, T.FILL): WORKING,  # venues: the first report may be a fill (S2 A.1.c/d)
    (S.PENDING_NEW, T.CANCEL_REQUEST): S.PENDING_CANCEL,  # B.1.d
    (S.PENDING_NEW, T.REJECT): S.REJECTED,  # A.1.a alt
    (S.PENDING_NEW, T.UNSOLICITED_CANCEL): S.CANCELED,  # venues: IOC/FOK killed without ack (S2 I.1)
    (S.PENDING_NEW, T.EXPIRE): S.EXPIRED,
    (S.PENDING_NEW, T.DONE_FOR_DAY): S.DONE_FOR_DAY,  # never acknowledged by the end of the day
    (S.PENDING_NEW, T.RESTATE): WORKING,  # venues restate before acknowledging; a held order's GT renewal
    (S.PENDING_NEW, T.STOP): S.STOPPED,  # venues: the first report may be Stopped
    # --- New
    **{(S.NEW, t): s for t, s in _LIVE_COMMON.items()},
    (S.NEW, T.ACK): WORKING,  # venues repeat acknowledgements (e.g. after a reconnect): idempotent
    (S.NEW, T.REJECT): S.REJECTED,  # A.1.a t3 alt: rejected by the exchange after New
    (S.NEW, T.BUST): WORKING,  # a correction of a busted fill back to zero lands here
    # --- PartiallyFilled
    **{(S.PARTIALLY_FILLED, t): s for t, s in _LIVE_COMMON.items()},
    (S.PARTIALLY_FILLED, T.BUST): WORKING,  # J.1.a row 12; a bust of every fill goes back to New
    # --- Filled: terminal except for trade busts and corrections
    (S.FILLED, T.BUST): WORKING,  # J.1.a row 5: Filled -> PartiallyFilled
    (S.FILLED, T.REPLACE_REQUEST): S.PENDING_REPLACE,  # C.1.c broker flow: a filled order raised
    # --- PendingCancel: takes precedence over every other status (S1 header)
    (S.PENDING_CANCEL, T.ACK): S.PENDING_CANCEL,  # B.1.d: ack arrives while the cancel is pending
    (S.PENDING_CANCEL, T.FILL): S.PENDING_CANCEL,  # B.1.b row 6, B.1.c row 6
    (S.PENDING_CANCEL, T.BUST): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, T.CANCEL_DONE): S.CANCELED,  # B.1.a
    (S.PENDING_CANCEL, T.CANCEL_REJECT): WORKING,  # B.1.a alt; B.1.c row 7 (back to Filled)
    (S.PENDING_CANCEL, T.UNSOLICITED_CANCEL): S.CANCELED,  # venues cancel without an ack of the request
    (S.PENDING_CANCEL, T.REJECT): S.REJECTED,  # the venue refused the order before acking it
    (S.PENDING_CANCEL, T.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_CANCEL, T.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, T.RESTATE): S.PENDING_CANCEL,  # PendingCancel ranks above every other status
    (S.PENDING_CANCEL, T.STOP): S.PENDING_CANCEL,
    # --- PendingReplace
    (S.PENDING_REPLACE, T.ACK): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, T.FILL): S.PENDING_REPLACE,  # C.1.b row 6: old quantities kept
    (S.PENDING_REPLACE, T.BUST): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, T.REPLACE_DONE): WORKING,  # C.1.a; C.3.b/c amended to CumQty -> Filled
    (S.PENDING_REPLACE, T.REPLACE_REJECT): WORKING,  # D.1.c
    (S.PENDING_REPLACE, T.UNSOLICITED_CANCEL): S.CANCELED,
    (S.PENDING_REPLACE, T.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_REPLACE, T.EXPIRE): S.EXPIRED,
    (S.PENDING_REPLACE, T.RESTATE): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, T.STOP): S.PENDING_REPLACE,
    # --- Stopped (L.1.a): fills of the guarantee report Stopped until all is filled
    (S.STOPPED, T.ACK): S.STOPPED,
    (S.STOPPED, T.STOP): S.STOPPED,
    (S.STOPPED, T.FILL): STOPPED_OR_FILLED,
    (S.STOPPED, T.BUST): S.STOPPED,
    (S.STOPPED, T.RESTATE): S.STOPPED,
    (S.STOPPED, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.STOPPED, T.UNSOLICITED_CANCEL): S.CANCELED,
    (S.STOPPED, T.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.STOPPED, T.EXPIRE): S.EXPIRED,
    # --- Canceled, Expired, DoneForDay: late fills and busts still count (J.1.b, J.1.d)
    (S.CANCELED, T.FILL): S.CANCELED,  # J.1.b row 8
    (S.CANCELED, T.BUST): S.CANCELED,  # J.1.b row 7
    (S.EXPIRED, T.FILL): S.EXPIRED,
    (S.EXPIRED, T.BUST): S.EXPIRED,
    (S.DONE_FOR_DAY, T.FILL): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, T.BUST): S.DONE_FOR_DAY,  # J.1.d
    # --- Rejected: nothing
}

TERMINAL = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.DONE_FOR_DAY})
PENDING = frozenset({S.PENDING_CANCEL, S.PENDING_REPLACE})
NO_LEAVES = frozenset({S.CANCELED, S.REJECTED, S.EXPIRED, S.DONE_FOR_DAY})


class IllegalTransition(Exception):
    def __init__(self, status: OrdStatus, trigger: Trigger) -> None:
        super().__init__(f"{trigger.value} is not allowed in status {status.name}")
        self.status = status
        self.trigger = trigger


def working_status(acked: bool, order_qty: int, cum_qty: int) -> OrdStatus:
    if cum_qty >= order_qty > 0:
        return S.FILLED
    if cum_qty > 0:
        return S.PARTIALLY_FILLED
    return S.NEW if acked else S.PENDING_NEW


def allowed(status: OrdStatus, trigger: Trigger) -> bool:
    return (status, trigger) in TABLE


def next_status(status: OrdStatus, trigger: Trigger, acked: bool, order_qty: int, cum_qty: int) -> OrdStatus:
    """The status after `trigger`; quantities are the ones after the event."""
    target = TABLE.get((status, trigger))
    if target is None:
        raise IllegalTransition(status, trigger)
    if target is WORKING:
        return working_status(acked, order_qty, cum_qty)
    if target is STOPPED_OR_FILLED:
        return S.FILLED if cum_qty >= order_qty else S.STOPPED
    return target  # type: ignore[return-value]


def leaves_qty(status: OrdStatus, order_qty: int, cum_qty: int) -> int:
    """FIX LeavesQty: zero once the order can no longer trade."""
    if status in NO_LEAVES:
        return 0
    return max(order_qty - cum_qty, 0)
