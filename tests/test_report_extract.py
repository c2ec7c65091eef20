"""The report extract (`oms.reporting.extract`): reports read through it are the same bytes
as reports that scan every record; a chunk that no longer matches its journal, a torn one
or a folder that cannot be written changes nothing but the time; a running OMS keeps it
behind the journal in a process of its own."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from oms import reporting
from oms.journal import Journal, archive
from oms.model import EVENT_ENCODER, BestPrice, MarketData
from oms.reporting import extract, facts
from oms.reporting.extract import Extract, Keeper
from tests.harness import Desk, px, wait_for
from tests.test_reports import CFG, DAY, S, T0, scripted_day, write_journal

SMALL = 7  # records a chunk here: the scripted day's journal becomes several whole chunks and a tail


def _reports(journal: Path, out: Path, use: bool) -> dict[str, bytes]:
    """Every report, CSV and JSON, with the charts: file name -> bytes."""
    files = {}
    for fmt in ("csv", "json"):
        for p in reporting.write(CFG, journal, out / fmt, DAY, fmt=fmt, chart_fmt="svg" if fmt == "csv" else None,
                                 extract=use):
            files[f"{fmt}/{p.name}"] = p.read_bytes()
    return files


@pytest.fixture
def small_chunks(monkeypatch) -> list[int]:
    """Chunks of SMALL records; the first seq of each chunk scanned (not read from the extract)."""
    monkeypatch.setattr(facts, "CHUNK", SMALL)
    scanned: list[int] = []
    real = facts.scan_chunk

    def counting(blob: bytes, n: int, first: int):
        scanned.append(first)
        return real(blob, n, first)

    monkeypatch.setattr(facts, "scan_chunk", counting)
    return scanned


def _tail(journal: Path) -> set[int]:
    """The first record of the journal's tail (the chunk short of SMALL records), if any."""
    last = facts.Reader(journal).last_seq
    return {last // SMALL * SMALL + 1} if last % SMALL else set()


def _day_journal(path: Path) -> Path:
    d = Desk()
    scripted_day(d)
    return write_journal(path, d.events)


def test_reports_read_through_the_extract_are_the_bytes_of_a_full_scan(tmp_path: Path, small_chunks) -> None:
    journal = _day_journal(tmp_path / "journal.db")
    scanned = _reports(journal, tmp_path / "scan", use=False)
    assert not extract.directory(journal).exists()  # without the extract nothing is written either
    last = facts.Reader(journal).last_seq
    whole = last // SMALL
    assert whole >= 3
    small_chunks.clear()
    assert _reports(journal, tmp_path / "first", use=True) == scanned  # scanned, and each whole chunk stored
    assert Extract(journal).end() == whole * SMALL
    small_chunks.clear()
    assert _reports(journal, tmp_path / "second", use=True) == scanned
    assert set(small_chunks) == _tail(journal)  # only the tail was scanned: the rest came from the extract
    # an archiving cuts the records into segments and chunks elsewhere: the chunks stored still serve
    assert archive(journal, last // 2) is not None
    small_chunks.clear()
    assert _reports(journal, tmp_path / "archived", use=True) == scanned
    assert set(small_chunks) == _tail(journal)


def test_a_chunk_that_no_longer_matches_its_journal_or_is_torn_is_scanned_again(tmp_path: Path,
                                                                               small_chunks) -> None:
    journal = _day_journal(tmp_path / "journal.db")
    _reports(journal, tmp_path / "first", use=True)
    stale = sorted(extract.directory(journal).iterdir())
    # the same path, another journal: the same day a second later (every record differs)
    d = Desk()
    d.now = T0 - S
    d.run(MarketData(symbol="AAPL", venue="V2", bid=px("99.90"), ask=px("100.10")))  # every record a seq later
    scripted_day(d)
    for p in journal.parent.glob("journal.db*"):
        if p.is_file():
            p.unlink()
    write_journal(journal, d.events)
    scanned = _reports(journal, tmp_path / "scan", use=False)
    small_chunks.clear()
    assert _reports(journal, tmp_path / "other", use=True) == scanned
    last = facts.Reader(journal).last_seq
    assert len(set(small_chunks)) == -(-last // SMALL)  # nothing of the other journal's extract was used
    assert not any(p.exists() for p in stale)  # and each of its chunks was replaced
    # a torn chunk file, and one with a block zeroed inside (what a crash can leave of a file not
    # synced): each scanned again and written whole
    torn, zeroed = sorted(extract.directory(journal).iterdir())[1:3]
    whole = zeroed.read_bytes()
    torn.write_bytes(torn.read_bytes()[:100])
    zeroed.write_bytes(whole[:len(whole) // 2] + bytes(64) + whole[len(whole) // 2 + 64:])
    small_chunks.clear()
    assert _reports(journal, tmp_path / "torn", use=True) == scanned
    assert set(small_chunks) == {SMALL + 1, 2 * SMALL + 1} | _tail(journal)
    assert len(torn.read_bytes()) > 100 and zeroed.read_bytes() == whole


def test_extending_replaces_a_damaged_chunk(tmp_path: Path, small_chunks) -> None:
    journal = _day_journal(tmp_path / "journal.db")
    assert extract.extend(journal) == facts.Reader(journal).last_seq // SMALL * SMALL
    victim = sorted(extract.directory(journal).iterdir())[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[:len(whole) // 2] + bytes(8) + whole[len(whole) // 2 + 8:])
    small_chunks.clear()
    extract.extend(journal)
    assert small_chunks == [1] and victim.read_bytes() == whole


def test_a_folder_that_cannot_be_written_leaves_the_reports_as_they_are(tmp_path: Path, small_chunks,
                                                                      caplog) -> None:
    journal = _day_journal(tmp_path / "journal.db")
    extract.directory(journal).write_text("not a folder")
    assert _reports(journal, tmp_path / "with", use=True) == _reports(journal, tmp_path / "without", use=False)
    assert "report extract not written" in caplog.text


def _prices(path: Path, n: int, start: int = 0) -> None:
    t0 = int(dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    with Journal(path, fsync=False) as j:
        j.append([EVENT_ENCODER.encode(BestPrice(ts=t0 + k * 10**6, symbol="AAPL", bid=1_000_000 + k % 97,
                                                 ask=1_010_000)) for k in range(start, start + n)])
        j.commit()


def test_a_running_oms_keeps_the_extract_behind_its_journal(tmp_path: Path) -> None:
    """The keeper starts the extending process when enough is journaled; it picks up the
    chunks journaled while it lingers; the keeper's stop ends it."""
    journal = tmp_path / "journal.db"
    _prices(journal, 45_000)
    seen = [45_000]
    keeper = Keeper(journal, lambda: seen[0], behind=extract.CHUNK, check_s=0.05)
    keeper.start()
    try:
        wait_for(lambda: Extract(journal).end() == 2 * extract.CHUNK, 60, "the first two chunks not extracted")
        first = keeper.proc
        _prices(journal, 20_000, start=45_000)
        seen[0] = 65_000
        wait_for(lambda: Extract(journal).end() == 3 * extract.CHUNK, 60, "the third chunk not extracted")
        assert keeper.proc is first and first.poll() is None  # the same process, lingering
    finally:
        keeper.stop()
    assert first.poll() is not None


def test_a_keeper_that_cannot_write_the_extract_waits_before_trying_again(tmp_path: Path, caplog) -> None:
    journal = tmp_path / "journal.db"
    _prices(journal, extract.CHUNK + 5)
    extract.directory(journal).write_text("not a folder")
    keeper = Keeper(journal, lambda: extract.CHUNK + 5, behind=extract.CHUNK, check_s=0.05)
    keeper.RETRY_S = 3.0  # a run here fails within about a second: without the wait the next would follow as fast
    keeper.start()
    try:
        wait_for(lambda: caplog.text.count("tried again in 3 s") == 2, 60, "no second failed run")
        first, second = (r for r in caplog.records if "tried again" in r.getMessage())
        assert second.created - first.created >= keeper.RETRY_S
    finally:
        keeper.stop()


def test_extend_from_the_command_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    _prices(journal, extract.CHUNK + 5)
    done = subprocess.run([sys.executable, "-m", "oms.cli", "extract", str(journal)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"holds records 1 to {extract.CHUNK}" in done.stderr
    empty = tmp_path / "empty.db"
    Journal(empty).close()
    done = subprocess.run([sys.executable, "-m", "oms.cli", "extract", str(empty)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "empty" in done.stderr
