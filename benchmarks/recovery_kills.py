"""Kill `oms run` with SIGKILL under load, again and again, and count what was lost.

    .venv/bin/python -m benchmarks.recovery_kills [--kills 10] [--rate 200] [--venue-kills 0]

One venue simulator (a process of its own), one OMS (killed and restarted `--kills`
times, each time once the trader has seen traffic since the last restart), one quickfix
trader with a FileStore sending limit orders throughout. At the end the trader asks the
status of every order it sent and tests/crash_harness.py compares trader, journal and the
venue's own FIX store. `--venue-kills N`: also kill and restart the venue N times.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.crash_harness import CrashRig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--rate", type=float, default=200.0, help="orders per second")
    p.add_argument("--venue-kills", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rig = CrashRig(Path(tmp))
        try:
            rig.start()
            trader = rig.trader
            assert trader is not None
            load = rig.load(args.rate, seconds=3600)
            downtime = []
            for k in range(args.kills + args.venue_kills):
                seen = len(trader.got)
                while len(trader.got) < seen + 100:
                    time.sleep(0.05)
                t0 = time.monotonic()
                if k < args.kills:
                    logons = trader.logons
                    rig.kill(rig.oms)
                    rig.start_oms()
                    while trader.logons == logons:  # logged on to the new OMS, not still to the old
                        time.sleep(0.01)
                else:
                    rig.kill(rig.venue)
                    rig.start_venue()
                downtime.append(time.monotonic() - t0)
                print(f"kill {k + 1}: {'OMS' if k < args.kills else 'venue'} back in {downtime[-1]:.2f} s, "
                      f"{len(rig.sent)} orders sent so far", flush=True)
            rig._stop_load.set()
            load.join()
            v = rig.verdict()
            print(v.row())
            print(f"clean: {v.clean()}; mean time from kill to trader logged on again: "
                  f"{sum(downtime[:args.kills]) / max(1, args.kills):.2f} s")
            return 0 if v.clean() else 1
        finally:
            rig.stop()


if __name__ == "__main__":
    raise SystemExit(main())
