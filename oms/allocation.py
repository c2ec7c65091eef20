"""Splitting a block trade between accounts, exactly.

Pure functions over integers: the engine decides with them, tests prove them against
exact fractions. Quantities split in whole lots by largest remainder (ties to the
earlier target), and the block's executed value splits over the quantities the same
way, so every account gets the block's average price to the last unit and the parts
always add up to the whole, with nothing created or lost by rounding.
"""
from __future__ import annotations

from oms.model import Allocate, AllocationShare
from oms.reasons import Reason

QTY, RATIO = "qty", "ratio"


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """total (>= 0) split in proportion to weights (> 0) into integers that add up to total:
    each part is its exact share rounded down, and the units left go one each to the
    largest remainders (the earlier on a tie)."""
    whole = sum(weights)
    parts, remainders = [], []
    for k, w in enumerate(weights):
        q, r = divmod(total * w, whole)
        parts.append(q)
        remainders.append((-r, k))
    for _, k in sorted(remainders)[: total - sum(parts)]:
        parts[k] += 1
    return parts


def split_ratio(qty: int, weights: list[int], lot: int) -> list[int]:
    """qty split by weights in whole lots; an odd lot left over (a block that filled one)
    goes to the largest part (the earlier on a tie)."""
    parts = [n * lot for n in largest_remainder(qty // lot, weights)]
    odd = qty % lot
    if odd:
        parts[max(range(len(parts)), key=lambda k: (parts[k], -k))] += odd
    return parts


def plan(c: Allocate, cum_qty: int, cum_value: int, allocated: tuple[int, int],
         lot: int) -> list[AllocationShare] | tuple[Reason, str]:
    """The shares of an allocation of a block that executed cum_qty for cum_value, of which
    allocated = (qty, value) is already allocated; or why it cannot be made."""
    accounts = [t.account for t in c.targets]
    if not c.targets or len(set(accounts)) != len(accounts) or any(t.amount <= 0 for t in c.targets):
        return Reason.BAD_ALLOCATION, Reason.BAD_ALLOCATION.text
    if c.method not in (QTY, RATIO):
        return Reason.BAD_ALLOCATION, f"unknown allocation method {c.method!r} (qty or ratio)"
    free_qty, free_value = cum_qty - allocated[0], cum_value - allocated[1]
    if c.method == QTY:
        qty = sum(t.amount for t in c.targets)
        odd = [t.account for t in c.targets if t.amount % lot]
        # one account may take the odd lot a block filled, with the rest of the block
        if odd and not (len(odd) == 1 and qty == free_qty):
            return Reason.ODD_LOT, f"{Reason.ODD_LOT.text}: {', '.join(odd)} (lot size {lot})"
    else:
        qty = free_qty if c.qty is None else c.qty
        if qty % lot and qty != free_qty:  # an odd lot goes only with the rest of the block
            return Reason.ODD_LOT, f"{Reason.ODD_LOT.text}: {qty} (lot size {lot})"
    if not 0 < qty <= free_qty:
        return Reason.OVER_ALLOCATION, (f"{Reason.OVER_ALLOCATION.text}: {qty} asked, {free_qty} of {cum_qty} "
                                        "executed are unallocated")
    if free_value <= 0:  # a bust or correction took the value of what is left: no price to book it at
        return Reason.OVER_ALLOCATION, f"the unallocated {free_qty} have no executed value left to book"
    qtys = [t.amount for t in c.targets] if c.method == QTY else split_ratio(qty, [t.amount for t in c.targets], lot)
    # the rest of the block keeps the average price too; all of it takes all that is left
    value = free_value if qty == free_qty else free_value * qty // free_qty
    values = largest_remainder(value, qtys)
    return [AllocationShare(account=a, qty=q, value=v) for a, q, v in zip(accounts, qtys, values) if q > 0]
