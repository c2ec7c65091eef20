"""The reports' Numba kernels equal their plain-Python references: the journal scan equals
msgspec's decoding of the same records, the positions kernel equals `oms.positions.Ledger`
(the positions stream's path), for any events."""
from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oms import reporting
from oms.config import AccountConfig, Config, InstrumentConfig, SimConfig, VenueConfig
from oms.model import (
    EVENT_DECODER,
    EVENT_ENCODER,
    AllocationBooked,
    AllocationCanceled,
    AllocationShare,
    BestPrice,
    ChildOrderSent,
    ChildReplaceSent,
    ChildUpdated,
    ExecType,
    ExecutionReport,
    NewOrder,
    OrdStatus,
    OrderAccepted,
    OrdType,
    RestatementReason,
    Side,
    SplitApplied,
    TimeInForce,
)
from oms.positions import SCALE, Book, Ledger
from oms.reporting import scan
from tests.test_reports import write_journal

T0 = int(dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc).timestamp()) * 10**9
CFG = Config(venues=[VenueConfig(name="V1", sim=SimConfig(enabled=False))], default_venue="V1",
             instruments=[InstrumentConfig(symbol=s) for s in ("AAPL", "MSFT")],
             accounts=[AccountConfig(id=a) for a in ("ACC1", "ACC2")])

text = st.text(max_size=12)
ints = st.integers(-(2**63), 2**63 - 1)
maybe = st.none() | ints
new_order = st.builds(NewOrder, session=text, cl_ord_id=text, account=text, symbol=text, side=st.sampled_from(Side),
                      ord_type=st.sampled_from(OrdType), qty=ints, price=maybe, tif=st.sampled_from(TimeInForce))
events = st.one_of(
    st.builds(OrderAccepted, ts=ints, order_id=text, exec_id=text, order=new_order, venue=text, risk_px=maybe),
    st.builds(ExecutionReport, ts=ints, order_id=text, exec_id=text, exec_type=st.sampled_from(ExecType),
              ord_status=st.sampled_from(OrdStatus), session=text, account=text, symbol=text,
              side=st.sampled_from(Side), cl_ord_id=text, orig_cl_ord_id=st.none() | text, order_qty=ints,
              cum_qty=ints, leaves_qty=ints, cum_value=ints, last_qty=ints, last_px=ints, price=maybe,
              exec_ref_id=st.none() | text, text=text, restatement_reason=maybe),
    st.builds(ChildOrderSent, ts=ints, child_id=text, order_id=text, venue=text, cl_ord_id=text, symbol=text,
              side=st.sampled_from(Side), ord_type=st.sampled_from(OrdType), qty=ints, price=maybe, stop_px=maybe,
              tif=st.sampled_from(TimeInForce), resend=st.booleans()),
    st.builds(ChildReplaceSent, ts=ints, child_id=text, venue=text, cl_ord_id=text, orig_cl_ord_id=text, symbol=text,
              side=st.sampled_from(Side), ord_type=st.sampled_from(OrdType), qty=ints, price=maybe),
    st.builds(ChildUpdated, ts=ints, child_id=text, status=st.sampled_from(OrdStatus), cl_ord_id=text, qty=ints,
              cum_qty=ints, price=maybe, venue_exec_id=st.none() | text, fill_exec_id=st.none() | text),
    st.builds(BestPrice, ts=ints, symbol=text, bid=maybe, ask=maybe),
    st.builds(SplitApplied, ts=ints, symbol=text, new=ints, old=ints),
)


def _columns(read: scan.Columns) -> list[tuple[str, dict[str, object]]]:
    """The columns read as `scan_ref` gives them: per record, its kind and values."""
    rows = [(scan.KINDS[k], {} if scan.KINDS[k] in scan.HOT else {"ts": int(read.ts[r])})
            for r, k in enumerate(read.kind.tolist())]
    for name, c in read.columns().items():
        for field, k, _ in scan.slots(name) if c else ():
            values = c[field].to_pylist() if k == "s" else [int(v) if h else None
                                                             for v, h in zip(c[field], c[field + "?"])]
            for seq, v in zip(c["seq"].tolist(), values):
                rows[seq - 1][1][field] = v
    return rows


@settings(max_examples=200, deadline=None)
@given(st.lists(events, min_size=1, max_size=30), st.lists(st.integers(1, 30), max_size=3))
def test_the_scan_equals_msgspec_s_decoding(evs, cuts) -> None:
    """In chunks cut anywhere, scanned in any order (last first here), kept in order: each
    continues the columns of the ones before."""
    records = [EVENT_ENCODER.encode(ev) for ev in evs]
    read, at, spans = scan.Columns(len(records)), 0, []
    for cut in [*sorted(c for c in cuts if c < len(records)), len(records)]:
        if cut > at:
            spans.append((at, cut))
            at = cut
    chunks = {a: scan.scan_chunk(b"".join(records[a:b]), b - a, a + 1) for a, b in reversed(spans)}
    for a, _ in spans:
        read.keep(chunks[a])
    assert _columns(read) == scan.scan_ref(records)
    assert [ev for _, ev in read.whole] == [ev for ev in evs if type(ev).__name__ in scan.WHOLE]


@given(st.binary(max_size=200), st.lists(st.tuples(st.integers(0, 150), st.integers(0, 50), st.booleans()),
                                         max_size=20))
def test_the_gather_equals_its_reference(blob, cuts) -> None:
    offsets = np.array([o for o, _, _ in cuts], np.int64)
    lengths = np.array([min(n, max(len(blob) - o, 0)) if ok and o < len(blob) else -1 for o, n, ok in cuts], np.int32)
    data, at = scan.gather(np.frombuffer(blob, np.uint8), offsets, lengths)
    assert (data.tobytes(), at.tolist()) == scan.gather_ref(blob, offsets, lengths)


# a day of fills, busts, corrections, restatements, allocations (and their cancels) and splits
steps = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.integers(0, 3), st.integers(1, 500), st.integers(1, 10**9)),
    st.tuples(st.just("bust"), st.integers(0, 3)),
    st.tuples(st.just("correct"), st.integers(0, 3), st.integers(0, 500), st.integers(0, 10**11)),
    st.tuples(st.just("restate"), st.integers(0, 3)),
    st.tuples(st.just("split"), st.sampled_from(["AAPL", "MSFT", "NONE"]), st.integers(1, 4), st.integers(1, 3)),
    st.tuples(st.just("allocate"), st.integers(0, 3), st.sampled_from(["ACC1", "ACC2", "NONE"]), st.booleans()),
), max_size=40)
ORDERS = [("ACC1", "AAPL", Side.BUY), ("ACC2", "AAPL", Side.SELL), ("ACC1", "MSFT", Side.SELL), ("NONE", "MSFT",
                                                                                                   Side.BUY)]


def _day(plan) -> list:
    """The events of a plan; the figures are what the engine's reports would carry."""
    state = [[0, 0, []] for _ in ORDERS]  # cum qty, cum value, fills
    out, bookings = [], []
    for k, step in enumerate(plan):
        ts = T0 + k * 10**9
        if step[0] == "split":
            out.append(SplitApplied(ts=ts, symbol=step[1], new=step[2], old=step[3]))
            continue
        o = step[1]
        account, symbol, side = ORDERS[o]
        s = state[o]
        if step[0] == "allocate":
            if step[3] and bookings:
                out.append(AllocationCanceled(ts=ts, alloc_id=f"A{k}", user="u", booking=bookings.pop()))
            elif s[0] > 1:
                q = s[0] // 2
                b = AllocationBooked(ts=ts, alloc_id=f"A{k}", user="u", order_id=f"O{o}", account=account,
                                     symbol=symbol, side=side, qty=s[0], value=s[1],
                                     shares=(AllocationShare(step[2], q, s[1] * q // s[0]),
                                             AllocationShare(account, s[0] - q, s[1] - s[1] * q // s[0])))
                bookings.append(b)
                out.append(b)
            continue
        et, reason = ExecType.TRADE, None
        if step[0] == "fill":
            s[0], s[1] = s[0] + step[2], s[1] + step[2] * step[3]
            s[2].append((step[2], step[2] * step[3]))
        elif step[0] == "bust" and s[2]:
            q, v = s[2].pop()
            s[0], s[1], et = s[0] - q, s[1] - v, ExecType.TRADE_CANCEL
        elif step[0] == "correct":
            s[0], s[1], et = step[2], step[3], ExecType.TRADE_CORRECT
        else:
            s[0], s[1], et, reason = s[0] * 2, s[1], ExecType.RESTATED, RestatementReason.CORPORATE_ACTION
        out.append(ExecutionReport(ts=ts, order_id=f"O{o}", exec_id=f"E{k}", exec_type=et,
                                   ord_status=OrdStatus.PARTIALLY_FILLED, session="S", account=account, symbol=symbol,
                                   side=side, cl_ord_id=f"C{o}", orig_cl_ord_id=None, order_qty=10**6, cum_qty=s[0],
                                   leaves_qty=0, cum_value=s[1], restatement_reason=reason))
    return out


def _ledger(evs: list, book: Book) -> list[tuple[int, int]]:
    """Reference: Ledger over the events, and the realized P&L of all accounts after each move."""
    ledger, last, total, curve = Ledger(book), book.realized.copy(), 0, []
    for ev in evs:
        moved = ledger.apply(ev)
        if moved is None:
            continue
        i = book.symbols[moved[1]]
        for account in moved[0]:
            a = book.accounts[account]
            total += (int(book.realized[a, i]) - int(last[a, i])) * int(book.rates[a, i]) // SCALE
            last[a, i] = book.realized[a, i]
        curve.append((ev.ts, total))
    return curve


@settings(max_examples=150, deadline=None)
@given(steps)
def test_the_positions_kernel_equals_the_ledger(tmp_path_factory, plan) -> None:
    evs = [BestPrice(ts=T0 - 1, symbol="AAPL", bid=1, ask=3)] + _day(plan)
    journal = write_journal(tmp_path_factory.mktemp("k") / "journal.db", evs)
    facts = reporting.make(CFG, journal, "2026-11-30")
    book = Book(facts.accounts, facts.symbols, CFG.fx_rates(), marking=False)
    curve = _ledger([EVENT_DECODER.decode(EVENT_ENCODER.encode(ev)) for ev in evs], book)
    got = facts.book
    assert (got.qty.tolist(), got.cost.tolist(), got.realized.tolist()) == (
        book.qty.tolist(), book.cost.tolist(), book.realized.tolist())
    gross = np.zeros_like(facts.closing_gross)
    for (account, symbol), venues in book.venues.items():
        for v in venues.values():
            gross[book.accounts[account], book.symbols[symbol]] += [v.bought, v.sold, v.buy_value, v.sell_value]
    assert facts.closing_gross.tolist() == gross.tolist()
    assert facts.pnl_curve == curve
