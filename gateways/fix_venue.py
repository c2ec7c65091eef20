"""Venue sessions: one quickfix initiator per venue; child orders out, venue reports in.

Venue variants are accepted as they come (a first report that is a fill, no pending
acknowledgements, FIX 4.2's ExecTransType for busts and corrections); the engine
applies each venue ExecID once. A child that cannot be sent because its venue is
down comes back to the engine as a venue reject, so nothing waits on a dead line.

Quotes come from the venues too: at each logon a link subscribes to the top of book of
every configured instrument (MarketDataRequest, snapshot + updates); each snapshot (W)
becomes a MarketData command for the engine (routing, price controls) and goes to the
market-data listeners (the streams). A venue's SecurityStatus halts or resumes one
instrument there, its TradingSessionStatus all of them (TradingHalt).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import quickfix as fix

from gateways.fix_session import (
    Endpoint, FixSession, field, fields, market_data_request, msg_type, raw_message, send, utc_timestamp,
    write_settings,
)
from gateways.fix_recovery import rewind
from oms.config import Config, VenueConfig
from oms.fixed import FixedPointError, price_str, to_price, to_qty, to_rounded_price
from oms.model import (
    ChildCancelSent,
    ChildOrderSent,
    ChildReplaceSent,
    ChildInDoubt,
    ChildStatusRequested,
    Command,
    Event,
    ExecType,
    MarketData,
    OrdStatus,
    OrdType,
    VenueCancelReject,
    VenueExecReport,
    VenueNotice,
    VenueReject,
    VenueStatus,
    TradingHalt,
)

log = logging.getLogger("gateways.fix_venue")

_EXEC_TYPES = {e.value: e for e in ExecType}
_FIX42_TRANS = {"1": ExecType.TRADE_CANCEL, "2": ExecType.TRADE_CORRECT, "3": ExecType.ORDER_STATUS}


def venue_exec_type(f: dict[int, str], begin_string: str) -> ExecType | None:
    """The FIX 4.4 ExecType of a venue's report, whichever version it speaks."""
    raw = f.get(150, "")
    if begin_string == "FIX.4.2":
        trans = f.get(20, "0")
        if trans in _FIX42_TRANS:
            return _FIX42_TRANS[trans]
        if raw in ("1", "2"):  # Partial fill, Fill
            return ExecType.TRADE
    return _EXEC_TYPES.get(raw)


def _status_fields(f: dict[int, str]) -> dict[str, object]:
    """CumQty, AvgPx and OrdStatus of a status report, for the engine to reconcile."""
    status = f.get(39)
    return {"cum_qty": _num(f.get(14), to_qty), "avg_px": _num(f.get(6), to_rounded_price),
            "ord_status": OrdStatus(status) if status in _ORD_STATUSES else None}


_ORD_STATUSES = {s.value for s in OrdStatus}


def _num(text: str | None, parse: Callable[[str], int]) -> int:
    try:
        return parse(text) if text else 0
    except FixedPointError:
        return 0


def _quote(msg: fix.Message, venue: str, begin_string: str) -> MarketData:
    """A MarketDataSnapshotFullRefresh as the venue's top of book (best bid and offer first)."""
    import quickfix42 as fix42
    import quickfix44 as fix44

    entry = (fix42 if begin_string == "FIX.4.2" else fix44).MarketDataSnapshotFullRefresh.NoMDEntries()
    top: dict[str, tuple[int, int]] = {}
    for i in range(1, int(field(msg, 268) or "0") + 1):
        msg.getGroup(i, entry)
        kind = entry.getField(269)
        if kind in ("0", "1", "2") and kind not in top:
            size = entry.getField(271) if entry.isSetField(271) else ""
            top[kind] = (to_price(entry.getField(270)), to_qty(size) if size else 0)
    (bid, bid_size), (ask, ask_size), (last, _) = (top.get(k, (0, 0)) for k in "012")
    return MarketData(symbol=field(msg, 55) or "", venue=venue, bid=bid or None, ask=ask or None, last=last or None,
                      bid_size=bid_size, ask_size=ask_size)


class VenueLink(fix.Application):
    """The OMS's session with one venue."""

    def __init__(self, venue: VenueConfig, our_comp_id: str, submit: Callable[..., None],
                 symbols: list[str], on_quote: Callable[[MarketData], None]) -> None:
        super().__init__()
        self.venue = venue
        self.submit = submit
        self.symbols = symbols
        self.on_quote = on_quote
        self.session = FixSession(venue.begin_string, our_comp_id, venue.venue_comp_id)
        self.sid = self.session.session_id()
        self.up = False
        self.quoted = threading.Event()  # a first snapshot of every symbol came, or the venue refused the request
        self._first_quotes: set[str] = set()
        self.stopping = False  # a logout from here on is ours, not a fault
        self.endpoint: Endpoint | None = None

    def start(self, run_dir: Path, last_durable: int | None = None) -> None:
        """Sequence numbers persist (FileStore) and are not reset at logon unless the venue's
        rules say so, so the venue resends what the OMS missed; the session expects the
        message after `last_durable`, the last one whose command the journal holds."""
        store = run_dir / "fix-venue-store"
        settings = write_settings(run_dir / f"fix-venue-{self.venue.name}.cfg", "initiator", self.venue.host,
                                  self.venue.port, [self.session], store_dir=store,
                                  reset_on_logon=self.venue.reset_on_logon)
        self.endpoint = Endpoint(self, settings, "initiator", store_dir=store)
        if not self.venue.reset_on_logon:
            rewind(self.sid, last_durable)
        self.endpoint.start()

    def stop(self) -> None:
        self.stopping = True
        if self.endpoint is not None:
            self.endpoint.stop()

    def onCreate(self, sid: fix.SessionID) -> None:
        pass

    def onLogon(self, sid: fix.SessionID) -> None:
        self.up = True
        log.info("venue %s session up", self.venue.name)
        self.submit(VenueStatus(venue=self.venue.name, up=True))
        if self.venue.market_data and self.symbols:
            self._subscribe()

    def _subscribe(self) -> None:
        """Snapshot + updates of the top of book (bid, offer, last trade) of every instrument."""
        send(market_data_request(self.venue.begin_string, f"{self.session.sender}-{self.venue.name}", "1",
                                 self.symbols), self.sid)

    def onLogout(self, sid: fix.SessionID) -> None:
        was_up, self.up = self.up, False
        log.log(logging.INFO if self.stopping else logging.WARNING, "venue %s session down", self.venue.name)
        if was_up:
            self.submit(VenueStatus(venue=self.venue.name, up=False))

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        pass

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        kind = msg_type(msg)
        name = self.venue.name
        try:
            if kind == "W":
                if field(msg.getHeader(), 43) == "Y":
                    return  # a quote resent after a reconnect is stale
                md = _quote(msg, name, self.venue.begin_string)
                self.submit(md)
                self.on_quote(md)
                if not self.quoted.is_set():
                    self._first_quotes.add(md.symbol)
                    if self._first_quotes.issuperset(self.symbols):
                        self.quoted.set()
                return
            f = fields(msg)
            origin = (f"venue.{name}", int(f.get(34) or 0))  # the journal keeps the last one made durable
            if kind == "8":
                et = venue_exec_type(f, self.venue.begin_string)
                unknown = ("unknown_exec_type", 150) if et is None else \
                    ("unknown_ord_status", 39) if f.get(39, "0") not in _ORD_STATUSES else None
                if unknown is not None:  # a counted anomaly with an alert, never a silent drop
                    kind_, tag = unknown
                    self.submit(VenueNotice(venue=name, kind=kind_, cl_ord_id=f.get(11, ""), text=(
                        f"{'ExecType' if tag == 150 else 'OrdStatus'} ({tag}) {f.get(tag)!r} for ClOrdID "
                        f"{f.get(11)}: not applied")), origin=origin)
                    return
                terms = et is ExecType.REPLACED or et is ExecType.RESTATED
                self.submit(VenueExecReport(
                    venue=name, cl_ord_id=f.get(11, ""), exec_id=f.get(17, ""), exec_type=et,
                    last_qty=_num(f.get(32), to_qty), last_px=_num(f.get(31), to_price),
                    order_qty=_num(f.get(38), to_qty) if terms else None,
                    price=_num(f.get(44), to_price) if et is ExecType.RESTATED and f.get(44) else None,
                    restatement_reason=int(f[378]) if f.get(378, "").isdigit() else None,
                    exec_ref_id=f.get(19), orig_cl_ord_id=f.get(41), text=f.get(58, ""),
                    poss_dup=f.get(43) == "Y", **(_status_fields(f) if et is ExecType.ORDER_STATUS else {}),
                ), origin=origin)
            elif kind == "9":
                self.submit(VenueCancelReject(venue=name, cl_ord_id=f.get(11, ""), orig_cl_ord_id=f.get(41, ""),
                                              reason=int(f.get(102) or 99), text=f.get(58, "")), origin=origin)
            elif kind == "f":  # SecurityStatus: 2 halted; 3 resumed, 17 ready to trade
                status = f.get(326, "")
                if status in ("2", "3", "17"):
                    self.submit(TradingHalt(symbol=f.get(55, ""), halted=status == "2", venue=name,
                                            reason=f.get(58, "")), origin=origin)
                else:
                    self.submit(VenueNotice(venue=name, kind="security_status", text=(
                        f"SecurityTradingStatus (326) {status!r} for {f.get(55)}: not applied")), origin=origin)
            elif kind == "h":
                self._session_status(f, origin)
            elif kind == "Y" or (kind == "j" and f.get(372) == "V"):
                log.warning("venue %s refused market data: %s", name, f.get(58) or f.get(281) or "")
                self.quoted.set()
            elif kind == "j":
                self._business_reject(f, origin)
        except Exception:  # a venue's message never takes the OMS down
            log.exception("venue %s: cannot process %s", name, kind)

    def _session_status(self, f: dict[int, str], origin: tuple[str, int]) -> None:
        """TradingSessionStatus: a venue's session halted (340=1) or closed (3) halts every
        instrument at that venue, as its SecurityStatus halts one; open (2) resumes them all
        (on the engine's next tick: the venue repeats at once the halts that outlast its open,
        and those symbols stay halted). The engine routes around the
        venue and holds what must go there. The MsgSeqNum mark goes with the last command: a
        crash part-way has the venue resend the message, and a status repeated changes nothing."""
        name, status = self.venue.name, f.get(340, "")
        if status not in ("1", "2", "3"):
            self.submit(VenueNotice(venue=name, kind="trading_session_status", text=(
                f"TradSesStatus (340) {status!r} of session {f.get(336)}: not applied")), origin=origin)
            return
        reason = f"trading session {f.get(336)} {'open' if status == '2' else 'halted' if status == '1' else 'closed'}"
        for n, symbol in enumerate(self.symbols, 1):
            self.submit(TradingHalt(symbol=symbol, halted=status != "2", venue=name, reason=reason, session=True),
                        origin=origin if n == len(self.symbols) else None)

    def _business_reject(self, f: dict[int, str], origin: tuple[str, int]) -> None:
        """BusinessMessageReject: of a status request, the children asked are in doubt; of an
        order, cancel or replace naming its ClOrdID, a venue reject; anything else an anomaly."""
        name, ref, cl = self.venue.name, f.get(372, ""), f.get(379, "")
        text = f.get(58) or f"BusinessRejectReason (380) {f.get(380, '?')}"
        if ref == "H":
            self.submit(VenueNotice(venue=name, kind="status_refused", cl_ord_id=cl, text=text), origin=origin)
        elif ref in ("D", "F", "G") and cl:
            self.submit(VenueReject(venue=name, cl_ord_id=cl, text=text), origin=origin)
        else:
            self.submit(VenueNotice(venue=name, kind="business_reject", cl_ord_id=cl,
                                    text=f"{text} (RefMsgType {ref or '?'}, RefSeqNum {f.get(45, '?')})"),
                        origin=origin)

    # ------------------------------------------------------------------ child orders out
    def request_status(self, ev: ChildStatusRequested | ChildInDoubt) -> None:
        if not self.up:
            return  # asked again at the next reconnect
        send(raw_message(self.venue.begin_string, "H", [(11, ev.cl_ord_id), (55, ev.symbol), (54, ev.side.value)]),
             self.sid)

    def send_child(self, ev: ChildOrderSent | ChildCancelSent | ChildReplaceSent) -> None:
        if not self.up:
            self.submit(VenueReject(venue=self.venue.name, cl_ord_id=ev.cl_ord_id,
                                    text=f"venue {self.venue.name} is not connected"))
            return
        t = type(ev)
        body = [(11, ev.cl_ord_id)]
        if t is not ChildOrderSent:
            body.append((41, ev.orig_cl_ord_id))  # type: ignore[union-attr]
        if self.venue.begin_string == "FIX.4.2" and t is not ChildCancelSent:
            body.append((21, "1"))
        body += [(55, ev.symbol), (54, ev.side.value), (38, str(ev.qty))]
        if t is not ChildCancelSent:
            ord_type = ev.ord_type  # type: ignore[union-attr]
            body.append((40, ord_type.value))
            if ev.price is not None and ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT):  # type: ignore[union-attr]
                body.append((44, price_str(ev.price)))  # type: ignore[union-attr]
        if t is ChildOrderSent:
            if ev.resend:  # type: ignore[union-attr]
                body.append((97, "Y"))  # PossResend: the venue had not seen it, and may check the ClOrdID
            if ev.stop_px is not None:  # type: ignore[union-attr]
                body.append((99, price_str(ev.stop_px)))  # type: ignore[union-attr]
            body.append((59, ev.tif.value))  # type: ignore[union-attr]
        body.append((60, utc_timestamp()))
        send(raw_message(self.venue.begin_string, "D" if t is ChildOrderSent else "F" if t is ChildCancelSent else "G",
                         body), self.sid)


class VenueGateway:
    """All venue links; sends the engine's child-order events to the right one."""

    def __init__(self, cfg: Config, submit: Callable[..., None]) -> None:
        symbols = [i.symbol for i in cfg.instruments]
        self.links = {v.name: VenueLink(v, cfg.fix.comp_id, submit, symbols, self._quote) for v in cfg.venues}
        self.md_listeners: list[Callable[[MarketData], None]] = []  # venue quotes, besides the engine

    def start(self, run_dir: Path, marks: dict[str, int] | None = None) -> None:
        """`marks`: the journal's last durable MsgSeqNum per source (`venue.<name>`)."""
        for name, link in self.links.items():
            link.start(run_dir, (marks or {}).get(f"venue.{name}"))

    def wait_for_quotes(self, venues: list[str], timeout: float) -> list[str]:
        """Wait until these venues have quoted every instrument; the names of those that did not."""
        deadline = time.monotonic() + timeout
        return [name for name in venues if self.links[name].venue.market_data
                and not self.links[name].quoted.wait(max(0.0, deadline - time.monotonic()))]

    def _quote(self, md: MarketData) -> None:
        for listener in self.md_listeners:
            listener(md)

    def stop(self) -> None:
        """All links at once: stopping a quickfix initiator joins its connect thread, which
        sleeps in whole seconds, so one after the other they took a second each."""
        stops = [threading.Thread(target=link.stop, name=f"stop-{name}") for name, link in self.links.items()]
        for t in stops:
            t.start()
        for t in stops:
            t.join()

    def on_events(self, events: list[Event]) -> None:
        """Runtime listener: child orders go out once their events are durable."""
        for ev in events:
            t = type(ev)
            link = self.links.get(getattr(ev, "venue", ""))  # none for the internal crossing book
            if link is None:
                continue
            if t is ChildOrderSent or t is ChildCancelSent or t is ChildReplaceSent:
                link.send_child(ev)  # type: ignore[arg-type]
            elif t is ChildStatusRequested or (t is ChildInDoubt and ev.ask):  # type: ignore[union-attr]
                link.request_status(ev)  # type: ignore[arg-type]
