"""Codes and small types shared by the Numba matching core and its Python reference."""
from __future__ import annotations

from typing import NamedTuple

BUY, SELL = 0, 1
DAY, GTC, IOC, FOK = 0, 1, 2, 3
STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT = 0, 1, 2, 3, 4

# batch operation kinds
OP_ADD, OP_ADD_MARKET, OP_CANCEL, OP_REPLACE = 1, 2, 3, 4

# per-operation status: >= 0 applied, < 0 refused with the state unchanged
DONE, RESTED = 0, 1
ERR_BAD_ID, ERR_SIDE, ERR_TIF, ERR_QTY, ERR_PRICE, ERR_DUPLICATE, ERR_UNKNOWN, ERR_KIND = -1, -2, -3, -4, -5, -6, -7, -8

_TEXT = {
    ERR_BAD_ID: "order id must be >= 0",
    ERR_SIDE: "side must be BUY (0) or SELL (1)",
    ERR_TIF: "time in force must be DAY, GTC, IOC or FOK",
    ERR_QTY: "quantity must be positive",
    ERR_PRICE: "limit price must be positive",
    ERR_DUPLICATE: "order id is already resting",
    ERR_UNKNOWN: "no resting order with this id",
    ERR_KIND: "unknown operation kind",
}


def error_text(code: int, oid: int) -> str:
    return f"order {oid}: {_TEXT.get(code, f'error {code}')}"


class BookError(ValueError):
    """An operation the book refused; the book is unchanged."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class BookFullError(RuntimeError):
    """The book reached its configured maximum size; the refused operation changed nothing."""


class Resting(NamedTuple):
    oid: int
    side: int
    price: int
    qty: int
    owner: int
    tif: int
