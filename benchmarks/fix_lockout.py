"""The lock-out the trader port's front door ends: a trader logs on and off while silent
connections keep arriving, at a bare quickfix acceptor and at one behind the door
(gateways.fix_door); how many of its logons fail to complete within 4 s.

Run: .venv/bin/python -m benchmarks.fix_lockout [--rounds 6] [--trials 5]

Once a session is stuck (a quickfix thread polling a descriptor that a silent newcomer
took), every later logon of the trial fails too; whether it sticks is a race, so trials.
"""
from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

import quickfix as fix

from gateways.fix_door import FixDoor
from gateways.fix_session import Endpoint, FixSession, write_settings
from oms.config import FixConfig
from oms.metrics import Metrics
from tests.fix_client import FixClient, free_port


class Acceptor(fix.Application):
    """Does nothing, but its onLogout takes the interpreter lock a moment, as the OMS's does."""

    def onCreate(self, sid): pass
    def onLogon(self, sid): pass
    def onLogout(self, sid): time.sleep(0.002)
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid): pass


def failed_logons(rounds: int, door: bool) -> int:
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    session = FixSession("FIX.4.4", "OMS", "CLIENT1")
    settings = write_settings(tmp / "acceptor.cfg", "acceptor", "127.0.0.1", port, [session], dictionary=False)
    front = FixDoor(FixConfig(port=port, max_pending=64, max_pending_per_source=64),
                    {("FIX.4.4", "CLIENT1"): session.session_id()}, Metrics()) if door else None
    acceptor = Endpoint(Acceptor(), settings, "acceptor", listen=front.inner_listener() if front else None)
    acceptor.start()
    if front:
        front.start()
    junk: list[socket.socket] = []
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set() and len(junk) < 400:
            junk.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(0.002)

    failed = 0
    try:
        for _ in range(rounds):
            trader = FixClient(tmp, port, "CLIENT1", "OMS", "FIX.4.4", wait_logon=False)
            stop.clear()
            flooding = threading.Thread(target=flood)
            flooding.start()
            trader.endpoint.start()
            failed += not trader.logged_on.wait(4)
            trader.endpoint.stop()
            stop.set()
            flooding.join()
            time.sleep(0.05)
    finally:
        for s in junk:
            s.close()
        acceptor.stop()
        if front:
            front.stop()
    return failed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6, help="logons per trial")
    p.add_argument("--trials", type=int, default=5)
    a = p.parse_args()
    for name, door in (("bare quickfix acceptor", False), ("behind the front door", True)):
        failed = [failed_logons(a.rounds, door) for _ in range(a.trials)]
        print(f"{name}: failed logons per trial of {a.rounds}: {failed}")


if __name__ == "__main__":
    main()
