"""Compliance administration: runtime limits, kill switches, overrides, re-enables,
the post-trade sweep on demand, and the throttles and checks of cancels and replaces."""
from __future__ import annotations

from oms.model import (
    ComplianceAlert,
    EndOfDay,
    EvaluatePostTrade,
    ReenableExecutions,
    RiskChanged,
    SetKillSwitch,
    SetLimit,
    SetOverride,
    StartOfDay,
    StockSplit,
    TradingHalt,
)
from oms.reasons import Reason
from oms.states import allowed
from oms.engine.core import Core, T


class RiskAdministration(Core):
    def _risk_refusal(self, session: str, kind: str, order_id: str, qty: int, price: int | None
                      ) -> tuple[Reason, str] | None:
        """A cancel or replace over its throttle, or a replace that breaches a limit."""
        text = self.compliance.rate_refused(session, kind, self._now)
        if text is not None:
            return Reason.RISK_THROTTLE, text
        if kind == "modify":
            verdict = self.compliance.check_replace(order_id, qty, price, self._now)
            if verdict.control is not None:
                return Reason[f"RISK_{verdict.control.name}"], verdict.text
        return None

    def _authorised(self, c: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions | StartOfDay | EndOfDay
                    | TradingHalt | StockSplit) -> bool:
        """Operator commands come from the users in risk.admins only; a refusal is an alert."""
        if c.user in self.risk_cfg.admins:
            return True
        self._emit(ComplianceAlert(ts=self._now, control="authorisation", level="hard",
                                   text=f"{type(c).__name__} refused: user {c.user!r} is not authorised"))
        return False

    def _risk_change(self, c: SetLimit | SetKillSwitch | SetOverride | ReenableExecutions) -> None:
        """Authorised users change limits, kill switches, overrides; each change is journaled."""
        if not self._authorised(c):
            return
        why = self.compliance.validate_change(c)
        if why is not None:
            self._emit(ComplianceAlert(ts=self._now, control="authorisation", level="hard",
                                       text=f"{type(c).__name__} refused: {why}"))
            return
        self._emit(RiskChanged(ts=self._now, user=c.user, change=c, reason=c.reason))
        if isinstance(c, SetKillSwitch) and c.on and not c.reduce_only:
            for o in list(self.state.orders.values()):
                venues = {o.venue} | {ch.venue for ch in self._working_children(o)}
                if allowed(o.status, T.CANCEL_REQUEST) and any(
                        self.compliance.in_scope(c, o.account, o.session, o.symbol, v) for v in venues):
                    self._force_cancel(o, f"kill switch [{c.scope} {c.key}] by {c.user}")

    def _evaluate_post_trade(self, c: EvaluatePostTrade) -> None:
        self._post_trade()
