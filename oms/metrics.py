"""Prometheus metrics: every stage counts and times itself.

A `Metrics` owns its registry, so several OMS instances (tests, benchmarks) coexist
in one process; `oms run` serves the registry at /metrics.
"""
from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from oms.model import AllocationRejected, Anomaly, CancelRejected, ComplianceAlert, Event, OrderRejected

_LATENCY_BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1)


class _PerCommand:
    """oms_commands_total, oms_events_total and oms_engine_latency_seconds as plain numbers
    that only the engine's thread adds to, turned into samples when /metrics is read. A
    prometheus_client child takes a lock per increment: with a label look-up per event that
    was 10 µs of the engine's thread per command under load, a quarter of the command itself."""

    def __init__(self) -> None:
        self.commands: dict[type, int] = {}
        self.events: dict[type, int] = {}
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last: above every bound (+Inf)
        self.seconds = 0.0

    def collect(self) -> Iterator[Metric]:
        buckets, seconds = list(self.buckets), self.seconds  # copies: the engine's thread goes on adding
        for name, doc, counts in (("oms_commands", "Commands handled by the engine", self.commands),
                                  ("oms_events", "Events emitted by the engine", self.events)):
            family = CounterMetricFamily(name, doc, labels=["type"])
            for t, n in dict(counts).items():
                family.add_metric([t.__name__], n)
            yield family
        cumulative, total = [], 0
        for bound, n in zip((*_LATENCY_BUCKETS, float("inf")), buckets):
            total += n
            cumulative.append((floatToGoString(bound), total))
        yield HistogramMetricFamily("oms_engine_latency_seconds", "Engine time per command", buckets=cumulative,
                                    sum_value=seconds)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._per_command = _PerCommand()
        r.register(self._per_command)
        self.rejects = Counter("oms_rejects", "Orders, cancels and replaces refused, by reason", ["reason"], registry=r)
        self.alerts = Counter("oms_compliance_alerts", "Compliance alerts by control and level (soft, hard)",
                              ["control", "level"], registry=r)
        self.anomalies = Counter("oms_anomalies", "Venue reports refused by the state machine", ["kind"], registry=r)
        self.commit_latency = Histogram(
            "oms_journal_commit_seconds", "Journal append + fsync'd commit per group", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "oms_group_commit_commands", "Commands per group commit", buckets=(1, 2, 4, 8, 16, 64, 256, 1024, 4096),
            registry=r,
        )
        self.journal_records = Gauge("oms_journal_last_seq", "Sequence of the last durable journal record", registry=r)
        self.orders = Gauge("oms_orders", "Orders known to the engine", registry=r)
        self.recovered = Gauge("oms_recovered", "What start-up took over from the journal: orders, open_children, "
                               "children_in_doubt, unsent_reports", ["what"], registry=r)
        self.stream_published = Gauge("oms_stream_published_seq", "Last journal sequence published to NATS; "
                                      "oms_journal_last_seq minus this is the stream's lag", registry=r)
        self.stream_backlog = Gauge("oms_stream_backlog_events", "Events read from the journal, not yet "
                                    "published to NATS (at most nats.max_backlog)", registry=r)
        self.stream_backlog_full = Gauge("oms_stream_backlog_full", "1 while the NATS backlog is full (NATS away "
                                         "or slow; the journal holds the rest): alert on it", registry=r)
        self.stream_journal_events = Gauge("oms_stream_journal_read_events", "Events the NATS publisher read back "
                                           "from the journal (start-up, a gap, a full backlog) instead of getting "
                                           "them from the engine", registry=r)
        self.stream_restarts = Counter("oms_stream_publisher_restarts", "Times the NATS publisher process died and "
                                       "was restarted", registry=r)
        self.api_requests = Counter("oms_api_requests", "Allocation API requests by method and HTTP status",
                                    ["method", "status"], registry=r)
        self.failed_logons = Counter("oms_failed_logons", "Trader logons refused", ["session"], registry=r)
        self.kill_switches = Gauge("oms_kill_switches_on", "Kill switches on, any scope (read each second by the "
                                   "HTTP API's console feed)", registry=r)
        self.venue_up = Gauge("oms_venue_up", "1 while the OMS's FIX session with the venue is logged on (read "
                              "each second by the console feed)", ["venue"], registry=r)
        self.fix_refused = Counter("oms_fix_connections_refused", "Trader FIX connections the front door closed "
                                   "before or instead of quickfix, by reason", ["reason"], registry=r)
        self.fix_logon_timeouts = Counter("oms_fix_logon_timeouts", "Trader FIX connections closed for sending "
                                          "no Logon within fix.logon_timeout_s", registry=r)
        self.fix_pending = Gauge("oms_fix_connections_pending", "Trader FIX connections without an admitted "
                                 "Logon yet", registry=r)
        self._children: dict[tuple, Counter] = {}  # (metric, labels) -> its child, looked up once
        self.gateway_restarts = Counter("oms_fix_gateway_restarts", "Times the FIX gateway process died and was "
                                        "restarted", registry=r)
        # what the FIX gateway process counts, sent to the engine process that serves /metrics:
        # sample name -> the metric here it lands in
        self._gateway = {"oms_failed_logons_total": self.failed_logons,
                         "oms_fix_connections_refused_total": self.fix_refused,
                         "oms_fix_logon_timeouts_total": self.fix_logon_timeouts,
                         "oms_fix_connections_pending": self.fix_pending}
        self._absorbed: dict[str, float] = {}

    def count(self, cmd: object, events: list[Event], seconds: float) -> None:
        """Record one handled command, on the engine's thread (the only one that calls this)."""
        pc = self._per_command
        t = type(cmd)
        pc.commands[t] = pc.commands.get(t, 0) + 1
        pc.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        pc.seconds += seconds
        counts = pc.events
        for ev in events:
            et = type(ev)
            counts[et] = counts.get(et, 0) + 1
            if et is OrderRejected or et is CancelRejected or et is AllocationRejected:
                self._child(self.rejects, ev.reason.lower()).inc()  # type: ignore[union-attr]
            elif et is Anomaly:
                self._child(self.anomalies, ev.kind).inc()  # type: ignore[union-attr]
            elif et is ComplianceAlert:
                self._child(self.alerts, ev.control, ev.level).inc()  # type: ignore[union-attr]

    def _child(self, metric: Counter, *labels: str) -> Counter:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def gateway_counters(self) -> dict[str, float]:
        """The FIX gateway process's figures as `sample name + labels (JSON)` -> value."""
        return {json.dumps([smp.name, smp.labels]): smp.value for family in self.registry.collect()
                for smp in family.samples if smp.name in self._gateway}

    def absorb(self, counters: dict[str, float]) -> None:
        """Take the gateway process's figures into this registry: counters by what they grew
        since the last report (a restarted gateway counts from zero again), gauges as they are."""
        for key, value in counters.items():
            name, labels = json.loads(key)
            metric = self._gateway.get(name)
            if metric is None:
                continue
            child = metric.labels(**labels) if labels else metric
            if isinstance(metric, Gauge):
                child.set(value)
                continue
            last = self._absorbed.get(key, 0.0)
            child.inc(value - last if value >= last else value)
            self._absorbed[key] = value

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
