"""The journal archived behind snapshots: records before the oldest kept snapshot move to
`<journal>.archive/` segments, and every reader of history (replay, start-up, the undo,
`oms replay --verify-snapshot`, JournalReader for the stream publisher and the trader
gateway's sent mark) reads them as if they had never left, each record once, a crash
between an archive's write and the delete included."""
from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import nats
import pytest

from gateways.fix_recovery import journaled_after
from oms.cli import main as cli
from oms.journal import Journal, JournalError, JournalReader, archive, archive_dir, segments
from oms.model import EVENT_DECODER, Anomaly, DayEnded, EndOfDay, NewOrder, OrderRejected, OrdType, Side, StartOfDay, TimeInForce
from oms.runtime import Runtime, open_engine, rebuild
from oms.snapshot import Snapshots, directory
from tests.fix_client import free_port
from tests.harness import px
from tests.test_nats import child_of, fill, order, start, wait_published
from tests.test_snapshot import CONFIG, Flow, config

STEPS = [k % 41 for k in range(0, 41 * 7, 3)]  # orders, fills, cancels and market data, no day events


def journaled(tmp: Path, archiving: bool, snapshots: int = 5) -> tuple[object, Path, str]:
    """A journal of the same flow with a snapshot after each stretch of it: (config, path, state hash)."""
    tmp.mkdir()
    cfg = config(tmp, CONFIG if archiving else CONFIG.replace("fsync = false", "fsync = false\narchive = false"))
    path = cfg.journal_path(tmp)
    path.parent.mkdir(parents=True)
    with Journal(path, fsync=False) as journal:
        flow = Flow(cfg, journal)
        snaps = Snapshots(journal, cfg)
        for n in range(snapshots):
            for kind in STEPS:
                flow.step(kind)
            snaps.take(flow.engine)
            snaps.wait()
        flow.step(5)  # and a record after the last
        return cfg, path, flow.engine.state.state_hash()


def live_seqs(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT seq FROM records ORDER BY seq")]
    finally:
        db.close()


def read_all(reader: JournalReader, limit: int, seq: int = 0) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while rows := reader.after(seq, limit):
        out += rows
        seq = rows[-1][0]
    return out


def test_records_before_the_oldest_kept_snapshot_move_to_archives_and_replay_is_unchanged(tmp_path: Path):
    cfg, path, live = journaled(tmp_path / "a", archiving=True)
    _, plain, plain_live = journaled(tmp_path / "p", archiving=False)
    assert live == plain_live
    kept = sorted(int(p.stem) for p in directory(path).glob("*.snapshot"))
    assert len(kept) == 3
    assert not archive_dir(plain).exists() and segments(plain) == [plain]

    archives = segments(path)[:-1]
    assert archives, "nothing archived"
    spans = [tuple(int(x) for x in a.stem.split("-")) for a in archives]
    assert spans[0][0] == 1 and all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))  # no gap, no overlap
    assert spans[-1][1] == kept[0] - 1  # everything before the oldest kept snapshot, nothing after
    assert live_seqs(path)[0] == kept[0]  # ... and none of it left in the live journal
    everything = live_seqs(plain)
    assert sum(len(live_seqs(a)) for a in archives) + len(live_seqs(path)) == len(everything)

    with Journal(path) as journal, Journal(plain) as whole:
        assert journal.recovery is None  # start-up's check: the live journal starts after the archive
        assert journal.last_seq == whole.last_seq
        assert list(journal.replay()) == list(whole.replay())  # every record, once, in order
        assert list(journal.replay(kept[0] - 2)) == list(whole.replay(kept[0] - 2))  # across the boundary
        assert journal.record_crc(1) == whole.record_crc(1) and journal.record_crc(kept[0] - 1) is not None
        assert rebuild(cfg, journal).state.state_hash() == live  # a full replay over archives and live
        resumed = rebuild(cfg, journal, snapshots=True)
        assert resumed.base_seq == kept[-1] and resumed.state.state_hash() == live
        at_oldest = rebuild(cfg, journal, snapshots=True, until=kept[0])  # the fall-back is still there
        assert at_oldest.base_seq == kept[0]
        assert at_oldest.state.state_hash() == rebuild(cfg, whole, until=kept[0]).state.state_hash()


def test_journal_reader_crosses_the_archive_boundary(tmp_path: Path):
    _, path, _ = journaled(tmp_path / "a", archiving=False)
    with Journal(path) as j:
        everything = list(j.replay())
    reader = JournalReader(path)  # opened before anything is archived, read half-way
    try:
        half = read_all(reader, 7)[: len(everything) // 2]
        boundary = len(everything) * 3 // 4
        assert archive(path, boundary) is not None  # behind the reader's back
        assert live_seqs(path)[0] == boundary
        assert read_all(reader, 7, half[-1][0]) == everything[len(half):]  # a gap in the live journal: the archive
        assert read_all(reader, 5) == everything  # each once, in chunks that end at the boundary
        assert reader.after(boundary - 3, 10) == everything[boundary - 3: boundary - 1]
        assert reader.last_seq() == len(everything)
    finally:
        reader.close()
    assert [(seq, EVENT_DECODER.decode(p)) for seq, p in everything[4:]] == list(journaled_after(path, 4))


def test_a_crash_between_the_archive_write_and_the_delete_reads_each_record_once(tmp_path: Path):
    _, path, _ = journaled(tmp_path / "a", archiving=False)
    with Journal(path) as j:
        everything = list(j.replay())
    before = shutil.copy(path, tmp_path / "before.db")  # closed, so checkpointed: the whole journal
    done = archive(path, 100)
    assert done is not None and done.segment is not None and done.records == 99
    shutil.copy(before, path)  # the live journal as it was before the delete: the rows in both
    assert live_seqs(path)[0] == 1 and segments(path)[0].name == f"{1:015d}-{99:015d}.journal"

    reader = JournalReader(path)
    try:
        assert read_all(reader, 13) == everything
    finally:
        reader.close()
    with Journal(path) as j:
        assert j.recovery is None and j.last_seq == len(everything)
        assert list(j.replay()) == everything and list(j.replay(50)) == everything[49:]
    finished = archive(path, 100)  # the next archiving finishes the delete, writes no segment again
    assert finished is not None and finished.segment is None and finished.records == 99
    assert len(segments(path)) == 2 and live_seqs(path)[0] == 100
    with Journal(path) as j:
        assert list(j.replay()) == everything


def test_an_archive_moved_away_is_an_error_naming_the_record_never_a_silent_skip(tmp_path: Path):
    _, path, _ = journaled(tmp_path / "a", archiving=False)
    assert archive(path, 100) is not None
    shutil.move(archive_dir(path), tmp_path / "elsewhere")  # the journal copied without its archive
    with Journal(path) as j:
        with pytest.raises(JournalError, match="record 1 is neither in the journal"):
            list(j.replay())
        assert len(list(j.replay(100))) == j.last_seq - 99  # what the live journal holds reads as before
    reader = JournalReader(path)
    try:
        with pytest.raises(JournalError, match="record 50 is neither"):
            reader.after(49)
        assert reader.after(reader.last_seq()) == []  # caught up: nothing to look for
    finally:
        reader.close()


def test_a_report_reads_every_record_once_though_an_archiving_moves_them_meanwhile(tmp_path: Path):
    from oms.reporting.facts import Reader

    _, path, _ = journaled(tmp_path / "a", archiving=False)
    with Journal(path) as j:
        stamps = [EVENT_DECODER.decode(p).ts for _, p in j.replay()]
    reader = Reader(path)  # opened before the archiving, as a report of the day's end would be
    try:
        assert archive(path, len(stamps) // 2) is not None
        assert reader.span() == (stamps[0], stamps[-1])
        read = reader.read(until_ts=stamps[-1] + 1)
        assert read.ts.tolist() == stamps
    finally:
        reader.close()


def test_a_torn_live_tail_is_cut_after_an_archive(tmp_path: Path):
    _, path, _ = journaled(tmp_path / "a", archiving=True)
    with Journal(path) as j:
        last, first_live = j.last_seq, live_seqs(path)[0]
    assert first_live > 1
    db = sqlite3.connect(path)
    db.execute("UPDATE records SET crc = crc + 1 WHERE seq = ?", (last - 2,))
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.recovery is not None and j.recovery.first_bad_seq == last - 2 and j.recovery.discarded == 3
        assert j.last_seq == last - 3 and [s for s, _ in j.replay()] == list(range(1, last - 2))
        j.append([b"next"])
        assert j.last_seq == last - 2


def test_start_up_the_undo_and_verify_snapshot_after_archiving_at_each_end_of_day(tmp_path: Path, capsys):
    cfg = config(tmp_path)
    ended = threading.Event()
    deleted_by: list[str] = []  # the threads an archive's deletes ran on

    def started() -> Runtime:
        engine, journal = open_engine(cfg, tmp_path)
        drop = journal.drop_through
        journal.drop_through = lambda upto: (deleted_by.append(threading.current_thread().name), drop(upto))
        runtime = Runtime(engine, journal, cfg)  # its listener requests the snapshot, then this one is told
        runtime.listeners.append(lambda evs: any(type(e) is DayEnded for e in evs) and ended.set())
        runtime.start()
        return runtime

    def days(runtime: Runtime, n: int, start: int, tag: str) -> None:
        for d in range(n):
            runtime.submit(StartOfDay(user="ops", date=f"2026-03-{start + d:02d}"))
            for i in range(10):
                runtime.submit(NewOrder(session="C1", cl_ord_id=f"{tag}{d}-{i}", account="A", symbol="AAPL",
                                        side=Side.BUY, ord_type=OrdType.LIMIT, qty=100, price=px("100"),
                                        tif=TimeInForce.GTC))
            ended.clear()
            runtime.submit(EndOfDay(user="ops"))
            assert ended.wait(10)
            runtime.query(lambda e: None)  # after the snapshot, queued before it
            runtime.snapshots.wait()  # and its archiving

    runtime = started()
    days(runtime, 2, 2, "D")
    runtime.stop()
    runtime = started()
    engine, journal = runtime.engine, runtime.journal
    started_from = engine.base_seq
    assert started_from > 0
    days(runtime, 3, 10, "E")  # the snapshot this engine started from is archived past
    kept = sorted(int(p.stem) for p in directory(journal.path).glob("*.snapshot"))
    assert live_seqs(journal.path)[0] == kept[0] > started_from + 1
    assert deleted_by and set(deleted_by) == {"oms-journal"}  # one writer: the journal's own thread
    original = engine._route
    engine._route = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("injected"))
    replies: list = []
    got = threading.Event()
    runtime.submit(NewOrder(session="C1", cl_ord_id="boom", account="A", symbol="AAPL", side=Side.BUY,
                            ord_type=OrdType.LIMIT, qty=100, price=px("100")), lambda evs: (replies.extend(evs), got.set()))
    assert got.wait(10)
    assert [type(e) for e in replies] == [Anomaly, OrderRejected]  # undone: rebuilt from archive and live journal
    engine._route = original
    live = runtime.query(lambda e: e.state.state_hash())
    assert len(runtime.query(lambda e: e.state.orders)) == 50  # the rejected one undone
    runtime.stop()

    engine, journal = open_engine(cfg, tmp_path)
    with journal:
        assert engine.base_seq == kept[-1] and engine.state.state_hash() == live
        assert rebuild(cfg, journal).state.state_hash() == live
    assert cli(["replay", str(cfg.journal_path(tmp_path)), "--config", str(tmp_path / "oms.toml"),
                "--verify-snapshot"]) == 0
    out = capsys.readouterr().out
    assert f"state hash   {live}" in out and "DIFFERS" not in out and "orders       50" in out


def test_the_publisher_rebuilds_positions_across_an_archive(tmp_path: Path):
    port = free_port()
    s = start(tmp_path, port)

    def snapshot() -> None:
        s.runtime.query(s.runtime.snapshots.take)
        s.runtime.snapshots.wait()

    async def trade(tag: str) -> None:
        order(s, tag)
        fill(s, await child_of(s, tag), f"{tag}f", 100, 100_000_000)

    try:
        for n in range(5):
            asyncio.run(trade(f"P{n}"))
            assert s.runtime.barrier()
            snapshot()
        wait_published(s)
        assert segments(s.journal.path)[:-1]  # the first trades are in the archive
    finally:
        s.stop()

    s = start(tmp_path, port)  # the publisher rebuilds its positions from the journal, archive included

    async def position() -> dict:
        await trade("P5")
        assert s.runtime.barrier()
        wait_published(s)
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        try:
            reply = await nc.request("oms.positions.snapshot", b'{"account": "ACC1"}', timeout=5)
        finally:
            await nc.close()
        return msgspec.msgpack.decode(reply.data)

    try:
        (pos,) = asyncio.run(position())
        assert (pos["account"], pos["symbol"], pos["qty"]) == ("ACC1", "AAPL", 600)
    finally:
        s.stop()


def test_chores_run_on_the_journal_thread_and_once_it_has_ended_on_the_caller_s_at_once(tmp_path: Path):
    """An archive's deletes: between two commits while the OMS runs; after a stop (an
    archiving still under way), on the archiving's own thread without waiting on the ended one."""
    cfg = config(tmp_path)
    engine, journal = open_engine(cfg, tmp_path)
    runtime = Runtime(engine, journal, cfg)
    ran: list[str] = []
    runtime.start()
    runtime.on_journal_thread(lambda: ran.append(threading.current_thread().name))
    runtime.stop()
    t0 = time.monotonic()
    runtime.on_journal_thread(lambda: ran.append(threading.current_thread().name))
    assert ran == ["oms-journal", threading.current_thread().name]
    assert time.monotonic() - t0 < 0.25  # not a half-second poll of the ended thread per delete


def test_two_archivings_of_the_same_records_at_once_each_write_a_whole_segment(tmp_path: Path, monkeypatch):
    """Each snapshot starts its own archiving; on a slow disk two can overlap with the same
    records. One of them held between its write and its rename while the other runs whole:
    neither may rename the other's file, and every record reads once."""
    import oms.journal as journal_module

    _, path, _ = journaled(tmp_path / "a", archiving=False)
    with Journal(path) as j:
        everything = list(j.replay())
    replace, written, go = journal_module.durable_replace, threading.Event(), threading.Event()

    def held(tmp: Path, final: Path) -> None:
        if threading.current_thread().name == "first":
            written.set()
            go.wait(10)
        replace(tmp, final)

    monkeypatch.setattr(journal_module, "durable_replace", held)
    outcome: list[object] = []

    def first() -> None:
        try:
            outcome.append(archive(path, 100))
        except Exception as exc:  # what the test is about
            outcome.append(exc)

    t = threading.Thread(target=first, name="first")
    t.start()
    assert written.wait(10)
    second = archive(path, 100)  # the same records, while the first waits to rename its file
    go.set()
    t.join(10)
    assert second is not None and not isinstance(outcome[0], Exception), outcome
    assert [p.suffix for p in archive_dir(path).iterdir()] == [".journal"]  # no temporary file left
    with Journal(path) as j:
        assert list(j.replay()) == everything
