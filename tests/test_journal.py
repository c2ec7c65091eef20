"""The journal keeps what was committed, drops what was not, and says so when it repairs."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from oms.journal import Journal, JournalError

ROOT = Path(__file__).resolve().parent.parent


def records(n: int, start: int = 0) -> list[bytes]:
    return [f"event-{i}".encode() * 5 for i in range(start, start + n)]


def test_roundtrip_and_reopen(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        assert j.append(records(3)) == 3
        j.commit()
        assert j.append(records(2, 3)) == 5
        j.commit()
        assert [s for s, _ in j.replay()] == [1, 2, 3, 4, 5]
    with Journal(tmp_path / "j.db") as j:
        assert j.recovery is None
        assert j.last_seq == 5
        assert [p for _, p in j.replay()] == records(5)
        assert [s for s, _ in j.replay(4)] == [4, 5]


def test_uncommitted_records_are_not_kept(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.append(records(2))
        j.commit()
        j.append(records(3, 2))  # never committed: never acknowledged
    with Journal(tmp_path / "j.db") as j:
        assert j.last_seq == 2
        assert [p for _, p in j.replay()] == records(2)


def test_meta_survives(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", fsync=False) as j:
        j.set_meta("starts", "3")
        j.commit()
    with Journal(tmp_path / "j.db", fsync=False) as j:
        assert j.get_meta("starts") == "3" and j.get_meta("nope") is None


def _copy_live(src: Path, dst: Path) -> None:
    """Copy a journal and its WAL while its connection is open: what a crash leaves behind."""
    for suffix in ("", "-wal"):
        shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")


def test_torn_wal_tail_is_recovered_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = Journal(tmp_path / "live.db")
    live._db.execute("PRAGMA wal_autocheckpoint=0")  # keep every frame in the WAL
    for i in range(4):
        live.append(records(10, 10 * i))
        live.commit()
    _copy_live(tmp_path / "live.db", tmp_path / "crash.db")
    live.close()
    wal = Path(f"{tmp_path / 'crash.db'}-wal")
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 100)  # the last frame is torn
    with caplog.at_level(logging.WARNING, logger="oms.journal"):
        j = Journal(tmp_path / "crash.db")
    with j:
        assert j.recovery is not None and j.recovery.torn_wal_bytes > 0
        assert j.last_seq == 30  # the last transaction is gone, the three before it are whole
        assert [p for _, p in j.replay()] == records(30)
    assert "torn WAL tail" in caplog.text and "recovered 30 records" in caplog.text


def test_corrupt_record_cuts_the_journal_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.append(records(100))
        j.commit()
    raw = sqlite3.connect(tmp_path / "j.db")
    raw.execute("UPDATE records SET payload = ? WHERE seq = 60", (b"garbage",))
    raw.commit()
    raw.close()
    with caplog.at_level(logging.WARNING, logger="oms.journal"):
        j = Journal(tmp_path / "j.db")
    with j:
        assert j.recovery is not None
        assert (j.recovery.kept, j.recovery.discarded, j.recovery.first_bad_seq) == (59, 41, 60)
        assert j.last_seq == 59 and [p for _, p in j.replay()] == records(59)
        assert j.append(records(1, 59)) == 60  # and it goes on from there
        j.commit()
    assert "record 60 failed its check" in caplog.text


def test_a_gap_in_the_sequence_is_a_corruption(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.append(records(10))
        j.commit()
    raw = sqlite3.connect(tmp_path / "j.db")
    raw.execute("DELETE FROM records WHERE seq = 4")
    raw.commit()
    raw.close()
    with Journal(tmp_path / "j.db") as j:
        assert j.last_seq == 3 and j.recovery is not None and j.recovery.first_bad_seq == 4


@pytest.mark.parametrize("content", [b"just some text\n" * 100, b""])
def test_not_a_journal_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "notes.db"
    if content:
        p.write_bytes(content)
        with pytest.raises(JournalError, match="notes.db"):
            Journal(p)
        assert p.read_bytes() == content
    else:  # a database of someone else's
        other = sqlite3.connect(p)
        other.execute("CREATE TABLE customers (id INTEGER)")
        other.commit()
        other.close()
        with pytest.raises(JournalError, match="not an OMS journal"):
            Journal(p)


WRITER = """
import sys
from oms.journal import Journal
j = Journal(sys.argv[1])
n = 0
while True:
    n = j.append([b"x" * 200 for _ in range(50)])
    j.commit()
    print(n, flush=True)
"""


def test_sigkill_keeps_every_committed_record(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "j.db")], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    acknowledged = 0
    for _ in range(300):
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    with Journal(tmp_path / "j.db") as j:
        assert j.last_seq >= acknowledged
        seqs = [s for s, _ in j.replay()]
        assert seqs == list(range(1, j.last_seq + 1))
