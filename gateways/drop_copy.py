"""Drop copy for the back office: a copy of every trader-facing ExecutionReport.

Drop-copy sessions are sessions of the trader acceptor (`[[fix.sessions]]` with
`drop_copy = true`): the same port and front door, their own CompIDs, and the accounts
whose reports they receive, whichever trader session or API user the order came from.
They send no orders. Each copy is the report the trader gets, with CopyMsgIndicator
(797) = Y, in the session's FIX version, and it is handed to quickfix together with the
trader's reports, in journal order, under the trader gateway's sent mark
(gateways.fix_recovery), so:

* a drop-copy client that is away: quickfix keeps what is sent to its session in the
  store, with sequence numbers kept across logons; at the next logon the client asks for
  the gap and gets it by resend (PossDupFlag=Y, FIX's own rules);
* after a restart of the OMS: the journal's reports after the sent mark go out first, to
  traders and drop copies alike; a copy among them may have gone out before the restart
  under another sequence number, so it carries PossResend (97) = Y.
"""
from __future__ import annotations

import quickfix as fix

from oms.config import SessionConfig

COPY_MSG_INDICATOR = 797
POSS_RESEND = 97


class DropCopies:
    """Which drop-copy sessions receive the reports of each account."""

    def __init__(self, sessions: list[SessionConfig]) -> None:
        self.comps = frozenset(s.comp_id for s in sessions if s.drop_copy)
        self.by_account: dict[str, list[str]] = {}
        for s in sessions:
            if s.drop_copy:
                for account in s.accounts:
                    self.by_account.setdefault(account, []).append(s.comp_id)

    def targets(self, account: str) -> list[str]:
        return self.by_account.get(account, [])


def copy_of(report: fix.Message, possible_resend: bool = False) -> fix.Message:
    """The report as a drop copy (797=Y); PossResend=Y when it may have been sent before."""
    report.setField(COPY_MSG_INDICATOR, "Y")
    if possible_resend:
        report.getHeader().setField(POSS_RESEND, "Y")
    return report
