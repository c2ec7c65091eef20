"""The `oms` command: run the system, replay a journal."""
from __future__ import annotations

import argparse
import collections
import gc
import logging
import signal
import sys
import threading
from pathlib import Path

import msgspec

from oms.config import DEFAULT_CONFIG, Config, ConfigError, load
from oms.journal import Journal
from oms.snapshot import Snapshots, directory, latest

log = logging.getLogger("oms")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oms", description="Real-time trade order management system.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start the OMS from a config", description=(
        "Start the OMS: replay the journal, then run the engine, the gateways and /metrics. "
        "Stops cleanly on SIGINT or SIGTERM."))
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    run.add_argument("--stdio", action="store_true",
                     help="take JSON-line commands on stdin instead of FIX and write durable events to stdout; "
                          "stop at end of input")
    run.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    run.add_argument("--no-venues", action="store_true", help="do not start the simulated venues of the config")
    run.add_argument("--no-nats", action="store_true", help="no NATS: neither the embedded server nor the streams")
    run.add_argument("--no-api", action="store_true", help="do not serve the allocation API")
    run.add_argument("--single-process", action="store_true",
                     help="run the FIX sessions and the simulated venues in this process too, instead of processes "
                          "of their own (debugging, profiling one interpreter)")

    tail = sub.add_parser("tail", help="print a live NATS stream in readable form", description=(
        "Subscribe to SUBJECT (wildcards allowed, e.g. 'oms.compliance.>') on the config's NATS and print each "
        "message as a JSON line. --replay first replays what JetStream kept of it."))
    tail.add_argument("subject")
    tail.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    tail.add_argument("--replay", action="store_true", help="start from the first message JetStream kept")
    tail.add_argument("--count", type=int, default=0, help="stop after this many messages (0: never)")

    sim = sub.add_parser("sim-venue", help="run simulated FIX venues alone", description=(
        "Run the simulated venues of a config (all enabled ones, or those named) until SIGINT or SIGTERM."))
    sim.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    sim.add_argument("--venue", action="append", default=[], metavar="NAME", help="run only this venue (repeatable)")

    rep = sub.add_parser("replay", help="rebuild state from a journal and print it", description=(
        "Rebuild the order state from a journal, print a summary and the state hash. "
        "A torn or corrupt tail is recovered to the last complete record, as at start-up."))
    rep.add_argument("journal", type=Path, help="journal file (SQLite)")
    rep.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                     help="the config the journal was written under: its accounts, instruments and limits "
                          "(default: %(default)s)")
    rep.add_argument("--until", type=int, default=0, metavar="SEQ",
                     help="stop after journal record SEQ (inspect the state just before a record that fails)")
    rep.add_argument("--verify-snapshot", action="store_true",
                     help="also start from the latest snapshot and replay what follows it: the state hash must be "
                          "the full replay's, and the snapshot's own that of the replay up to its record (exit 1 "
                          "otherwise)")
    snap = sub.add_parser("snapshot", help="write a snapshot of a journal's state now", description=(
        "Rebuild the state of a journal (from its latest snapshot) and write a snapshot of it beside the journal "
        "(<journal>.snapshots/), so the next start-up replays only what follows. Not while the OMS runs on it."))
    snap.add_argument("journal", type=Path, help="journal file (SQLite)")
    snap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the config the journal was written under")
    report = sub.add_parser("report", help="reports from the journal: blotter, allocations, P&L, compliance, TCA",
                            description=(
        "Write reports of one trading date (in the calendar's time zone) or a range from the journal (the config's, or --journal; "
        "a running OMS's journal can be read): orders, executions, allocations, positions, compliance, "
        "tca-orders, tca-children, tca-summary, venues (groups: blotter, tca, all). The same journal gives "
        "the same bytes."))
    report.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    report.add_argument("--journal", type=Path, help="journal file (default: the config's)")
    report.add_argument("--date", help="trading date YYYY-MM-DD (default: the journal's last)")
    report.add_argument("--to", help="last date of a range starting at --date")
    report.add_argument("--report", action="append", default=[], metavar="NAME",
                        help="a report or group (repeatable; default: all)")
    report.add_argument("--format", default="csv", choices=["csv", "parquet", "json"])
    report.add_argument("--charts", choices=["png", "svg"], help="also draw the charts in this format")
    report.add_argument("--out", type=Path, default=None, help="directory (default: <run_dir>/reports)")
    report.add_argument("--no-extract", action="store_true",
                        help="scan every journal record; neither read nor write the report extract "
                             "(<journal>.extract/)")
    ext = sub.add_parser("extract", help="extend a journal's report extract now", description=(
        "Scan the whole chunks of a journal its report extract (<journal>.extract/) lacks and store them, so "
        "reports read columns rather than every record; a running OMS does this itself ([reports] extract). "
        "Exit 2 where it cannot (no journal, an unreadable record, a folder that cannot be written)."))
    ext.add_argument("journal", type=Path, help="journal file (SQLite)")
    ext.add_argument("--follow", type=int, metavar="PID",
                     help="as the OMS of process PID starts it: keep extending while whole chunks keep coming, leave "
                          "after a minute without one, and with that process")
    return p


def _report(args: argparse.Namespace) -> int:
    import time

    from oms import reporting
    from oms.reporting.facts import Reader, date_of, zone_of

    cfg = load(args.config)
    journal = args.journal or cfg.journal_path(Path.cwd())
    t0 = time.perf_counter()
    try:
        first = args.date
        if first is None:
            reader = Reader(journal)
            first = date_of(reader.span()[1], zone_of(cfg))
            reader.close()
        paths = reporting.write(cfg, journal, args.out or cfg.run_path(Path.cwd()) / "reports", first, args.to,
                                args.report, args.format, args.charts, extract=not args.no_extract)
    except reporting.ReportError as exc:
        print(f"oms report: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    log.info("%d files in %.2f s", len(paths), time.perf_counter() - t0)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from oms.reporting.extract import keep_extending

    return keep_extending(args.journal, args.follow)


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _run_dir(cfg_run_dir: str) -> Path:
    path = Path(cfg_run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sim_venue(args: argparse.Namespace) -> int:
    from gateways.venue_sim import start_venues

    cfg = load(args.config)
    unknown = set(args.venue) - {v.name for v in cfg.venues}
    if unknown:
        raise ConfigError(args.config, "venues", f"no venue named {', '.join(sorted(unknown))}")
    stop = _stop_event()
    sims = start_venues(cfg, _run_dir(cfg.run_dir), args.venue)
    log.info("%d simulated venues running; SIGINT or SIGTERM stops them", len(sims))
    stop.wait()
    for sim in sims:
        sim.stop()
    return 0


def _run(args: argparse.Namespace) -> int:
    from oms.runtime import ReplayError
    from oms.system import System

    cfg = load(args.config)
    if args.no_api:
        cfg = msgspec.structs.replace(cfg, api=msgspec.structs.replace(cfg.api, enabled=False))
    system = System(cfg, Path.cwd(), venues=not args.no_venues, serve_metrics=not args.no_metrics,
                    processes=not args.single_process and not args.stdio,
                    fix=not args.stdio, streams=not args.no_nats)
    try:
        system.start()
    except ReplayError as exc:
        journal = cfg.journal_path(Path.cwd())
        log.critical("cannot start: %s: %s; inspect the state before it with: oms replay %s --until %d",
                     journal, exc, journal, exc.seq - 1)
        return 3
    # start-up's objects (modules, config, the replayed state) live as long as the process: out of
    # every later collection, whose full passes otherwise rescan them all while the engine waits
    gc.freeze()
    stop = _stop_event()  # after start: a component that resets SIGINT must not win
    gateway = None
    if args.stdio:
        from gateways.stdio import StdioGateway

        gateway = StdioGateway(system.runtime)
        gateway.start()
    log.info("OMS running with %d orders; SIGINT or SIGTERM stops it", len(system.engine.state.orders))
    while not stop.is_set() and not (gateway is not None and gateway.finished.is_set()):
        stop.wait(0.2)
    system.stop()
    return 1 if system.runtime.failed else 0


def _tail(args: argparse.Namespace) -> int:
    from gateways.nats_tail import tail

    cfg = load(args.config)
    return tail(cfg.nats.servers(), args.subject, cfg.nats.auth(Path.cwd()), replay=args.replay, count=args.count)


def _replay(args: argparse.Namespace) -> int:
    from oms.journal import JournalError
    from oms.runtime import ReplayError, rebuild

    if not args.journal.is_file():
        print(f"oms replay: {args.journal}: no such file", file=sys.stderr)
        return 2
    try:
        journal = Journal(args.journal)
    except JournalError as exc:
        print(f"oms replay: {exc}", file=sys.stderr)
        return 2
    with journal:
        try:
            state = rebuild(load(args.config), journal, until=args.until).state
        except ReplayError as exc:
            print(f"oms replay: {args.journal}: {exc}\n"
                  f"oms replay: the state before it: oms replay {args.journal} --until {exc.seq - 1}", file=sys.stderr)
            return 3
        seq = min(journal.last_seq, args.until) if args.until else journal.last_seq
        verified = _verify_snapshot(load(args.config), journal, state.state_hash()) if args.verify_snapshot else True
    by_status = collections.Counter(o.status.name for o in state.orders.values())
    fills = sum(len(o.fills) for o in state.orders.values())
    print(f"journal      {args.journal}")
    print(f"records      {seq}")
    print(f"events       {state.events_applied}")
    print(f"orders       {len(state.orders)}")
    for status, n in sorted(by_status.items()):
        print(f"  {status:<16} {n}")
    print(f"child orders {len(state.children)}")
    print(f"fills        {fills}")
    print(f"allocations  {len(state.allocations)} ({sum(a.qty for a in state.allocations.values())} shares)")
    print(f"state hash   {state.state_hash()}")
    return 0 if verified else 1


def _verify_snapshot(cfg: Config, journal: Journal, full_hash: str) -> bool:
    """The latest snapshot against full replays: at its record, and with the records after it."""
    from oms.runtime import rebuild

    found = latest(directory(journal.path), journal, Snapshots(journal, cfg).fp)
    if found is None:
        print(f"snapshot     none usable in {directory(journal.path)}")
        return False
    header, _ = found
    at_record = rebuild(cfg, journal, until=header.seq).state.state_hash()
    resumed = rebuild(cfg, journal, snapshots=True).state.state_hash()
    same = at_record == header.state_hash and resumed == full_hash
    print(f"snapshot     record {header.seq}, {header.orders} orders: its hash {header.state_hash} "
          f"{'equals' if at_record == header.state_hash else 'DIFFERS FROM'} the full replay's up to it")
    print(f"resumed      {resumed} (snapshot + journal after it): {'equals' if resumed == full_hash else 'DIFFERS FROM'}"
          f" the full replay's")
    return same


def _snapshot(args: argparse.Namespace) -> int:
    from oms.runtime import rebuild

    cfg = load(args.config)
    with Journal(args.journal) as journal:
        engine = rebuild(cfg, journal, snapshots=True)
        snapshots = Snapshots(journal, cfg)
        path = snapshots.take(engine)
        snapshots.wait()
    print(f"snapshot     {path}: record {journal.last_seq}, {len(engine.state.orders)} orders, "
          f"state hash {engine.state.state_hash()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return {"run": _run, "replay": _replay, "sim-venue": _sim_venue, "tail": _tail, "snapshot": _snapshot,
                "report": _report, "extract": _extract}[args.command](args)
    except ConfigError as exc:
        print(f"oms: bad config: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
