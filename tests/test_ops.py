"""The operator pieces in the Prometheus ecosystem's own forms: the alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`), and every metric the
rules and the Grafana dashboard name is one the OMS exports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oms.metrics import Metrics

OPS = Path(__file__).resolve().parent.parent / "ops"
RULES = OPS / "prometheus" / "oms-alerts.yml"
DASHBOARD = OPS / "grafana" / "oms-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool: Debian's prometheus package ships it "
                                                              "(.ci/run installs it)")


def exported() -> set[str]:
    """Every sample name the OMS's registry can produce."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + s for f in Metrics().registry.collect() for s in suffixes.get(f.type, ("",))}


@needs_promtool
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    for args in (["check", "rules", RULES.name], ["test", "rules", "oms-alerts.test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_rules_and_dashboard_name_only_exported_metrics():
    names = exported()
    rules = set(re.findall(r"\boms_[a-z_]+", RULES.read_text()))
    panels = json.loads(DASHBOARD.read_text())["panels"]
    charted = {m for p in panels for t in p["targets"] for m in re.findall(r"\boms_[a-z_]+", t["expr"])}
    assert rules and charted
    assert rules - names == set() and charted - names == set()
    alerts = set(re.findall(r"alert: (\w+)", RULES.read_text()))
    assert {"OmsStreamLag", "OmsStreamBacklogFull", "OmsStreamPublisherRestarting", "OmsVenueDown",
            "OmsKillSwitchOn", "OmsRejectRateSpike", "OmsEngineLatencyHigh", "OmsJournalCommitSlow"} <= alerts
