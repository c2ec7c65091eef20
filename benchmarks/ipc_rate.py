"""What the engine/gateway socket costs (oms.ipc), against one durable journal commit.

    .venv/bin/python -m benchmarks.ipc_rate [--n 20000]

Round trip: the gateway sends one NewOrder (a Submit frame), a thread in another process
plays the engine and answers with the three journal records an order produces (a
Committed frame). Throughput: batches of 64 commands one way. The same machine's fsync'd
SQLite commit of one record is printed beside it, and the floor under every hand-off inside
a process: a thread asleep on a queue woken to answer another (what the engine's queue,
the journal thread and each reader cost an order, twice, before any work).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from oms.ipc import Channel, Committed, Submit
from oms.journal import Journal
from oms.model import EVENT_ENCODER, NewOrder, OrdType, Side


def _engine(sock: socket.socket) -> None:
    ch = Channel(sock)
    records = [EVENT_ENCODER.encode(NewOrder(session="S", cl_ord_id=f"C{i}", account="A", symbol="AAPL",
                                             side=Side.BUY, ord_type=OrdType.LIMIT, qty=100, price=100_000_000))
               for i in range(3)]
    seq = 0
    while (frame := ch.receive()) is not None:
        if len(frame.commands) == 1:  # type: ignore[union-attr]
            ch.send(Committed(first_seq=seq + 1, records=records))
            seq += 3


def thread_round_trips(n: int) -> list[float]:
    """A thread asleep on a queue, woken to put back what it got: one round trip, two wake-ups."""
    there, back = queue.SimpleQueue(), queue.SimpleQueue()

    def echo() -> None:
        while (item := there.get()) is not None:
            back.put(item)

    t = threading.Thread(target=echo)
    t.start()
    rtts = []
    for _ in range(n):
        t0 = time.perf_counter()
        there.put(1)
        back.get()
        rtts.append(time.perf_counter() - t0)
    there.put(None)
    t.join()
    return sorted(rtts)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    n = p.parse_args().n
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = mp.get_context("fork").Process(target=_engine, args=(b,), daemon=True)
    proc.start()
    ch = Channel(a)
    order = NewOrder(session="S", cl_ord_id="C", account="A", symbol="AAPL", side=Side.BUY, ord_type=OrdType.LIMIT,
                     qty=100, price=100_000_000)
    one = Submit(commands=[order], origins=[("trader.S", 1)])
    rtts = []
    for _ in range(n):
        t0 = time.perf_counter()
        ch.send(one)
        ch.receive()
        rtts.append(time.perf_counter() - t0)
    batch = Submit(commands=[order] * 64, origins=[("trader.S", 1)] * 64)
    t0 = time.perf_counter()
    for _ in range(n // 10):
        ch.send(batch)
    ch.send(one)
    ch.receive()
    elapsed = time.perf_counter() - t0
    ch.close()
    rtts.sort()
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.db") as j:
        commits = []
        for i in range(200):
            t1 = time.perf_counter()
            j.append([b"x" * 200])
            j.commit()
            commits.append(time.perf_counter() - t1)
    print(f"round trip, 1 command out, 3 records back: p50 {rtts[len(rtts) // 2] * 1e6:.1f} us, "
          f"p99 {rtts[int(len(rtts) * 0.99)] * 1e6:.1f} us ({n} trips)")
    print(f"one way, batches of 64 commands: {(n // 10) * 64 / elapsed:,.0f} commands/s")
    wakes = thread_round_trips(n)
    print(f"round trip between two threads of one process over queues: p50 {wakes[n // 2] * 1e6:.1f} us, "
          f"p99 {wakes[int(n * 0.99)] * 1e6:.1f} us")
    print(f"one fsync'd journal commit of one record: p50 {statistics.median(commits) * 1e6:.0f} us")


if __name__ == "__main__":
    main()
