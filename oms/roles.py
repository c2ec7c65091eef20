"""Processes by role: what `oms run` starts besides itself, and how it keeps them alive.

`oms run` is the engine process (engine, journal, HTTP API and console, metrics). It
starts the simulated venues (the embedded default's) and the FIX gateway in processes of
their own, each an interpreter with nothing else to do, and restarts one that dies. A
child dies with its parent (PR_SET_PDEATHSIG), ignores the Ctrl-C meant for `oms run`
(which stops it in order) and stops cleanly on SIGTERM.

    python -m oms.roles fix|venues --config-json PATH --base DIR [--engine SOCKET]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from oms.config import Config

log = logging.getLogger("oms.roles")
_PR_SET_PDEATHSIG = 1


def write_config(cfg: Config, run_dir: Path) -> Path:
    """The config `oms run` runs with (after its command-line switches), for its children."""
    path = run_dir / "effective-config.json"
    path.write_bytes(msgspec.json.encode(cfg))
    return path


class RoleProcess:
    """A child process of one role, restarted when it dies unless it is being stopped."""

    def __init__(self, role: str, args: list[str], on_restart: Callable[[], None] | None = None) -> None:
        self.role = role
        self.args = args
        self.on_restart = on_restart
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name=f"watch-{self.role}", daemon=True).start()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "oms.roles", self.role, *self.args],
                                     stdin=subprocess.DEVNULL)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.error("%s process %d ended with %s: restarting it", self.role, proc.pid, code)
            if self.on_restart is not None:
                self.on_restart()
            time.sleep(0.2)  # a process that dies at once must not spin
            if not self._stopping.is_set():
                self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("%s process %d did not stop in %g s: killed", self.role, proc.pid, timeout)
            proc.kill()
            proc.wait()


def wait_listening(addresses: list[tuple[str, int]], child: RoleProcess, timeout: float) -> None:
    """Until something accepts on each address (the child's listeners are up)."""
    deadline = time.monotonic() + timeout
    for host, port in addresses:
        while True:
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {child.role} process does not listen on {host}:{port} after {timeout:g} s")
            time.sleep(0.05)


def die_with_parent() -> None:
    """This process is killed (SIGKILL) when its parent dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup() -> threading.Event:
    """Die with the parent, at once (SIGKILL: a gateway that lost its engine must not go on
    writing session stores a restarted one is opening); leave Ctrl-C to `oms run`, which
    stops its children in order; SIGTERM sets the returned event."""
    die_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if os.getppid() == 1:
        stop.set()  # the parent died before prctl took effect
    return stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m oms.roles")
    p.add_argument("role", choices=("fix", "venues"))
    p.add_argument("--config-json", type=Path, required=True)
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--engine", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s %(name)s[{args.role}]: %(message)s")
    # imported before the signal set-up: importing quickfix resets SIGINT to its default
    from gateways.fix_process import run
    from gateways.venue_sim import start_venues

    stop = _child_setup()
    cfg = msgspec.json.decode(args.config_json.read_bytes(), type=Config)
    gc.freeze()  # what is loaded by now lives as long as the process: no collection need rescan it
    if args.role == "fix":
        return run(cfg, args.base, args.engine, stop)
    sims = start_venues(cfg, cfg.run_path(args.base))
    stop.wait()
    for sim in sims:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
