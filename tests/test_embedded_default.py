"""The embedded default (`config/default.toml`) as `oms run` starts it: three simulated
venues, the engine and journal, the trader acceptor and metrics, on free loopback ports."""
from __future__ import annotations

import os
import urllib.request
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from oms.config import load
from oms.system import System
from tests.fix_client import FixClient, free_port, tags
from tests.procnet import family, listeners

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("default")
    cfg = load(ROOT / "config" / "default.toml")
    cfg = msgspec.structs.replace(
        cfg,
        fix=msgspec.structs.replace(cfg.fix, port=free_port()),
        metrics=msgspec.structs.replace(cfg.metrics, port=free_port()),
        nats=msgspec.structs.replace(cfg.nats, port=free_port()),
        api=msgspec.structs.replace(cfg.api, port=free_port()),
        venues=[msgspec.structs.replace(v, port=free_port()) for v in cfg.venues],
    )
    s = System(cfg, tmp)
    s.start()
    yield s
    s.stop()


def trader(system: System, tmp: Path) -> FixClient:
    return FixClient(tmp, system.cfg.fix.port, "CLIENT1", "OMS", "FIX.4.2")


def test_three_venues_quote_different_prices(system):
    assert len(system.sims) >= 3
    tops = [s.top("AAPL") for s in system.sims]
    assert all(t.bid and t.ask and t.bid < t.ask for t in tops)
    assert len({(t.bid, t.ask) for t in tops}) == len(tops)  # prices differ across venues
    depths = {len(s.books["SPY"].l2(50)[0]) for s in system.sims}
    assert len(depths) > 1  # and so does depth
    engine_quotes = system.engine.quotes["AAPL"]  # over each venue's FIX session, from before the first order
    assert set(engine_quotes) == {s.venue.name for s in system.sims}
    assert all(q.bid and q.ask and q.bid < q.ask and q.bid_size and q.ask_size for q in engine_quotes.values())


@pytest.mark.parametrize("venue", [None, "YSIM", "ZSIM"])
def test_a_100_share_market_order_fills(system, tmp_path, venue):
    with trader(system, tmp_path) as t:
        cl = t.next_id()
        t.new_order(cl, "AAPL", "1", "100", account="DEMO1", extra={100: venue} if venue else None)
        while True:
            er = t.expect("8", t11=cl, timeout=15)
            if tags(er, 39) == ("2",):
                break
            assert tags(er, 39)[0] in ("A", "0", "1"), tags(er, 39, 58)
        assert tags(er, 14, 151) == ("100", "0")
        assert abs(Decimal(tags(er, 6)[0]) - 190) < 5


def test_metrics_are_served(system, tmp_path):
    with trader(system, tmp_path) as t:
        t.new_order(t.next_id(), "MSFT", "1", "10", "1.00", account="DEMO1")
        t.expect("8")
    body = urllib.request.urlopen(f"http://127.0.0.1:{system.cfg.metrics.port}/metrics", timeout=5).read().decode()
    assert "oms_commands_total" in body and "oms_engine_latency_seconds" in body


def test_a_fat_finger_order_is_rejected_with_its_reason(system, tmp_path):
    with trader(system, tmp_path) as t:
        cl = t.next_id()
        t.new_order(cl, "AAPL", "1", "10000000", "190.00", account="DEMO1")
        rej = t.expect("8", t11=cl)
        assert tags(rej, 39, 150) == ("8", "8")
        text = tags(rej, 58)[0] or ""
        assert "max_qty" in text and "10000000 > 100000" in text
        cl = t.next_id()
        t.new_order(cl, "AAPL", "1", "100", "250.00", account="DEMO1")  # 30% through the market
        assert "price_collar" in (tags(t.expect("8", t11=cl), 58)[0] or "")


def test_a_sweep_splits_across_venues_and_aggregates_exactly(system, tmp_path):
    with trader(system, tmp_path) as t:
        cl = t.next_id()
        t.new_order(cl, "MSFT", "1", "1200", account="DEMO1", extra={100: "SWEEP"})
        while True:
            er = t.expect("8", t11=cl, timeout=15)
            if tags(er, 39)[0] in ("2", "4", "8"):
                break
        assert tags(er, 39, 14) == ("2", "1200"), tags(er, 39, 14, 58)
        o = system.engine.state.find("CLIENT1", cl)
        children = [system.engine.state.children[c] for c in o.children]
        assert len({ch.venue for ch in children}) >= 2
        assert sum(ch.cum_qty for ch in children) == o.cum_qty == 1200
        exact = Decimal(sum(q * p for q, p in o.fills.values())) / 10**6 / 1200
        assert Decimal(tags(er, 6)[0]) == exact.quantize(Decimal(1).scaleb(-10)).normalize() or \
            abs(Decimal(tags(er, 6)[0]) - exact) < Decimal("1e-9")


def test_market_data_and_consolidated_prices_stream_over_nats(system):
    import asyncio

    import nats

    async def grab() -> dict:
        nc = await nats.connect(system.nats.url)
        subs = {s: await nc.subscribe(s) for s in ("oms.md.YSIM.AAPL", "oms.prices.AAPL")}
        got = {}
        for subject, sub in subs.items():
            msg = await sub.next_msg(timeout=10)
            got[subject] = (msg.headers.get("Oms-Type"), msgspec.msgpack.decode(msg.data))
        await nc.close()
        return got

    got = asyncio.run(grab())
    md_type, md = got["oms.md.YSIM.AAPL"]
    assert md_type == "MarketData" and md["venue"] == "YSIM" and md["bid"] < md["ask"]
    price_type, price = got["oms.prices.AAPL"]
    assert price_type == "Price" and price["bid"] > 0 and price["ask"] > 0  # venues drift apart: it may cross
    assert price["bid_venue"] in ("XSIM", "YSIM", "ZSIM") and price["ask_venue"] in ("XSIM", "YSIM", "ZSIM")


def _until_done(t: FixClient, cl: str, exec_type: str = "") -> list:
    """Every ExecutionReport for `cl` up to its terminal one (or one of `exec_type`)."""
    seen = []
    while True:
        seen.append(t.expect("8", t11=cl, timeout=15))
        if tags(seen[-1], 39)[0] in ("2", "4", "8", "C", "3") or tags(seen[-1], 150)[0] == exec_type:
            return seen


def _price(px: int) -> str:
    return format(Decimal(px) / 10**6, "f")


def test_i_ioc_away_from_the_market_is_canceled_and_fok_is_all_or_nothing(system, tmp_path):
    xsim = next(s for s in system.sims if s.venue.name == "XSIM")
    sim = xsim.venue.sim
    shown = sum(sim.level_qty * k for k in range(1, sim.depth + 1))  # the most the venue ever quotes a side
    with trader(system, tmp_path) as t:
        cl = t.next_id()  # IOC: a buy far below the offer cannot trade, the venue cancels it at once
        t.new_order(cl, "AAPL", "1", "100", _price(xsim.top("AAPL").bid - 1_000_000), tif="3", account="DEMO1",
                    extra={100: "XSIM"})
        last = _until_done(t, cl)[-1]
        assert tags(last, 39, 14, 151) == ("4", "0", "0")
        through = _price(xsim.top("AAPL").ask * 101 // 100 // 10_000 * 10_000)  # 1% through the offer, on tick
        cl = t.next_id()  # FOK for more than the venue shows: nothing trades, though most of it could
        t.new_order(cl, "AAPL", "1", str(shown + 1000), through, tif="4", account="DEMO1", extra={100: "XSIM"})
        assert tags(_until_done(t, cl)[-1], 39, 14) == ("4", "0")
        cl = t.next_id()  # FOK the venue can fill: all of it
        t.new_order(cl, "AAPL", "1", "100", through, tif="4", account="DEMO1", extra={100: "XSIM"})
        assert tags(_until_done(t, cl)[-1], 39, 14) == ("2", "100")


def test_c_replace_up_and_reprice_a_resting_order_then_cancel_it(system, tmp_path):
    """C.1.a against the simulators: the venue resizes and reprices its child; B.1.a the cancel."""
    quotes = [s.top("MSFT") for s in system.sims]
    below = min(q.bid for q in quotes) * 98 // 100 // 10_000 * 10_000  # 2% under the bid: it rests
    with trader(system, tmp_path) as t:
        cl = t.next_id()
        t.new_order(cl, "MSFT", "1", "900", _price(below), account="DEMO1", extra={100: "BEST"})
        while tags(t.expect("8", t11=cl, timeout=15), 39) != ("0",):
            pass
        o = system.engine.state.find("CLIENT1", cl)
        new_cl = t.next_id()
        t.replace(new_cl, cl, "MSFT", "1", "1200", _price(below + 10_000))
        reps = _until_done(t, new_cl, exec_type="5")
        assert tags(reps[-1], 39, 38, 14, 151) == ("0", "1200", "0", "1200")
        working = [ch for c in o.children if (ch := system.engine.state.children[c]).status.value in "0A"]
        assert sum(ch.qty for ch in working) == 1200 and all(ch.price == below + 10_000 for ch in working)
        cxl = t.next_id()
        t.cancel(cxl, new_cl, "MSFT", "1", "1200")
        assert tags(_until_done(t, cxl)[-1], 39, 41, 14) == ("4", new_cl, "0")



def test_internal_crossing_over_fix(system, tmp_path):
    """A CROSS order of DEMO1 rests inside the OMS; a BEST sell of DEMO2 crosses it first, at its price."""
    below = next(s for s in system.sims if s.venue.name == "XSIM").top("NVDA").bid * 97 // 100 // 10_000 * 10_000
    with trader(system, tmp_path) as t:
        buy = t.next_id()
        t.new_order(buy, "NVDA", "1", "200", _price(below), account="DEMO1", extra={100: "CROSS"})
        assert tags(_until_done(t, buy, exec_type="0")[-1], 39) == ("0",)  # acknowledged by the OMS itself
        sell = t.next_id()
        t.new_order(sell, "NVDA", "2", "300", _price(below), account="DEMO2", extra={100: "BEST"})
        crossed = t.expect("8", t11=buy, t39="2")
        assert tags(crossed, 32, 31, 14) == ("200", _price(below), "200")
        done = _until_done(t, sell)  # 200 crossed at the resting price, the other 100 sold at a venue
        fills = [tags(m, 32, 31) for m in done if tags(m, 150)[0] in ("1", "2")]
        assert fills[0] == ("200", _price(below)) and tags(done[-1], 39, 14) == ("2", "300")
        o = system.engine.state.find("CLIENT1", sell)
        venues = [system.engine.state.children[c].venue for c in o.children]
        assert venues[0] == "INTERNAL" and len(venues) == 2 and venues[1] != "INTERNAL"


def test_every_listener_is_on_loopback(system):
    """Every socket of the OMS and of the processes it started (nats-server, the stream
    publisher) listens on 127.0.0.1 only: quickfix's acceptors included."""
    found = listeners(family(os.getpid()))
    cfg = system.cfg
    wanted = {cfg.fix.port, cfg.metrics.port, cfg.api.port, cfg.nats.port, *(v.port for v in cfg.venues)}
    assert wanted <= {port for _addr, port in found}
    assert {addr for addr, _port in found} == {"127.0.0.1"}, sorted(found)


def test_an_order_without_account_goes_to_the_session_default(system, tmp_path):
    """As the QuickFIX example trade client sends it: no Account (1); CLIENT1 trades two accounts."""
    with trader(system, tmp_path) as t:
        cl = t.next_id()
        t.new_order(cl, "AAPL", "1", "100")
        assert tags(t.expect("8", t11=cl, timeout=15), 39, 1) == ("A", "DEMO1")
