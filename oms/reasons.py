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
    # order state
    DUPLICATE_CL_ORD_ID = (201, 6, 6, "duplicate ClOrdID")
    UNKNOWN_ORDER = (202, 5, 1, "unknown order")
    TOO_LATE = (203, 99, 0, "too late: order is done")
    PENDING = (204, 99, 3, "order already has a pending cancel or replace")
    PENDING_NEW = (205, 99, 3, "order is pending new")
    # routing and venues
    NO_VENUE = (401, 0, 2, "no venue available for the order")
    VENUE_REJECT = (402, 0, 2, "rejected by venue")

    def __init__(self, code: int, ord_rej: int, cxl_rej: int, text: str) -> None:
        self.code = code
        self.ord_rej_reason = ord_rej
        self.cxl_rej_reason = cxl_rej
        self.text = text

    @property
    def label(self) -> str:
        return self.name.lower()
