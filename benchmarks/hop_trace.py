"""Where one order's round trip goes, hop by hop, between the external peers.

    .venv/bin/python -m benchmarks.hop_trace [--orders 1000]

Copies the committed tree (`git archive HEAD`) into a temporary directory, puts a mark
(CLOCK_MONOTONIC, shared by all processes) at each hand-off of the FIX gateway and
engine processes in that copy only, runs `benchmarks.external_peers` on it with one order
at a time, and prints the median time between consecutive marks over the orders whose
marks came in the usual order. The tree itself carries no tracing.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARK = "from oms._hop_mark import mark; mark"
# (file, line the mark goes before or after, mark, where): each an exact line of the tree
MARKS = [
    ("gateways/fix_trader.py", "    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:",
     "trader message in (quickfix callback)", "after"),
    ("gateways/fix_venue.py", "    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:",
     "venue message in (quickfix callback)", "after"),
    ("gateways/fix_process.py", "        self._q.put((cmd, origin))", "parsed, queued to the batcher", "before"),
    ("gateways/fix_process.py", "                self.ch.send(Submit(commands=commands, origins=origins))",
     "batcher sends the frame", "before"),
    ("oms/engine_link.py", "            if type(frame) is Submit:", "engine process: frame read", "after"),
    ("oms/runtime.py", "        handle, encode, m = self.engine.handle, EVENT_ENCODER.encode, self.metrics",
     "engine thread takes the batch", "after"),
    ("oms/runtime.py", "        t0 = time.perf_counter()\n        if records:\n            self.journal.append(records)",
     "journal thread starts the commit", "before"),
    ("oms/runtime.py", "        m = self.metrics\n        m.commit_latency.observe", "committed", "before"),
    ("gateways/fix_process.py", "            if type(frame) is Committed:", "gateway: Committed frame read", "after"),
    ("gateways/fix_session.py", "        return bool(fix.Session.sendToTarget(msg, session))",
     "sendToTarget called", "before"),
]
_SENT = ("        return bool(fix.Session.sendToTarget(msg, session))",
         "        sent = bool(fix.Session.sendToTarget(msg, session))\n"
         "        from oms._hop_mark import mark; mark('sent to ' + session.getTargetCompID().getValue())\n"
         "        return sent")


def traced_tree(dest: Path, marks_dir: Path) -> None:
    """The committed tree in dest, with the marks."""
    data = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    (dest / "oms" / "_hop_mark.py").write_text(
        "import os, time\n"
        f"_fd = os.open(os.path.join({str(marks_dir)!r}, str(os.getpid())), os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
        "def mark(label):\n"
        "    os.write(_fd, f'{time.monotonic_ns()} {label}\\n'.encode())\n")
    for rel, anchor, label, where in MARKS:
        path = dest / rel
        text = path.read_text()
        if anchor not in text:
            raise SystemExit(f"{rel}: the line a mark goes {where} has changed: {anchor.splitlines()[0].strip()}")
        indent = anchor.splitlines()[-1 if where == "after" else 0]
        indent = indent[:len(indent) - len(indent.lstrip())] + ("    " if anchor.rstrip().endswith(":") else "")
        line = f"{indent}{_MARK}({label!r})\n"
        text = text.replace(anchor + "\n", anchor + "\n" + line, 1) if where == "after" else \
            text.replace(anchor, line + anchor, 1)
        path.write_text(text)
    path = dest / "gateways" / "fix_session.py"
    path.write_text(path.read_text().replace(*_SENT, 1))


def hops(marks_dir: Path) -> tuple[int, int, list[tuple[str, str, float]], float]:
    """(orders, orders in the usual order, [(from, to, median us)], median total us)."""
    marks = sorted((int(t), label) for f in marks_dir.iterdir()
                   for t, label in (line.split(" ", 1) for line in f.read_text().splitlines()))
    orders: list[list[tuple[int, str]]] = []
    for t, label in marks:
        if label.startswith("trader message in"):
            orders.append([])
        if orders:
            orders[-1].append((t, label))
    usual = Counter(tuple(label for _, label in o) for o in orders).most_common(1)[0][0]
    kept = [o for o in orders if tuple(label for _, label in o) == usual]
    table = [(usual[i - 1], usual[i], statistics.median((o[i][0] - o[i - 1][0]) / 1000 for o in kept))
             for i in range(1, len(usual))]
    return len(orders), len(kept), table, statistics.median((o[-1][0] - o[0][0]) / 1000 for o in kept)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=1000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="oms-hops-") as tmp:
        tree, marks_dir = Path(tmp) / "tree", Path(tmp) / "marks"
        marks_dir.mkdir()
        traced_tree(tree, marks_dir)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        run = subprocess.run([sys.executable, "-m", "benchmarks.external_peers", "--orders", str(a.orders),
                              "--window", "1"], cwd=tree, env=env, capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(run.stdout + run.stderr)
        print("\n".join(line for line in run.stdout.splitlines() if line.startswith(("echo ", "oms "))))
        n, kept, table, total = hops(marks_dir)
        print(f"{kept} of {n} orders with the usual hops; median per hop (us):")
        for a_, b_, us in table:
            print(f"  {a_:>38} -> {b_:<38} {us:7.1f}")
        print(f"  first mark to last: {total:.0f} us")


if __name__ == "__main__":
    main()
