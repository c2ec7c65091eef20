"""Binding FIX sessions to the journal across restarts (ARCHITECTURE, "Recovery contract").

Incoming: quickfix counts a message as received once `fromApp` returns, before the
command it became is durable. The journal keeps, per source, the MsgSeqNum of the last
message whose command it holds (`Runtime.submit(origin=...)`); at start-up each session is
rewound to the message after it, so the counterparty resends the rest (PossDupFlag) and
the engine applies each once (ClOrdID for orders, ExecID for fills).

Outgoing: a gateway hands reports to quickfix only after their events are durable, and
records up to which journal record it has done so (`SentMark`). At start-up the reports
of the records after the mark go out first, in journal order.
"""
from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import quickfix as fix

from oms.journal import JournalReader
from oms.model import EVENT_DECODER, Event

log = logging.getLogger("gateways.fix_recovery")


class SentMark:
    """The journal sequence up to which a gateway has handed reports to its sessions: eight
    bytes rewritten in place after each batch. Written, not fsync'd: it survives a killed
    process (the page cache keeps it); after a machine crash an older mark only means some
    reports go out again, as possible duplicates."""

    def __init__(self, path: Path, initial: int) -> None:
        """`initial`: the mark of a gateway that never recorded one (a new run directory, or
        one from before marks were kept): everything up to it counts as sent."""
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if new or os.fstat(self._fd).st_size != 8:
            self.write(initial)
        self.value = struct.unpack("<q", os.pread(self._fd, 8, 0))[0]

    def write(self, seq: int) -> None:
        os.pwrite(self._fd, struct.pack("<q", seq), 0)
        self.value = seq

    def close(self) -> None:
        os.close(self._fd)


def rewind(sid: fix.SessionID, last_durable: int | None) -> int | None:
    """Expect the message after `last_durable` from the counterparty; never move forward (a
    session reset since the mark restarted the numbering lower). The new expected number,
    or None when the store was already there."""
    if last_durable is None:
        return None
    session = fix.Session.lookupSession(sid)
    expected = session.getExpectedTargetNum()
    if last_durable + 1 >= expected:
        return None
    session.setNextTargetMsgSeqNum(last_durable + 1)
    log.info("session %s: expecting %d again (was %d): the messages after it were not durable",
             sid.toString(), last_durable + 1, expected)
    return last_durable + 1


def journaled_after(journal_path: Path, seq: int) -> Iterator[tuple[int, Event]]:
    """(seq, event) of every journal record after `seq`, read on a connection of its own."""
    reader = JournalReader(journal_path)
    try:
        while True:
            rows = reader.after(seq)
            if not rows:
                return
            for seq, payload in rows:
                yield seq, EVENT_DECODER.decode(payload)
    finally:
        reader.close()
