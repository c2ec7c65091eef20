"""Which process listens where, read from /proc: for tests of bound addresses and of the
threads a listener's process runs."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def family(pid: int) -> set[int]:
    """A process and all its descendants."""
    kids = {int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()}
    return {pid}.union(*(family(k) for k in kids))


def listeners(pids: set[int]) -> dict[tuple[str, int], int]:
    """(address, port) -> pid of every TCP socket listening in these processes."""
    inodes = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes[int(link[8:-1])] = pid
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and int(cols[9]) in inodes:
                addr, port = cols[1].split(":")
                raw = bytes.fromhex(addr)
                ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))  # host order
                found[(str(getattr(ip, "ipv4_mapped", None) or ip), int(port, 16))] = inodes[int(cols[9])]
    return found


def threads_of_listener(port: int) -> int:
    """Threads of the process (this one or a descendant) listening on `port`, its C++ ones included."""
    pid = next(pid for (_addr, p), pid in listeners(family(os.getpid())).items() if p == port)
    return len(os.listdir(f"/proc/{pid}/task"))
