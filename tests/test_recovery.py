"""After any crash the trader, the OMS and the venue agree on every order and fill.

Real parts in processes of their own (tests/crash_harness.py): `oms run` is killed with
SIGKILL under load and restarted; the venue simulator is killed or frozen; a venue that
refuses status requests leaves its children in doubt, visibly.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.crash_harness import CrashRig, _store_messages
from tests.harness import wait_for


@pytest.fixture(params=["fsync", "write"])
def rig(tmp_path: Path, request):
    """Both durability modes: `fsync = true` survives the host, `false` (write) the process."""
    r = CrashRig(tmp_path, fsync=request.param == "fsync")
    yield r
    r.stop()


def test_sigkill_under_load_loses_nothing_and_books_every_venue_fill(rig: CrashRig) -> None:
    rig.start()
    load = rig.load(rate=200, seconds=5)
    wait_for(lambda: len(rig.trader.got) > 150, 30, "no load reached the trader")
    rig.kill(rig.oms)  # mid-stream: orders in flight on both sessions
    rig.start_oms()
    rig.kill(rig.oms)  # again, while it recovers (its FIX gateway, killed with it, must not outlive it)
    rig.start_oms()
    load.join()
    wait_for(lambda: rig.trader.logged_on.is_set(), 60, "the trader did not log on again")
    v = rig.verdict()
    assert v.clean(), v.row()
    assert v.orders_sent > 300 and v.venue_fills > 0 and v.in_doubt == 0, v.row()  # fills, whatever they net to


def test_a_venue_killed_and_frozen_leaves_nothing_unbooked(tmp_path: Path) -> None:
    """The venue freezes (SIGSTOP) with orders in flight: they time out into doubt, visibly;
    then it is killed and restarted from its store: the OMS reconciles every child."""
    rig = CrashRig(tmp_path, ack_timeout_s=1.0)
    try:
        rig.start()
        load = rig.load(rate=100, seconds=2)
        wait_for(lambda: len(rig.trader.got) > 60, 30, "no load reached the trader")
        os.kill(rig.venue.pid, signal.SIGSTOP)
        load.join()
        wait_for(lambda: any("in doubt at XSIM" in m.get(58, "") for m in rig.trader.got), 20,
                 "no child went into doubt while the venue was frozen")
        os.kill(rig.venue.pid, signal.SIGCONT)
        rig.kill(rig.venue)
        rig.start_venue()
        v = rig.verdict()
        assert not v.vanished and not v.acked_lost and not v.unbooked_venue_fills, v.row()
        assert not v.children_sent_twice and not v.reports_missing and not v.duplicates_without_possdup, v.row()
        assert v.position_oms == v.position_venue and v.in_doubt == 0, v.row()
    finally:
        rig.stop()


def test_a_venue_that_refuses_status_requests_leaves_children_in_doubt_visibly(tmp_path: Path) -> None:
    rig = CrashRig(tmp_path, status_requests=False)
    try:
        rig.start()
        rig.trader.new_order("R1", "AAPL", "1", "100", "95.00", account="ACC")  # rests at the venue
        wait_for(lambda: any(m.get(11) == "R1" and m.get(39) == "0" for m in rig.trader.got), 20, "R1 not acked")
        rig.kill(rig.oms)
        rig.start_oms()  # reconciles R1's child: the venue answers the status request with a reject
        wait_for(lambda: any(m.get(11) == "R1" and "refuses status requests" in m.get(58, "")
                             for m in rig.trader.got), 60, "the trader was not told the child is in doubt")
        told = next(m for m in rig.trader.got if "refuses status requests" in m.get(58, ""))
        assert told.get(150) == "I" and told.get(39) == "0" and "XSIM" in told[58]
        log = Path(rig.oms.log_path).read_text()  # type: ignore[attr-defined]
        assert "anomaly child_in_doubt" in log and "recovered 1 orders, 1 open child orders" in log
    finally:
        rig.stop()


def test_a_trader_that_comes_back_gets_what_it_missed_by_resend(tmp_path: Path) -> None:
    """The trader goes away (its orders are canceled on disconnect meanwhile) and comes back
    on its own store: the OMS answers its resend request from the session store."""
    rig = CrashRig(tmp_path, cancel_on_disconnect=True)
    try:
        rig.start()
        rig.trader.new_order("R1", "AAPL", "1", "100", "95.00", account="ACC")
        wait_for(lambda: any(m.get(11) == "R1" and m.get(39) == "0" for m in rig.trader.got), 20, "R1 not acked")
        rig.trader.endpoint.stop()
        venue_store = tmp_path / "venue" / "run" / "venue-XSIM-store"
        wait_for(lambda: any(m.get(150) == "4" for m in _store_messages(venue_store)), 20,
                 "the order was not canceled at the venue while the trader was away")
        rig.start_trader()
        wait_for(lambda: any(m.get(11) == "R1" and m.get(39) == "4" for m in rig.trader.got), 20,
                 "the cancel made while the trader was away never reached it")
        missed = [m for m in rig.trader.got if m.get(11) == "R1" and m.get(39) in ("6", "4")]
        assert [m[39] for m in missed] == ["6", "4"] and all(m.get(43) == "Y" for m in missed)  # resent, in order
        assert "cancel on disconnect" in missed[0].get(58, "")
    finally:
        rig.stop()


def test_sigkill_of_the_fix_gateway_process_under_load_loses_nothing(tmp_path: Path) -> None:
    """The FIX gateway process dies: `oms run` restarts it, its sessions resume from their
    stores (the trader logs on again with its sequence numbers) and nothing is lost."""
    import subprocess

    rig = CrashRig(tmp_path)
    try:
        rig.start()
        load = rig.load(rate=200, seconds=4)
        wait_for(lambda: len(rig.trader.got) > 150, 30, "no load reached the trader")
        gateway = subprocess.run(["pgrep", "-P", str(rig.oms.pid), "-f", "oms.roles fix"], capture_output=True,
                                 text=True).stdout.split()
        assert len(gateway) == 1, gateway
        logons = rig.trader.logons
        os.kill(int(gateway[0]), signal.SIGKILL)
        wait_for(lambda: rig.trader.logons > logons, 60, "the trader did not log on to a restarted gateway")
        load.join()
        v = rig.verdict()
        assert v.clean(), v.row()
        assert "fix process" in Path(rig.oms.log_path).read_text()  # type: ignore[attr-defined]
    finally:
        rig.stop()
