"""Drop copy over real FIX: the back office gets every trader-facing ExecutionReport of its
accounts once, in journal order, across its own disconnects and a restart of the OMS."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import msgspec
import quickfix as fix

from gateways.fix_session import execution_report, field
from oms.config import Config, ConfigError, _check
from oms.journal import Journal
from oms.model import EVENT_DECODER, ExecType, OrdStatus
from oms.reports import trader_report
from oms.system import System
from tests.fix_client import FixClient, free_port

CONFIG = """
run_dir = "run"
default_venue = "TV"
[api]
enabled = false
[fix]
port = {trader_port}
[[fix.sessions]]
comp_id = "CLIENT1"
begin_string = "FIX.4.4"
accounts = ["DEMO1", "DEMO2"]
[[fix.sessions]]
comp_id = "BACKOFFICE"
begin_string = "FIX.4.4"
accounts = ["DEMO1"]
drop_copy = true
[[venues]]
name = "TV"
port = {venue_port}
reset_on_logon = true
[venues.sim]
enabled = false
[[accounts]]
id = "DEMO1"
[[accounts]]
id = "DEMO2"
[[instruments]]
symbol = "AAPL"
"""


class Office(FixClient):
    """A FIX client that also keeps every application message its session delivered, in order."""

    def __init__(self, *args, received: list, **kw) -> None:
        super().__init__(*args, **kw)
        self.received = received

    def fromApp(self, msg, sid):
        self.received.append(fix.Message(msg))
        super().fromApp(msg, sid)


class Rig:
    """The OMS (restartable on its run directory), the venue played by the test, a trader
    and the back office's drop-copy client, both keeping their sequence numbers."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.trader_port, self.venue_port = free_port(), free_port()
        self.cfg = msgspec.toml.decode(CONFIG.format(trader_port=self.trader_port, venue_port=self.venue_port),
                                       type=Config)
        self.venue = FixClient(tmp, self.venue_port, "TV", "OMS", role="acceptor", wait_logon=False)
        self.venue.__enter__()
        self.system: System | None = None
        self._n = 0

    def start_oms(self) -> None:
        self.venue.logged_on.clear()
        self.system = System(self.cfg, self.tmp, venues=False, serve_metrics=False, streams=False)
        self.system.start()
        assert self.venue.logged_on.wait(15), "the OMS did not log on to the venue"

    def stop_oms(self) -> None:
        assert self.system is not None
        self.system.stop()

    def client(self, comp: str, received: list | None = None) -> Office:
        """A client on the comp's own store (a new one each time: sequence numbers carry over)."""
        return Office(self.tmp, self.trader_port, comp, "OMS", store_dir=self.tmp / f"store-{comp}",
                      received=[] if received is None else received)

    def fill(self, trader: FixClient, cl: str, account: str) -> None:
        """An order filled at the venue: PendingNew, New, Filled to the trader."""
        trader.new_order(cl, "AAPL", "1", "100", "100.00", account=account)
        order = self.venue.expect("D")
        for et, st, cum in ((ExecType.NEW, OrdStatus.NEW, 0), (ExecType.TRADE, OrdStatus.FILLED, 100)):
            self._n += 1
            self.venue.send(execution_report(
                "FIX.4.4", order_id="TV-1", exec_id=f"TV{self._n}-{time.monotonic_ns()}", exec_type=et,
                ord_status=st, cl_ord_id=field(order, 11) or "", symbol="AAPL", side="1", order_qty=100, cum_qty=cum,
                leaves_qty=100 - cum, avg_px=Decimal("100") if cum else Decimal(0), last_qty=cum,
                last_px=100_000_000))
        trader.expect("8", t11=cl, t39="2")

    def close(self) -> None:
        if self.system is not None:
            self.system.stop()
        self.venue.__exit__()


def journal_copies(journal: Path, accounts: set[str]) -> list[str]:
    """ExecIDs of the trader-facing ExecutionReports of these accounts, in journal order."""
    with Journal(journal) as j:
        reports = [trader_report(EVENT_DECODER.decode(p)) for _, p in j.replay()]
    return [r.exec_id for r in reports if r is not None and r.msg_type == "8" and r.account in accounts]


def test_drop_copy_gets_every_report_once_in_order_across_disconnects_and_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.start_oms()
        received: list = []
        trader, office = rig.client("CLIENT1"), rig.client("BACKOFFICE", received)
        trader.__enter__()
        office.__enter__()
        rig.fill(trader, "A1", "DEMO1")
        rig.fill(trader, "X1", "DEMO2")  # not the back office's account
        office.expect("8", t11="A1", t39="2")
        office.__exit__()  # the back office goes away mid-day
        rig.fill(trader, "A2", "DEMO1")
        rig.fill(trader, "A3", "DEMO1")
        office = rig.client("BACKOFFICE", received).__enter__()  # back on its own store: the gap is resent
        office.expect("8", t11="A3", t39="2")
        office.__exit__()
        trader.__exit__()
        rig.stop_oms()  # the OMS restarts while the back office is away
        rig.start_oms()
        trader = rig.client("CLIENT1").__enter__()
        rig.fill(trader, "A4", "DEMO1")
        office = rig.client("BACKOFFICE", received).__enter__()
        office.expect("8", t11="A4", t39="2")
        office.drain(0.5)  # nothing more comes
        trader.__exit__()
        office.__exit__()
    finally:
        rig.close()
    exec_ids = [field(m, 17) for m in received]
    expected = journal_copies(rig.cfg.journal_path(tmp_path), {"DEMO1"})
    assert len(expected) == 4 * 3  # PendingNew, New, Filled of A1..A4
    assert exec_ids == expected
    assert all(field(m, 797) == "Y" and field(m, 1) == "DEMO1" for m in received)
    resent = [field(m, 11) for m in received if m.getHeader().isSetField(43)]
    assert set(resent) == {"A2", "A3", "A4"}  # what it missed while away came by resend (PossDupFlag=Y)


def test_a_drop_copy_session_sends_no_orders_and_needs_accounts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.start_oms()
        with rig.client("BACKOFFICE") as office:
            office.new_order("Z1", "AAPL", "1", "100", "100.00", account="DEMO1")
            reject = office.expect("j")
            assert "drop-copy session" in (field(reject, 58) or "") and field(reject, 380) == "3"
    finally:
        rig.close()
    bad = msgspec.structs.replace(rig.cfg, fix=msgspec.structs.replace(rig.cfg.fix, sessions=[
        msgspec.structs.replace(rig.cfg.fix.sessions[1], accounts=[])]))
    try:
        _check("cfg.toml", bad)
    except ConfigError as exc:
        assert "drop-copy session BACKOFFICE" in str(exc)
    else:
        raise AssertionError("a drop-copy session without accounts was accepted")
