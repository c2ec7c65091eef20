"""Trader FIX sessions in (quickfix acceptor, FIX.4.2 and 4.4): messages to commands, events to reports.

Only the configured CompID pairs log on; a session with credentials must send
Username (553) and Password (554), compared in constant time and never logged. A
message whose fields cannot become a command is refused here with a typed reject
(ExecutionReport Rejected, OrderCancelReject or BusinessMessageReject) and changes
nothing; everything else goes to the engine, whose reports come back through
`on_events` once they are durable.
"""
from __future__ import annotations

import calendar
import hmac
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import quickfix as fix

from gateways.drop_copy import DropCopies, copy_of
from gateways.fix_door import FixDoor
from gateways.fix_recovery import SentMark, journaled_after, rewind
from gateways.fix_session import (
    SPEC_DIR,
    Endpoint,
    FixSession,
    allocation_ack,
    business_reject,
    cancel_reject,
    execution_report,
    field,
    fields,
    msg_type,
    pairs,
    raw_message,
    send,
    write_settings,
)
from oms.config import Config, SessionConfig
from oms.fixed import FixedPointError, to_price, to_qty
from oms.metrics import Metrics
from oms.model import (
    Allocate,
    AllocationBooked,
    AllocationCanceled,
    AllocationRejected,
    AllocationTarget,
    CancelAllocation,
    CancelRequest,
    Command,
    Event,
    ExecType,
    FixCode,
    NewOrder,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    SessionLost,
    Side,
    StatusRequest,
    TimeInForce,
)
from oms.reasons import Reason
from oms.reports import TraderReport, trader_report

log = logging.getLogger("gateways.fix_trader")

_SIDES = {s.value: s for s in Side}


_ALLOCATION_EVENTS = (AllocationBooked, AllocationRejected, AllocationCanceled)
# AllocRejCode (88) of each refusal: 0 unknown account, 1 incorrect quantity, 5 unknown OrderID, 7 other
_ALLOC_REJ_CODES = {Reason.UNKNOWN_ACCOUNT.name: 0, Reason.NOT_ENTITLED.name: 0, Reason.UNKNOWN_ORDER.name: 5,
                    Reason.OVER_ALLOCATION.name: 1, Reason.ODD_LOT.name: 1, Reason.BAD_ALLOCATION.name: 1}


class BadField(Exception):
    def __init__(self, reason: int, text: str) -> None:
        super().__init__(text)
        self.reason, self.text = reason, text


def _required(f: dict[int, str], tag: int, name: str) -> str:
    value = f.get(tag)
    if not value:
        raise BadField(99, f"{name} ({tag}) is required")
    return value


def _qty(f: dict[int, str], tag: int = 38) -> int:
    try:
        return to_qty(_required(f, tag, "OrderQty"))
    except FixedPointError as exc:
        raise BadField(13, f"OrderQty: {exc}") from exc


def _price(f: dict[int, str], tag: int, name: str) -> int | None:
    text = f.get(tag)
    if text is None:
        return None
    try:
        return to_price(text)
    except FixedPointError as exc:
        raise BadField(99, f"{name}: {exc}") from exc


def _code(f: dict[int, str], tag: int, name: str, kind: type[FixCode], default: FixCode | None = None) -> FixCode:
    """A coded field (Side, OrdType, TimeInForce) as its enum; a reject naming the field and
    the values the OMS takes if it is missing or not one of them."""
    text = f.get(tag)
    if text is None and default is not None:
        return default
    try:
        return kind(text)
    except ValueError:
        known = ", ".join(f"{k.value} {k.name}" for k in kind)
        got = "is required" if text is None else f"{text[:16]!r} is not supported"
        raise BadField(11 if text is not None else 99, f"{name} ({tag}) {got}: {known}") from None


def _echo(parse: Callable[[str], int], text: str | None) -> int | None:
    """A refused order's quantity or price as the trader sent it, when it is a number at all."""
    try:
        return None if text is None else parse(text)
    except FixedPointError:
        return None


def _utc_ns(text: str | None) -> int | None:
    """UTCTimestamp (YYYYMMDD-HH:MM:SS[.sss]) to ns since the epoch."""
    if not text:
        return None
    try:
        base, _, frac = text.partition(".")
        secs = calendar.timegm(time.strptime(base, "%Y%m%d-%H:%M:%S"))
        return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
    except ValueError as exc:
        raise BadField(99, f"ExpireTime {text!r} is not a UTCTimestamp") from exc


class TraderGateway(fix.Application):
    def __init__(self, cfg: Config, submit: Callable[[Command], None], metrics: Metrics) -> None:
        super().__init__()
        self.cfg = cfg
        self.submit = submit
        self.metrics = metrics
        self.by_comp: dict[str, SessionConfig] = {s.comp_id: s for s in cfg.fix.sessions}
        self.drop_copies = DropCopies(cfg.fix.sessions)
        self.sessions = [FixSession(s.begin_string, cfg.fix.comp_id, s.comp_id) for s in cfg.fix.sessions]
        self.sids = {s.target: s.session_id() for s in self.sessions}
        self.begin = {s.target: s.begin_string for s in self.sessions}
        # which OrdType and TimeInForce values each version defines: a refused order's are echoed if so
        self.dicts = {b: fix.DataDictionary(str(SPEC_DIR / f"{b.replace('.', '')}.xml"))
                      for b in set(self.begin.values())}
        self.endpoint: Endpoint | None = None
        self.door: FixDoor | None = None
        # recovery (bind_journal): reports held until start, the sent mark
        self._lock = threading.Lock()
        self._held: list[tuple[int, list[Event]]] | None = None
        self._sent: SentMark | None = None
        self.recovered_reports = 0

    def start(self, run_dir: Path) -> None:
        """The quickfix acceptor on a Unix socket in a private directory, the front door
        (gateways.fix_door) on the configured address in front of it."""
        store = run_dir / "fix-trader-store"
        settings = write_settings(run_dir / "fix-trader.cfg", "acceptor", self.cfg.fix.host, self.cfg.fix.port,
                                  self.sessions, store_dir=store, reset_on_logon=False, dictionary=False)
        self.door = FixDoor(self.cfg.fix, {(s.begin_string, s.target): self.sids[s.target] for s in self.sessions},
                            self.metrics)
        self.endpoint = Endpoint(self, settings, "acceptor", store_dir=store, listen=self.door.inner_listener())
        self._recover()  # the sessions exist, no trader is on yet
        self.endpoint.start()
        self.door.start()
        log.info("trader FIX acceptor as %s, sessions %s", self.cfg.fix.comp_id, ", ".join(self.sids))

    def stop(self) -> None:
        """quickfix first, so its Logouts still reach the traders through the door."""
        if self.endpoint is not None:
            self.endpoint.stop()
        if self.door is not None:
            self.door.stop()

    # ------------------------------------------------------------------ session level
    def onCreate(self, sid: fix.SessionID) -> None:
        pass

    def onLogon(self, sid: fix.SessionID) -> None:
        log.info("trader session %s logged on", sid.toString())

    def onLogout(self, sid: fix.SessionID) -> None:
        comp = sid.getTargetCompID().getValue()
        log.info("trader session %s logged out", sid.toString())
        if self.by_comp[comp].cancel_on_disconnect:
            self.submit(SessionLost(session=comp))

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        if msg_type(msg) != "A":
            return
        comp = sid.getTargetCompID().getValue()
        s = self.by_comp[comp]
        if not s.username:
            return
        ok = hmac.compare_digest((field(msg, 553) or "").encode(), s.username.encode())
        ok &= hmac.compare_digest((field(msg, 554) or "").encode(), s.password.encode())
        if not ok:
            log.warning("trader session %s: logon refused (bad credentials)", comp)
            self.metrics.failed_logons.labels(comp).inc()
            raise fix.RejectLogon("invalid username or password")

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    # ------------------------------------------------------------------ application level
    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        comp = sid.getTargetCompID().getValue()
        f = fields(msg)
        kind = f.get(35, "")
        origin = (f"trader.{comp}", int(f.get(34) or 0))  # the journal keeps the last one made durable
        if comp in self.drop_copies.comps:
            send(business_reject(sid.getBeginString().getValue(), kind, 3,
                                 f"{comp} is a drop-copy session: it receives reports and sends no orders",
                                 f.get(34)), sid)
            return
        try:
            if kind == "D":
                self.submit(self._new_order(f, comp), origin=origin)
            elif kind in ("F", "G"):
                self.submit(self._amend(f, comp, kind), origin=origin)
            elif kind == "J":
                self.submit(_allocation(msg, f, comp), origin=origin)
            elif kind == "H":
                self.submit(StatusRequest(session=comp, cl_ord_id=_required(f, 11, "ClOrdID"),
                                          symbol=f.get(55, ""), side=_SIDES.get(f.get(54, "1"), Side.BUY)),
                            origin=origin)
            else:
                send(business_reject(sid.getBeginString().getValue(), kind, 3,
                                     f"message type {kind} is not supported", f.get(34)), sid)
        except BadField as bad:
            self._refuse(f, sid, kind, bad)
        except Exception as exc:  # the gateway never dies from a message
            log.exception("trader %s: cannot process %s", comp, kind)
            send(business_reject(sid.getBeginString().getValue(), kind, 0, f"cannot process: {exc}"), sid)

    def _new_order(self, f: dict[int, str], comp: str) -> NewOrder:
        """The first wrong field, if any, is named (tag and name) in the reject."""
        cl, symbol = _required(f, 11, "ClOrdID"), _required(f, 55, "Symbol")
        side = _code(f, 54, "Side", Side)
        ord_type = _code(f, 40, "OrdType", OrdType)
        tif = _code(f, 59, "TimeInForce", TimeInForce, TimeInForce.DAY)
        qty = _qty(f)
        if ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT) and 44 not in f:
            raise BadField(99, f"Price (44) is required for OrdType (40) {ord_type.value} ({ord_type.name})")
        if ord_type in (OrdType.STOP, OrdType.STOP_LIMIT) and 99 not in f:
            raise BadField(99, f"StopPx (99) is required for OrdType (40) {ord_type.value} ({ord_type.name})")
        return NewOrder(
            session=comp, cl_ord_id=cl, account=self._account(f, comp), symbol=symbol, side=side,
            ord_type=ord_type, qty=qty, price=_price(f, 44, "Price"), stop_px=_price(f, 99, "StopPx"), tif=tif,
            expire_time=_utc_ns(f.get(126)), ex_destination=f.get(100), poss_resend=f.get(97) == "Y" or f.get(43) == "Y",
        )

    def _account(self, f: dict[int, str], comp: str) -> str:
        """Account (1), else the session's default_account, else its only account."""
        s = self.by_comp[comp]
        account = f.get(1) or s.default_account or (s.accounts[0] if len(s.accounts) == 1 else "")
        if not account:
            raise BadField(15, f"Account (1) is required: session {comp} trades {', '.join(s.accounts) or 'nothing'} "
                               "and has no default_account")
        return account

    def _amend(self, f: dict[int, str], comp: str, kind: str) -> Command:
        cl, orig = _required(f, 11, "ClOrdID"), _required(f, 41, "OrigClOrdID")
        if kind == "F":
            return CancelRequest(session=comp, cl_ord_id=cl, orig_cl_ord_id=orig)
        return ReplaceRequest(session=comp, cl_ord_id=cl, orig_cl_ord_id=orig, qty=_qty(f),
                              price=_price(f, 44, "Price"), stop_px=_price(f, 99, "StopPx"))

    def _refuse(self, f: dict[int, str], sid: fix.SessionID, kind: str, bad: BadField) -> None:
        """A typed reject for a message whose fields cannot become a command."""
        cl = f.get(11) or "NONE"
        if kind == "J":  # the whole instruction refused (block level), AllocRejCode in bad.reason
            send(allocation_ack(sid.getBeginString().getValue(), f.get(70) or "NONE", 1, time.time_ns(),
                                bad.reason, bad.text), sid)
            return
        if kind in ("F", "G"):
            send(cancel_reject(sid.getBeginString().getValue(), order_id="NONE", cl_ord_id=cl,
                               orig_cl_ord_id=f.get(41) or "NONE", ord_status=OrdStatus.REJECTED, replace=kind == "G",
                               reason=99, text=bad.text), sid)
            return
        begin = sid.getBeginString().getValue()
        side = f.get(54)
        if side is None or not self.dicts[begin].isFieldValue(54, side):
            # an ExecutionReport must carry a valid Side: echoing this one would make the trader's
            # engine refuse the report itself. A session-level Reject names the field instead.
            send(raw_message(begin, "3", [(45, f.get(34) or "0"), (371, "54"), (372, kind),
                                          (373, "5" if side else "1"), (58, bad.text)]), sid)
            return
        coded = {t: v for t in (40, 59) if (v := f.get(t)) and self.dicts[begin].isFieldValue(t, v)}
        send(execution_report(
            begin, order_id="NONE", exec_id=f"R-{cl}", exec_type=ExecType.REJECTED,
            ord_status=OrdStatus.REJECTED, cl_ord_id=cl, symbol=f.get(55) or "?", side=f.get(54) or "1",
            order_qty=_echo(to_qty, f.get(38)), cum_qty=0, leaves_qty=0, avg_px=Decimal(0),
            price=_echo(to_price, f.get(44)), account=f.get(1), ord_type=coded.get(40), tif=coded.get(59),
            text=bad.text, ord_rej_reason=bad.reason,
        ), sid)

    # ------------------------------------------------------------------ reports out
    def logged_on(self, comp: str) -> bool:
        session = fix.Session.lookupSession(self.sids[comp])
        return bool(session is not None and session.isLoggedOn())

    def bind_journal(self, run_dir: Path, journal_path: Path, marks: dict[str, int],
                     committed: Callable[[], int]) -> None:
        """Recovery (gateways.fix_recovery), before the engine starts: how far the journal holds
        each session's messages, and where its reports come from. Reports are held until
        `start` has sent those the journal holds and no session was ever given."""
        self._journal_path, self._marks, self._committed = journal_path, marks, committed
        self._sent = SentMark(run_dir / "fix-trader-store" / "reports.sent", committed())
        self._held = []

    def _recover(self) -> None:
        """Rewind each session to the message after its last durable one; queue, in journal
        order, the reports of every record after the sent mark, then those held meanwhile.
        No trader is logged on yet: quickfix keeps them in the store, and a trader's logon
        gets them by resend (PossDupFlag=Y) before any new message."""
        if self._held is None:
            return
        with self._lock:
            for comp, sid in self.sids.items():
                rewind(sid, self._marks.get(f"trader.{comp}"))
            last = self._sent.value
            for seq, ev in journaled_after(self._journal_path, last):
                self.recovered_reports += self._send([ev], recovered=True)
                last = seq
            for batch_last, events in self._held:
                self._send(events[max(0, last - (batch_last - len(events))):])
                last = max(last, batch_last)
            self._held = None
            self._sent.write(last)
        if self.recovered_reports:
            log.warning("trader sessions: %d reports journaled but never sent go out first", self.recovered_reports)

    def on_events(self, events: list[Event]) -> None:
        """Runtime listener: every trader-facing event, after it is durable, to its session;
        then the sent mark moves past them."""
        with self._lock:
            if self._held is not None:
                self._held.append((self._committed(), events))
                return
            self._send(events)
            if self._sent is not None:
                self._sent.write(self._committed())

    def _send(self, events: list[Event], recovered: bool = False) -> int:
        """Each event's report to its trader session, and to the drop copies of its account
        (`recovered`: reports the journal held past the sent mark at start-up)."""
        n = 0
        for ev in events:
            r = trader_report(ev)
            if r is not None and r.msg_type == "8":
                for comp in self.drop_copies.targets(r.account):
                    send(copy_of(self._message(r, self.begin[comp]), recovered), self.sids[comp])
            if r is not None and r.session in self.sids:
                n += 1
                send(self._message(r), self.sids[r.session])
            elif type(ev) in _ALLOCATION_EVENTS and ev.user in self.sids:  # type: ignore[union-attr]
                n += 1
                sid = self.sids[ev.user]  # type: ignore[union-attr]
                send(allocation_ack(self.begin[ev.user], *_ack(ev)), sid)  # type: ignore[union-attr, arg-type]
        return n

    def _message(self, r: TraderReport, begin: str = "") -> fix.Message:
        """The report in the FIX version of its session (or of `begin`'s)."""
        begin = begin or self.begin[r.session]
        if r.msg_type == "9":
            return cancel_reject(begin, order_id=r.order_id, cl_ord_id=r.cl_ord_id, orig_cl_ord_id=r.orig_cl_ord_id or "",
                                 ord_status=r.ord_status, replace=r.cxl_rej_response_to == "2",
                                 reason=r.cxl_rej_reason or 0, text=r.text)
        assert r.exec_type is not None
        return execution_report(
            begin, order_id=r.order_id, exec_id=r.exec_id, exec_type=r.exec_type,
            ord_status=r.ord_status, cl_ord_id=r.cl_ord_id, orig_cl_ord_id=r.orig_cl_ord_id, symbol=r.symbol,
            side=r.side.value, order_qty=r.order_qty, cum_qty=r.cum_qty, leaves_qty=r.leaves_qty,
            avg_px=r.avg_px, last_qty=r.last_qty, last_px=r.last_px, price=r.price, account=r.account or None,
            text=r.text, ord_rej_reason=r.ord_rej_reason, exec_ref_id=r.exec_ref_id, ord_type=r.ord_type, tif=r.tif,
            restatement_reason=r.restatement_reason,
        )


def _allocation(msg: fix.Message, f: dict[int, str], comp: str) -> Command:
    """AllocationInstruction (J): a new allocation of one block (NoOrders: its ClOrdID or
    OrderID) by quantity per account (NoAllocs: AllocAccount, AllocShares/AllocQty), or the
    cancel of one (AllocTransType 2). Booked at the block's average price."""
    alloc_id = f.get(70)
    if not alloc_id:
        raise BadField(7, "AllocID (70) is required")
    trans = f.get(71, "0")
    if trans == "2":
        return CancelAllocation(user=comp, alloc_id=alloc_id, session=comp)
    if trans != "0":
        raise BadField(7, "AllocTransType (71): 0 (new) or 2 (cancel)")
    tags = pairs(msg)
    blocks = {(t, v) for t, v in tags if t in (11, 37)}
    if len({t for t, _ in blocks}) != len(blocks) or not blocks:
        raise BadField(5, "one order per allocation: NoOrders (73) with its ClOrdID (11) or OrderID (37)")
    targets: list[list[str]] = []
    for t, v in tags:
        if t == 79:
            targets.append([v])
        elif t == 80 and targets and len(targets[-1]) == 1:
            targets[-1].append(v)
    if not targets or any(len(x) != 2 for x in targets):
        raise BadField(1, "NoAllocs (78) with AllocAccount (79) and AllocShares/AllocQty (80) for each")
    try:
        allocs = tuple(AllocationTarget(account, to_qty(qty)) for account, qty in targets)
    except FixedPointError as exc:
        raise BadField(1, f"AllocShares/AllocQty: {exc}") from None
    try:
        total = to_qty(f[53]) if 53 in f else None
    except FixedPointError as exc:
        raise BadField(1, f"Shares/Quantity (53): {exc}") from None
    if total is not None and total != sum(a.amount for a in allocs):
        raise BadField(1, f"Shares/Quantity (53) {total} is not the sum of the allocations")
    ids = dict(blocks)
    return Allocate(user=comp, alloc_id=alloc_id, order_id=ids.get(37, ""), cl_ord_id=ids.get(11, ""), method="qty",
                    targets=allocs, session=comp, symbol=f.get(55, ""), side=_SIDES.get(f.get(54, "")))


def _ack(ev: AllocationBooked | AllocationRejected | AllocationCanceled) -> tuple:
    """(AllocID, AllocStatus, TransactTime, AllocRejCode, Text) of an allocation event."""
    if isinstance(ev, AllocationRejected):
        return (ev.alloc_id, 2 if ev.account else 1, ev.ts, _ALLOC_REJ_CODES.get(ev.reason, 7),
                ev.text or ev.reason)
    return ev.alloc_id, 0, ev.ts, None, "canceled" if isinstance(ev, AllocationCanceled) else ""
