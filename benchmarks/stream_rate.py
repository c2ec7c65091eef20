"""Event publish rate: the OMS's journal-following publisher against a bare nats-py loop
publishing the same messages to the same JetStream stream, side by side on one machine.

Run: .venv/bin/python -m benchmarks.stream_rate [--orders 2000]

The journal holds the events of `orders` new orders and their fills (made by the real
engine); every side publishes each to JetStream with a Nats-Msg-Id and waits for its ack:
the OMS publisher with a window of messages in flight (and the ordering guard of
Nats-Expected-Last-Msg-Id), the bare loops either one at a time or all at once.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import nats

from gateways.nats_stream import NatsStreamer
from oms.engine import Engine, SequentialIds
from oms.journal import Journal
from oms.model import EVENT_DECODER, EVENT_ENCODER, ExecType, NewOrder, OrdType, Side, VenueExecReport
from oms.natsd import EmbeddedNats
from tests.fix_client import free_port
from tests.harness import REF, SESSION


def make_journal(path: Path, orders: int) -> int:
    engine = Engine(REF, clock=time.time_ns, ids=SequentialIds())
    with Journal(path, fsync=False) as j:
        for i in range(orders):
            events = engine.handle(NewOrder(session=SESSION, cl_ord_id=f"c{i}", account="ACC1", symbol="AAPL",
                                            side=Side.BUY, ord_type=OrdType.LIMIT, qty=100, price=100_000_000))
            child = events[-1]
            events += engine.handle(VenueExecReport(venue="V1", cl_ord_id=child.cl_ord_id, exec_id=f"f{i}",
                                                    exec_type=ExecType.TRADE, last_qty=100, last_px=100_000_000))
            j.append([EVENT_ENCODER.encode(e) for e in events])
        j.commit()
        return j.last_seq


def streamer_rate(url: str, journal: Path, state: Path) -> tuple[int, float]:
    s = NatsStreamer(url, journal, state)
    t0 = time.perf_counter()
    s.start()
    last = Journal(journal).last_seq
    while s.published < last:
        time.sleep(0.01)
    seconds = time.perf_counter() - t0
    s.stop()
    return last, seconds


async def bare_rate(url: str, journal: Path, pipelined: bool) -> tuple[int, float]:
    """The same messages by nats-py alone: each publish awaited, or all sent with
    publish_async and their acks awaited at the end."""
    with Journal(journal) as j:
        payloads = [(seq, EVENT_DECODER.decode(p)) for seq, p in j.replay()]
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = "BARE_ASYNC" if pipelined else "BARE"
    await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    sent, acks = 0, []
    t0 = time.perf_counter()
    for seq, ev in payloads:
        if type(ev).__name__ in ("OrderAccepted", "ExecutionReport"):
            subject, data, headers = f"{name.lower()}.orders.ACC1", EVENT_ENCODER.encode(ev), {"Nats-Msg-Id": str(seq)}
            if pipelined:
                acks.append(await js.publish_async(subject, data, headers=headers))
            else:
                await js.publish(subject, data, headers=headers)
            sent += 1
    await asyncio.gather(*acks)
    seconds = time.perf_counter() - t0
    await nc.close()
    return sent, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=2000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = EmbeddedNats("127.0.0.1", free_port(), tmp / "nats")
        server.start()
        try:
            make_journal(tmp / "journal.db", a.orders)
            n_bare, t_bare = asyncio.run(bare_rate(server.url, tmp / "journal.db", pipelined=False))
            _, t_async = asyncio.run(bare_rate(server.url, tmp / "journal.db", pipelined=True))
            n_oms, t_oms = streamer_rate(server.url, tmp / "journal.db", tmp)
        finally:
            server.stop()
    oms_rate = n_bare / t_oms  # the same JetStream messages on every side
    print(f"OMS publisher: {n_oms} journal events, {n_bare} of them to JetStream, in {t_oms:.2f} s: "
          f"{oms_rate:,.0f} JetStream msgs/s")
    for label, seconds in (("bare nats-py, each publish awaited", t_bare), ("bare nats-py, publish_async", t_async)):
        rate = n_bare / seconds
        print(f"{label:36}: {n_bare} in {seconds:.2f} s: {rate:,.0f} msgs/s; the OMS publisher {oms_rate / rate:.2f}x")


if __name__ == "__main__":
    main()
