"""The engine's side of venue recovery: reconciliation on status answers, children in
doubt (timeouts, a venue refusing status requests), resends, and venue messages the OMS
does not apply (journaled anomalies with an alert, never a silent drop)."""
from __future__ import annotations

import threading
import time

import msgspec

from oms.engine import VenuePolicy
from oms.model import (
    ChildCancelSent,
    ChildInDoubt,
    ChildOrderSent,
    ChildStatusRequested,
    ComplianceAlert,
    ExecType,
    MarketData,
    OrdStatus,
    Timer,
    VenueExecReport,
    VenueNotice,
    VenueStatus,
)
from tests.harness import Desk, px

SECOND = 1_000_000_000


def desk(**policy: object) -> Desk:
    d = Desk()
    if policy:
        d.engine.ref = msgspec.structs.replace(d.engine.ref, venue_policies={"V1": VenuePolicy(**policy)})
    return d


def status(d: Desk, cl: str, ord_status: OrdStatus, cum: int = 0, avg: str = "0", **kw: object) -> list:
    ch = d.child(cl)
    n = len(d.events)
    d.run(VenueExecReport(venue=ch.venue, cl_ord_id=kw.pop("cl_ord_id", ch.cl_ord_id), exec_id=f"S{n}",
                          exec_type=ExecType.ORDER_STATUS, ord_status=ord_status, cum_qty=cum, avg_px=px(avg), **kw))
    return d.events[n:]


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_every_logon_asks_the_status_of_every_open_child_even_the_first():
    d = desk()
    d.nos("A", 100)
    d.nos("B", 100)
    d.v_ack("B")
    d.v_fill("B", 100)  # done: not asked
    asked = [e for e in d.engine.handle(VenueStatus(venue="V1", up=True)) if type(e) is ChildStatusRequested]
    assert [e.cl_ord_id for e in asked] == [d.child("A").cl_ord_id]


def test_a_status_answer_acknowledges_a_child_and_books_what_was_missed():
    d = desk()
    d.nos("A", 100)
    evs = status(d, "A", OrdStatus.PARTIALLY_FILLED, cum=40, avg="100")
    assert d.child("A").status is OrdStatus.PARTIALLY_FILLED and d.child("A").cum_qty == 40
    assert [r.exec_type for r in d.reports[-2:]] == [ExecType.NEW, ExecType.TRADE]
    assert "ChildUpdated" in kinds(evs)


def test_a_child_the_venue_never_got_is_sent_again_with_its_clordid():
    d = desk()
    d.nos("A", 100)
    cl = d.child("A").cl_ord_id
    evs = status(d, "A", OrdStatus.REJECTED, text="unknown order")
    resent = [e for e in evs if type(e) is ChildOrderSent]
    assert len(resent) == 1 and resent[0].resend and resent[0].cl_ord_id == cl and resent[0].qty == 100
    assert len(d.engine.state.orders[d.child("A").order_id].children) == 1  # the same child, not a new one
    assert d.child("A").child_id in d.engine.state.awaiting
    assert d.engine.state.state_hash() == d.replayed().state.state_hash()


def test_by_policy_a_child_the_venue_never_got_is_rejected_to_the_trader():
    d = desk(unknown_child="reject")
    d.nos("A", 100)
    status(d, "A", OrdStatus.REJECTED, text="unknown order")
    assert d.reports[-1].ord_status is OrdStatus.REJECTED and "V1 does not know the order" in d.reports[-1].text


def test_a_cancel_that_never_arrived_is_sent_again():
    d = desk()
    d.nos("A", 100)
    d.v_ack("A")
    d.cancel("C", "A")
    pending = d.child("A").pending_cl_ord_id
    evs = status(d, "A", OrdStatus.NEW)  # the venue still has it under the old ClOrdID
    again = [e for e in evs if type(e) is ChildCancelSent]
    assert len(again) == 1 and again[0].cl_ord_id == pending


def test_no_answer_in_time_puts_the_child_in_doubt_visibly_once():
    d = desk(ack_timeout_ns=2 * SECOND)
    d.nos("A", 100)
    d.now += SECOND
    assert not any(type(e) is ChildInDoubt for e in d.engine.handle(Timer()))
    d.now += 2 * SECOND
    evs = d.engine.handle(Timer())
    d.events += evs
    assert {"ChildInDoubt", "Anomaly", "ComplianceAlert", "ExecutionReport"} <= set(kinds(evs))
    doubt = next(e for e in evs if type(e) is ChildInDoubt)
    assert doubt.ask and "no answer from V1 within 2 s" in doubt.reason  # the gateway asks the venue's status
    told = next(e for e in evs if type(e).__name__ == "ExecutionReport")
    assert told.exec_type is ExecType.ORDER_STATUS and "in doubt at V1" in told.text
    assert d.child("A").doubt and not d.engine.state.awaiting
    d.now += 10 * SECOND
    assert not any(type(e) is ChildInDoubt for e in d.engine.handle(Timer()))  # said once
    d.v_ack("A")  # the venue answers after all
    assert d.child("A").doubt == "" and d.child("A").status is OrdStatus.NEW


def test_by_policy_an_order_left_in_doubt_is_canceled():
    d = desk(ack_timeout_ns=SECOND, on_timeout="cancel")
    d.nos("A", 100)
    d.v_ack("A")
    d.replace("R", "A", 200, "100")  # the venue never answers the replace
    d.now += 2 * SECOND
    d.run(Timer())
    assert d.child("A").doubt
    assert d.engine.state.find("CLIENT1", "A").status is OrdStatus.PENDING_REPLACE  # a replace is in flight
    d2 = desk(ack_timeout_ns=SECOND, on_timeout="cancel")
    d2.nos("B", 100)
    d2.now += 2 * SECOND
    d2.run(Timer())
    assert d2.engine.state.find("CLIENT1", "B").status is OrdStatus.PENDING_CANCEL
    assert "did not answer within 1 s" in d2.reports[-1].text


def test_a_venue_refusing_status_requests_leaves_the_asked_children_in_doubt():
    d = desk()
    d.nos("A", 100)
    d.v_ack("A")
    d.run(VenueStatus(venue="V1", up=True))
    evs = d.engine.handle(VenueNotice(venue="V1", kind="status_refused", text="Unsupported Message Type"))
    doubt = [e for e in evs if type(e) is ChildInDoubt]
    assert len(doubt) == 1 and not doubt[0].ask and "V1 refuses status requests" in doubt[0].reason
    assert any(type(e) is ComplianceAlert for e in evs)
    # a second refusal says nothing new
    d.run(VenueStatus(venue="V1", up=True))
    assert not any(type(e) is ChildInDoubt for e in d.engine.handle(VenueNotice(venue="V1", kind="status_refused",
                                                                                text="again")))


def test_venue_messages_the_oms_does_not_apply_are_journaled_anomalies_with_an_alert_and_restatements_apply():
    d = desk()
    d.nos("A", 100)
    d.v_ack("A")
    for notice in (VenueNotice(venue="V1", kind="unknown_exec_type", text="ExecType (150) 'Z'"),
                   VenueNotice(venue="V1", kind="business_reject", text="no (RefMsgType Q)")):
        evs = d.engine.handle(notice)
        assert kinds(evs) == ["Anomaly", "ComplianceAlert"] and evs[0].kind == f"venue_{notice.kind}"
    reps = d.run(VenueExecReport(venue="V1", cl_ord_id=d.child("A").cl_ord_id, exec_id="R1",
                                 exec_type=ExecType.RESTATED, order_qty=60, text="decrement"))
    # a restatement is applied now (matrix E, tests/test_matrices_ehkl.py): child and parent at 60
    assert d.child("A").qty == 60 and [(r.exec_type, r.order_qty) for r in reps] == [(ExecType.RESTATED, 60)]


def test_reports_a_venue_resends_after_a_reconnect_apply_once():
    d = desk()
    d.nos("A", 100)
    d.v_ack("A")
    ch = d.child("A")
    again = VenueExecReport(venue="V1", cl_ord_id=ch.cl_ord_id, exec_id="ack-again", exec_type=ExecType.NEW,
                            poss_dup=True)
    assert d.engine.handle(again) == []
    d.v_fill("A", 100, exec_id="F1")
    d.v_fill("A", 100, exec_id="F1")  # the same fill resent
    assert d.child("A").cum_qty == 100 and d.engine.duplicate_venue_execs == 2


def test_the_engine_gets_a_timer_while_it_is_busy(tmp_path):
    """Timeouts and expiries cannot wait for a quiet second: under a steady stream of quotes
    the runtime still hands the engine a Timer every interval."""
    from oms.config import load
    from oms.runtime import Runtime, open_engine
    from tests.test_atomic import CONFIG

    (tmp_path / "oms.toml").write_text(CONFIG)
    cfg = load(tmp_path / "oms.toml")
    engine, journal = open_engine(cfg, tmp_path)
    runtime = Runtime(engine, journal, cfg, timer_interval=0.2)
    timers = []
    five = threading.Event()
    original = engine.handle

    def handle(cmd):
        if type(cmd) is Timer:
            timers.append(time.monotonic())
            if len(timers) >= 5:
                five.set()
        return original(cmd)
    engine.handle = handle
    runtime.start()
    stop = threading.Event()

    def quotes():
        while not stop.is_set():
            runtime.submit(MarketData(symbol="AAPL", venue="V1", bid=px("99"), ask=px("101")))
            time.sleep(0.01)
    t = threading.Thread(target=quotes)
    t.start()
    five.wait(10)  # five intervals take one second; without the fix none comes
    stop.set()
    t.join()
    runtime.stop()
    assert len(timers) >= 5, timers


def test_a_fill_at_an_absurd_price_is_an_anomaly_not_a_journal_it_cannot_write():
    """A venue's fill whose value no order could have (LastPx 10^15 per share) would make
    figures the journal cannot encode: refused as a journaled anomaly with an alert."""
    from oms.model import EVENT_ENCODER

    d = desk()
    d.nos("A", 100)
    d.v_ack("A")
    before = d.book()
    evs = d.engine.handle(VenueExecReport(venue="V1", cl_ord_id=d.child("A").cl_ord_id, exec_id="F1",
                                          exec_type=ExecType.TRADE, last_qty=100, last_px=10**21))
    assert kinds(evs) == ["Anomaly", "ComplianceAlert"] and evs[0].kind == "bad_fill"
    assert d.book() == before
    for ev in evs:
        EVENT_ENCODER.encode(ev)


def test_a_child_is_sent_again_once_and_stale_status_answers_change_nothing():
    """Two status answers saying "unknown" (one to a request made before the resend reached
    the venue) send the child again once; a status answer the venue resends after a
    reconnect (PossDup) is stale and ignored."""
    d = desk()
    d.nos("A", 100)
    first = status(d, "A", OrdStatus.REJECTED, text="unknown order")
    second = status(d, "A", OrdStatus.REJECTED, text="unknown order")
    assert [type(e) for e in first] == [ChildOrderSent] and second == []
    assert d.child("A").resent
    stale = status(d, "A", OrdStatus.CANCELED, poss_dup=True)
    assert stale == [] and d.child("A").status is OrdStatus.PENDING_NEW
