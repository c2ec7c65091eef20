"""The trader FIX port's front door (gateways/fix_door.py) on real sockets: silent
connections held by the hundred while a real quickfix trader logs on, trades, logs out
and back on; oversized messages before and after logon; counted refusals."""
from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import msgspec
import pytest

from gateways.fix_door import FrameError, frame
from oms.config import Config
from oms.system import System
from tests.fix_client import FixClient, free_port, tags
from tests.procnet import threads_of_listener

CONFIG = """
run_dir = "run"
default_venue = "XSIM"
[api]
enabled = false
[fix]
port = {trader_port}
logon_timeout_s = 3.0
max_pending = 64
max_pending_per_source = 32
max_message_bytes = 8192
[[fix.sessions]]
comp_id = "CLIENT1"
begin_string = "FIX.4.2"
accounts = ["DEMO1"]
[[fix.sessions]]
comp_id = "CLIENT2"
begin_string = "FIX.4.4"
accounts = ["DEMO1"]
[[venues]]
name = "XSIM"
port = {venue_port}
[venues.sim]
depth = 3
[[accounts]]
id = "DEMO1"
[[instruments]]
symbol = "AAPL"
ref_price = "190"
"""

SOH = "\x01"


@pytest.fixture
def oms(tmp_path: Path):
    cfg = msgspec.toml.decode(CONFIG.format(trader_port=free_port(), venue_port=free_port()), type=Config)
    s = System(cfg, tmp_path, serve_metrics=False, streams=False)
    s.start()
    yield s
    s.stop()


def sample(s: System, name: str, labels: dict[str, str] | None = None, at_least: float = 0.0) -> float:
    """A metric of the OMS once it reaches `at_least` (the FIX gateway may report from a
    process of its own), or as it is after 5 s."""
    deadline = time.monotonic() + 5
    while (value := s.metrics.registry.get_sample_value(name, labels or {}) or 0.0) < at_least \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def refused(s: System, reason: str, at_least: float = 1.0) -> float:
    return sample(s, "oms_fix_connections_refused_total", {"reason": reason}, at_least)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def raw(begin: str, body: str) -> bytes:
    """A FIX message with BodyLength and CheckSum computed (fields in body separated by |)."""
    body = body.replace("|", SOH)
    head = f"8={begin}{SOH}9={len(body)}{SOH}"
    checksum = sum((head + body).encode()) % 256
    return f"{head}{body}10={checksum:03d}{SOH}".encode()


def logon(comp: str = "CLIENT2") -> bytes:
    stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())
    return raw("FIX.4.4", f"35=A|34=1|49={comp}|52={stamp}|56=OMS|98=0|108=30|141=Y|")


def test_a_trader_logs_on_trades_and_logs_on_again_while_silent_connections_are_held(oms: System, tmp_path):
    """200 silent connections held and 200 more arriving while a trader logs on and off
    three times and trades (a bare quickfix acceptor failed most such logons): quickfix
    gets no thread for any of them, the door closes them by the source's cap and the
    logon deadline, and counts both."""
    port = oms.cfg.fix.port
    before = threads_of_listener(port)
    junk = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    stop = threading.Event()

    def flood() -> None:
        for _ in range(200):
            if stop.wait(0.005):
                return
            junk.append(socket.create_connection(("127.0.0.1", port)))

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        assert threads_of_listener(port) < before + 10  # no thread per connection
        for round_ in range(3):
            t0 = time.monotonic()
            with FixClient(tmp_path, port, "CLIENT1", "OMS", "FIX.4.2") as t:
                assert time.monotonic() - t0 < 5
                cl = f"F{round_}"
                t.new_order(cl, "AAPL", "1", "100", account="DEMO1")
                while tags(er := t.expect("8", t11=cl, timeout=15), 39)[0] not in ("2", "4", "8"):
                    pass
                assert tags(er, 39, 14) == ("2", "100"), tags(er, 39, 58)
            assert t.logged_out.wait(5)
        stop.set()
        flooding.join()
        assert refused(oms, "source_cap", 200 - 32) >= 200 - 32  # the oldest silent ones made way
        deadline = time.monotonic() + oms.cfg.fix.logon_timeout_s + 5
        assert all(closed_by_peer(s, max(0.1, deadline - time.monotonic())) for s in junk)
        assert sample(oms, "oms_fix_logon_timeouts_total", at_least=1) >= 1
        deadline = time.monotonic() + 5
        while sample(oms, "oms_fix_connections_pending") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sample(oms, "oms_fix_connections_pending") == 0
    finally:
        stop.set()
        flooding.join()
        for s in junk:
            s.close()


def test_oversized_messages_close_the_connection_before_and_after_logon(oms: System):
    port = oms.cfg.fix.port
    with socket.create_connection(("127.0.0.1", port)) as s:  # before logon: announces 1 GB
        s.sendall(b"8=FIX.4.4\x019=1000000000\x0135=A\x01" + b"x" * 65536)
        assert closed_by_peer(s, 5)
    assert refused(oms, "oversized") == 1
    with socket.create_connection(("127.0.0.1", port)) as s:  # after logon: over max_message_bytes
        s.sendall(logon())
        s.settimeout(5)
        assert b"35=A" in s.recv(4096)  # quickfix answered the Logon through the door
        s.sendall(b"8=FIX.4.4\x019=9000\x0135=D\x01")
        assert closed_by_peer(s, 5)
    assert refused(oms, "oversized", 2) == 2


def test_garbage_after_logon_is_dropped_and_the_session_stays_up(oms: System):
    """As quickfix's own parser does: bytes that are no FIX framing go, the next message counts."""
    stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())
    with socket.create_connection(("127.0.0.1", oms.cfg.fix.port)) as s:
        s.sendall(logon())
        s.settimeout(5)
        assert b"35=A" in s.recv(4096)
        test_request = raw("FIX.4.4", f"35=1|34=2|49=CLIENT2|52={stamp}|56=OMS|112=T1|")
        s.sendall(b"hello\r\n" + b"8=FIX.4.4\x019=zz\x01junk" + test_request)
        got = b""
        while b"112=T1" not in got:
            chunk = s.recv(4096)
            assert chunk, "the door closed the session"
            got += chunk
        assert b"35=0" in got  # the Heartbeat answering the TestRequest
    assert refused(oms, "garbled", 0) == 0


@pytest.mark.parametrize("first,reason", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"." * 64, "garbled"),
    (raw("FIX.4.4", "35=D|34=1|49=CLIENT2|56=OMS|11=X|"), "not_logon"),
    (logon("INTRUDER"), "unknown_session"),
    (raw("FIX.4.2", "35=A|34=1|49=CLIENT2|56=OMS|98=0|108=30|"), "unknown_session"),  # CLIENT2 is FIX.4.4
])
def test_a_first_message_that_is_no_logon_of_a_session_is_refused(oms: System, caplog, first, reason):
    caplog.set_level(logging.INFO, "gateways.fix_door")
    with socket.create_connection(("127.0.0.1", oms.cfg.fix.port)) as s:
        s.sendall(first)
        assert closed_by_peer(s, 5)
    assert refused(oms, reason) == 1
    assert "FIX door: closed 127.0.0.1" in caplog.text


def test_the_log_states_where_the_trader_port_listens(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = msgspec.toml.decode(CONFIG.format(trader_port=free_port(), venue_port=free_port()), type=Config)
    s = System(cfg, tmp_path, serve_metrics=False, streams=False)
    s.start()
    s.stop()
    assert f"trader FIX port on 127.0.0.1:{cfg.fix.port}" in caplog.text
    assert f"venue XSIM listening on 127.0.0.1:{cfg.venues[0].port}" in caplog.text


def test_framing():
    msg = raw("FIX.4.4", "35=0|34=2|49=A|56=B|")
    assert frame(msg, 0, 4096) == len(msg)
    assert frame(msg + msg[:10], len(msg), 4096) == 0  # the next one is incomplete
    assert frame(msg[:-3], 0, 4096) == 0
    for bad, reason in ((b"8=FIX.4.4\x019=99999\x01", "oversized"), (b"9=5\x018=FIX.4.4\x01", "garbled"),
                        (b"8=FIX.4.4\x019=abc\x01", "garbled"), (b"x" * 40, "garbled")):
        with pytest.raises(FrameError) as err:
            frame(bad, 0, 4096)
        assert err.value.reason == reason
    with pytest.raises(FrameError):  # a body whose trailer never comes within the limit
        frame(b"8=FIX.4.4\x019=5\x0135=0\x01" + b"y" * 5000, 0, 4096)
