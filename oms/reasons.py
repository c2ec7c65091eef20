"""One catalogue of every refusal the OMS can give.

Each reason has a code numbered by the stage that produced it (1xx validation,
2xx order state, 3xx compliance, 4xx routing and venues), the FIX OrdRejReason (103)
or CxlRejReason (102) it maps to, a default Text, and its name is the metric label.
"""
from __future__ import annotations

import enum


class Reason(enum.Enum):
    # (code, OrdRejReason 103, CxlRejReason 102, text)
    # validation
    UNKNOWN_SYMBOL = (101, 1, 99, "unknown symbol")
    UNKNOWN_ACCOUNT = (102, 15, 99, "unknown account")
    NOT_ENTITLED = (103, 15, 99, "session is not entitled to this account")
    BAD_QUANTITY = (104, 13, 99, "quantity must be a positive whole number of lots")
    QUANTITY_TOO_LARGE = (105, 13, 99, "quantity out of range")
    BAD_PRICE = (106, 99, 99, "price missing, not positive or out of range")
    PRICE_OFF_TICK = (107, 18, 99, "price is not a multiple of the tick size")
    UNSUPPORTED = (108, 11, 99, "unsupported order characteristic")
    BAD_EXPIRE_TIME = (109, 99, 99, "GTD order needs an expire time in the future")
    REPLACE_CHANGES_IDENTITY = (110, 99, 99, "a replace cannot change side, symbol or account")
    NOTIONAL_TOO_LARGE = (111, 99, 99, "order notional (quantity x price) out of range")
    # order state
    DUPLICATE_CL_ORD_ID = (201, 6, 6, "duplicate ClOrdID")
    UNKNOWN_ORDER = (202, 5, 1, "unknown order")
    TOO_LATE = (203, 99, 0, "too late: order is done")
    PENDING = (204, 99, 3, "order already has a pending cancel or replace")
    PENDING_NEW = (205, 99, 3, "order is pending new")
    # compliance (risk.controls.Control; the Text names the control and the limit)
    RISK_RESTRICTED = (300, 99, 99, "restricted instrument")
    RISK_LOCATE = (301, 99, 99, "short sale without locate")
    RISK_PRICE_MIN = (302, 99, 99, "price below the lowest accepted")
    RISK_PRICE_MAX = (303, 99, 99, "price above the highest accepted")
    RISK_PRICE_COLLAR = (304, 99, 99, "price outside the collar")
    RISK_MAX_QTY = (305, 13, 99, "order quantity above the maximum")
    RISK_MAX_NOTIONAL = (306, 99, 99, "order notional above the maximum")
    RISK_MAX_ADV = (307, 13, 99, "order above the maximum share of ADV")
    RISK_MAX_OPEN_ORDERS = (308, 99, 99, "too many open orders")
    RISK_POSITION_LONG = (309, 99, 99, "long position limit")
    RISK_POSITION_SHORT = (310, 99, 99, "short position limit")
    RISK_CREDIT = (311, 99, 99, "credit limit")
    RISK_GROSS_EXPOSURE = (312, 99, 99, "gross exposure limit")
    RISK_NET_EXPOSURE = (313, 99, 99, "net exposure limit")
    RISK_FIRM_GROSS = (314, 99, 99, "firm gross exposure limit")
    RISK_STALE_PRICE = (315, 99, 99, "no fresh reference price")
    RISK_KILL_SWITCH = (316, 99, 99, "kill switch")
    RISK_REDUCE_ONLY = (317, 99, 99, "reduce-only")
    RISK_DUPLICATE_ORDER = (318, 99, 99, "duplicate order")
    RISK_THROTTLE = (319, 99, 99, "message throttle")
    RISK_ORDER_TO_TRADE = (320, 99, 99, "order-to-trade ratio")
    RISK_REPEATED_EXECUTION = (321, 99, 99, "repeated-execution throttle")
    RISK_CUMULATIVE_COLLAR = (322, 99, 99, "cumulative price collar")
    # routing and venues
    NO_VENUE = (401, 0, 2, "no venue available for the order")
    VENUE_REJECT = (402, 0, 2, "rejected by venue")
    HALTED = (403, 2, 99, "trading in the instrument is halted")
    DAY_CLOSED = (404, 2, 99, "the trading day is closed")
    OUTSIDE_HOURS = (405, 2, 99, "outside the instrument's trading hours")
    # allocation of block trades
    DUPLICATE_ALLOC_ID = (501, 99, 99, "allocation id already used for a different allocation")
    BAD_ALLOCATION = (502, 99, 99, "allocation needs distinct target accounts with positive amounts")
    OVER_ALLOCATION = (503, 99, 99, "more than the block's unallocated executed quantity")
    ODD_LOT = (504, 99, 99, "allocated quantity is not a whole number of lots")
    UNKNOWN_ALLOCATION = (505, 99, 99, "unknown allocation")
    ALLOCATION_CANCELED = (506, 99, 99, "allocation already canceled")
    # the OMS itself: a command it failed to apply, undone whole
    INTERNAL_ERROR = (901, 99, 99, "internal error: the request was not applied")

    def __init__(self, code: int, ord_rej: int, cxl_rej: int, text: str) -> None:
        self.code = code
        self.ord_rej_reason = ord_rej
        self.cxl_rej_reason = cxl_rej
        self.text = text

    @property
    def label(self) -> str:
        return self.name.lower()
