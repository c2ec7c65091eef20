"""Waiting on a running OMS's state without polling: look again after each journal commit."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from oms.engine import Engine
from oms.system import System


class CommitWatch:
    """Wakes a waiting test after each journal commit of `system`, so it reads the engine's
    state again only when something may have changed."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.changed = threading.Event()
        system.runtime.listeners.append(lambda _events: self.changed.set())

    def until(self, done: Callable[[Engine], object], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            if self.system.runtime.query(done):
                return
            assert self.changed.wait(max(0.0, deadline - time.monotonic())), f"the OMS never saw {what}"
