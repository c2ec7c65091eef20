"""The trading day at the engine: start and end by the calendar and by operator command,
DAY orders done for day, GTD orders expired on their date, GTC orders carried and
restated (H.1.a), daily counters reset, and a replay that crosses days exactly."""
from __future__ import annotations

import msgspec

from oms.calendar import Calendar
from oms.model import (
    ComplianceAlert,
    DayEnded,
    DayStarted,
    EndOfDay,
    MarketData,
    RestatementReason,
    StartOfDay,
    TimeInForce,
    Timer,
)
from risk.config import LimitRule, PostTradeRule, RiskConfig
from tests.harness import REF, Desk, px, rows

CAL = Calendar("America/New_York", 9 * 60 + 30, 16 * 60, frozenset({"2026-12-25"}))
ADMIN = "ops"
PF, NEW, DFD, EXPIRED = "PARTIALLY_FILLED", "NEW", "DONE_FOR_DAY", "EXPIRED"


def at(date: str, hhmm: str) -> int:
    h, m = hhmm.split(":")
    return CAL.at(date, int(h) * 60 + int(m))


def desk(**risk: object) -> Desk:
    risk.setdefault("admins", [ADMIN])
    d = Desk(RiskConfig(**risk), msgspec.structs.replace(REF, calendar=CAL))  # type: ignore[arg-type]
    d.now = at("2026-12-23", "09:00")
    return d


def tick(d: Desk, date: str, hhmm: str) -> list:
    d.now = at(date, hhmm)
    return d.run_events(Timer())


def days(events: list) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.date) for e in events if type(e) in (DayStarted, DayEnded)]


def test_the_calendar_starts_and_ends_days_and_skips_weekends_and_holidays():
    d = desk()
    assert days(tick(d, "2026-12-23", "09:29")) == []
    assert days(tick(d, "2026-12-23", "09:30")) == [("DayStarted", "2026-12-23")]
    assert days(tick(d, "2026-12-23", "12:00")) == []
    assert days(tick(d, "2026-12-23", "16:00")) == [("DayEnded", "2026-12-23")]
    assert days(tick(d, "2026-12-24", "10:00")) == [("DayStarted", "2026-12-24")]
    assert days(tick(d, "2026-12-25", "10:00")) == [("DayEnded", "2026-12-24")]  # a holiday: no day starts
    assert days(tick(d, "2026-12-26", "10:00")) == []  # Saturday
    assert days(tick(d, "2026-12-28", "10:00")) == [("DayStarted", "2026-12-28")]
    assert (d.engine.state.day, d.engine.state.day_open) == ("2026-12-28", True)


def test_day_orders_are_done_for_day_gtd_expire_on_their_date_gtc_is_carried_and_restated():
    d = desk()
    tick(d, "2026-12-23", "09:30")
    d.nos("DAY", 1000)
    d.nos("GTC", 10000, tif=TimeInForce.GTC)
    d.nos("GTD1", 500, tif=TimeInForce.GTD, expire_time=at("2026-12-23", "23:00"))
    d.nos("GTD2", 500, tif=TimeInForce.GTD, expire_time=at("2026-12-28", "23:00"))
    for cl in ("DAY", "GTC", "GTD1", "GTD2"):
        d.v_ack(cl)
    assert rows(d.v_fill("GTC", 2000)) == [("TRADE", PF, 10000, 2000, 8000, 2000)]
    d.now = at("2026-12-23", "16:00")
    close = d.run(Timer())
    assert {(r.cl_ord_id, *rows([r])[0]) for r in close} == {
        ("DAY", DFD, DFD, 1000, 0, 0, 0), ("GTD1", EXPIRED, EXPIRED, 500, 0, 0, 0)}
    assert d.child("GTC").status.name == PF  # the GTC child rests at its venue over night
    assert d.v_canceled("DAY") == d.v_canceled("GTD1") == []  # their children's cancels
    d.now = at("2026-12-24", "09:30")
    morning = d.run(Timer())
    # H.1.a: next morning Restated / PF 10000/2000/8000/0, ExecRestatementReason GT renewal
    assert {(r.cl_ord_id, *rows([r])[0]) for r in morning} == {
        ("GTC", "RESTATED", PF, 10000, 2000, 8000, 0), ("GTD2", "RESTATED", NEW, 500, 0, 500, 0)}
    assert {r.restatement_reason for r in morning} == {RestatementReason.GT_RENEWAL}
    assert rows(d.v_fill("GTC", 1000)) == [("TRADE", PF, 10000, 3000, 7000, 1000)]  # day 2
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_a_gt_order_whose_venue_ended_its_child_overnight_is_routed_again_at_start_of_day():
    d = desk()
    tick(d, "2026-12-23", "09:30")
    d.nos("GTC", 1000, tif=TimeInForce.GTC)
    d.v_ack("GTC")
    d.v_fill("GTC", 400)
    first = d.child("GTC")
    assert d.v_done_for_day("GTC") == []  # the venue drops it at its close: carried, not done
    assert d.engine.state.find("CLIENT1", "GTC").status.name == PF
    tick(d, "2026-12-23", "16:00")
    tick(d, "2026-12-24", "09:30")
    again = d.child("GTC")
    assert again.child_id != first.child_id and again.qty == 600
    assert rows(d.v_fill("GTC", 600)) == [("TRADE", "FILLED", 1000, 1000, 0, 600)]


def test_executed_notional_and_order_to_trade_count_from_the_start_of_each_day():
    d = desk(limits=[LimitRule(control="credit", value="150000", scope="account", account="ACC1")])
    tick(d, "2026-12-23", "09:30")
    d.nos("A", 1000)
    d.v_ack("A")
    d.v_fill("A", 1000)  # 100,000 executed
    refused = d.nos("B", 1000)
    assert refused[0].ord_rej_reason is not None and "credit" in refused[0].text
    tick(d, "2026-12-23", "16:00")
    tick(d, "2026-12-24", "09:30")
    assert rows(d.nos("C", 1000)) == [("PENDING_NEW", "PENDING_NEW", 1000, 0, 1000, 0)]  # a new day's credit
    c = d.engine.compliance
    assert not c.orders_sent and not c.executions and not c.windows


def test_daily_loss_counts_from_the_marks_at_the_start_of_day():
    d = desk(post_trade=[PostTradeRule(rule="daily_loss", hard="1000")])
    tick(d, "2026-12-23", "09:30")
    d.run(MarketData(symbol="AAPL", venue="V1", bid=px("99.99"), ask=px("100.01")))
    d.nos("A", 1000)
    d.v_ack("A")
    d.v_fill("A", 1000, "100")
    d.run(MarketData(symbol="AAPL", venue="V1", bid=px("97.99"), ask=px("98.01")))  # down 2,000
    loss = [e for e in d.run_events(Timer()) if type(e) is ComplianceAlert and e.control == "post_daily_loss"]
    assert loss and loss[-1].level == "hard"
    tick(d, "2026-12-23", "16:00")
    started = [e for e in tick(d, "2026-12-24", "09:30") if type(e) is DayStarted][0]
    assert dict(started.marks)["AAPL"] == px("98")
    cleared = [e for e in tick(d, "2026-12-24", "09:31") if type(e) is ComplianceAlert
               and e.control == "post_daily_loss"]
    assert cleared and cleared[-1].level == "clear"  # the position is carried at 98: today's P&L is 0
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()


def test_operators_start_and_end_the_day_and_are_refused_what_makes_no_sense():
    d = desk()
    d.now = at("2026-12-23", "03:00")
    refused = d.run_events(StartOfDay(user="intruder"))
    assert refused[0].control == "authorisation"
    assert days(d.run_events(StartOfDay(user=ADMIN, date="2026-12-23"))) == [("DayStarted", "2026-12-23")]
    assert "is open" in d.run_events(StartOfDay(user=ADMIN))[0].text
    d.nos("X", 100)
    ended = d.run_events(EndOfDay(user=ADMIN, reason="early close"))
    assert days(ended) == [("DayEnded", "2026-12-23")] and ended[0].user == ADMIN
    assert [r.ord_status.name for r in d.reports[-1:]] == [DFD]
    assert "no trading day" in d.run_events(EndOfDay(user=ADMIN))[0].text
    assert "not after" in d.run_events(StartOfDay(user=ADMIN, date="2026-12-22"))[0].text
    assert "YYYY-MM-DD" in d.run_events(StartOfDay(user=ADMIN, date="tomorrow"))[0].text
    # no date: the calendar's date of now is taken; it is not after the last, so the next trading date
    assert days(d.run_events(StartOfDay(user=ADMIN))) == [("DayStarted", "2026-12-24")]


def test_venue_hours_are_routed_around_outside_them():
    cal = msgspec.structs.replace(CAL, venue_hours={"V2": (11 * 60, 12 * 60)})
    d = Desk(RiskConfig(), msgspec.structs.replace(REF, calendar=cal))
    d.now = at("2026-12-23", "10:00")
    d.run(MarketData(symbol="AAPL", venue="V2", bid=px("99"), ask=px("99.50")))
    d.run(MarketData(symbol="AAPL", venue="V1", bid=px("99"), ask=px("100")))
    d.nos("B1", 100, ex_destination="BEST")
    assert d.child("B1").venue == "V1"  # V2 quotes better but opens at 11:00
    d.now = at("2026-12-23", "11:30")
    d.nos("B2", 100, ex_destination="BEST")
    assert d.child("B2").venue == "V2"


def test_calendar_config_is_checked_and_errors_name_the_key(tmp_path):
    from oms.config import ConfigError, load

    cases = [('[calendar]\ntime_zone = "Mars/Olympus"', "calendar.time_zone"),
             ('[calendar]\nopen = "25:00"', "calendar.open"),
             ('[calendar]\nopen = "17:00"', "calendar.close"),
             ('[calendar]\nholidays = ["2026-13-01"]', "calendar.holidays[0]"),
             ('[calendar]\nweekdays = ["mon", "fun"]', "calendar.weekdays"),
             ('default_venue = "V"\n[[venues]]\nname = "V"\nport = 1\nhours = "08:00-09:00"', "calendar"),
             ('[[instruments]]\nsymbol = "X"\nhours = "10:00-15:00"', "calendar"),
             ('[calendar]\noutside_hours = "hold"\n[[instruments]]\nsymbol = "X"\nhours = "10:00"',
              "instruments[0].hours"),
             ('[calendar]\noutside_hours = "hold"\n[[instruments]]\nsymbol = "X"\nhours = "15:00-10:00"',
              "instruments[0].hours"),
             ('[calendar]\n[[instruments]]\nsymbol = "X"\nhours = "10:00-15:00"', "calendar.outside_hours")]
    for body, key in cases:
        path = tmp_path / "c.toml"
        path.write_text(body)
        try:
            load(path)
        except ConfigError as exc:
            assert exc.key == key, (body, exc)
        else:
            raise AssertionError(f"accepted: {body}")
    path.write_text('default_venue = "V"\n[calendar]\ntime_zone = "Europe/Berlin"\nholidays = ["2026-12-25"]\n'
                    'outside_hours = "hold"\n[[venues]]\nname = "V"\nport = 1\nhours = "08:00-17:30"\n'
                    '[venues.sim]\nenabled = false\n[[instruments]]\nsymbol = "X"\nhours = "10:00-15:00"\n'
                    '[[instruments]]\nsymbol = "Y"')
    cal = load(path).reference_data().calendar
    assert cal is not None and cal.venue_hours == {"V": (480, 1050)} and cal.time_zone == "Europe/Berlin"
    assert cal.instrument_hours == {"X": (600, 900)}


def test_orders_outside_the_trading_day_are_held_until_it_starts_or_rejected_by_policy():
    d = Desk(RiskConfig(), msgspec.structs.replace(REF, calendar=msgspec.structs.replace(CAL, outside_hours="hold")))
    d.now = at("2026-12-23", "08:00")
    reps = d.nos("EARLY", 100)
    assert rows(reps) == [("PENDING_NEW", "PENDING_NEW", 100, 0, 100, 0), (NEW, NEW, 100, 0, 100, 0)]
    assert reps[1].text == "held: the trading day is closed" and not d.engine.state.find("CLIENT1", "EARLY").children
    tick(d, "2026-12-23", "09:30")
    assert d.child("EARLY").qty == 100  # routed as the day starts
    d2 = Desk(RiskConfig(), msgspec.structs.replace(REF, calendar=msgspec.structs.replace(CAL, outside_hours="reject")))
    d2.now = at("2026-12-23", "08:00")
    refused = d2.nos("EARLY", 100)
    assert rows(refused) == [("REJECTED", "REJECTED", 100, 0, 0, 0)] and refused[0].ord_rej_reason == 2
    tick(d2, "2026-12-23", "09:30")
    assert rows(d2.nos("OPEN", 100)) == [("PENDING_NEW", "PENDING_NEW", 100, 0, 100, 0)]


def hours_desk(policy: str) -> Desk:
    """AAPL trades 10:00-15:00 inside a 09:30-16:00 day; MSFT keeps the day's hours."""
    cal = msgspec.structs.replace(CAL, outside_hours=policy, instrument_hours={"AAPL": (10 * 60, 15 * 60)})
    d = Desk(RiskConfig(), msgspec.structs.replace(REF, calendar=cal))
    tick(d, "2026-12-23", "09:30")
    return d


def test_an_instrument_s_orders_wait_for_its_own_hours_and_go_out_on_the_tick_they_start():
    d = hours_desk("hold")
    d.now = at("2026-12-23", "09:45")
    held = d.nos("EARLY", 100)
    assert rows(held) == [("PENDING_NEW", "PENDING_NEW", 100, 0, 100, 0), (NEW, NEW, 100, 0, 100, 0)]
    assert held[1].text == "held: outside AAPL's trading hours 10:00-15:00 America/New_York"
    assert not d.engine.state.find("CLIENT1", "EARLY").children
    assert d.nos("M", 100, symbol="MSFT") and d.child("M").qty == 100  # the day's hours: routed
    tick(d, "2026-12-23", "09:59")
    assert not d.engine.state.find("CLIENT1", "EARLY").children
    tick(d, "2026-12-23", "10:00")
    assert d.child("EARLY").qty == 100  # its hours have started
    d.now = at("2026-12-23", "15:00")
    d.nos("LATE", 200, tif=TimeInForce.GTC)
    assert not d.engine.state.find("CLIENT1", "LATE").children
    tick(d, "2026-12-23", "16:00")
    tick(d, "2026-12-24", "09:30")  # a new day, still before AAPL's hours
    assert not d.engine.state.find("CLIENT1", "LATE").children
    tick(d, "2026-12-24", "10:00")
    assert d.child("LATE").qty == 200
    replayed = d.replayed()
    assert replayed.state.state_hash() == d.engine.state.state_hash()
    # an order held when the OMS went down, restarted inside AAPL's hours: its first tick releases it
    d.now = at("2026-12-24", "15:30")
    d.nos("HELD", 300, tif=TimeInForce.GTC)
    tick(d, "2026-12-25", "10:00")  # a holiday: the day ends and none starts
    assert not d.engine.state.find("CLIENT1", "HELD").children
    d.engine = d.replayed()
    tick(d, "2026-12-28", "09:30")  # the day starts before AAPL's hours: both wait
    d.nos("HELD2", 300)
    d.engine = d.replayed()
    assert not d.engine.state.find("CLIENT1", "HELD2").children
    released = tick(d, "2026-12-28", "10:30")
    assert d.child("HELD2").qty == 300 and d.child("HELD").qty == 300
    assert d.replayed().state.state_hash() == d.engine.state.state_hash()
    sent = [type(e).__name__ for e in released if type(e).__name__ == "ChildOrderSent"]
    again = [type(e).__name__ for e in tick(d, "2026-12-28", "10:31") if type(e).__name__ == "ChildOrderSent"]
    assert sent == ["ChildOrderSent"] * 2 and again == []  # once


def test_an_instrument_outside_its_hours_is_refused_with_them_by_the_reject_policy():
    d = hours_desk("reject")
    d.now = at("2026-12-23", "09:45")
    refused = d.nos("EARLY", 100)
    assert rows(refused) == [("REJECTED", "REJECTED", 100, 0, 0, 0)] and refused[0].ord_rej_reason == 2
    assert refused[0].text == "outside AAPL's trading hours 10:00-15:00 America/New_York"
    d.now = at("2026-12-23", "10:00")
    assert rows(d.nos("OPEN", 100)) == [("PENDING_NEW", "PENDING_NEW", 100, 0, 100, 0)]
