"""Free loopback TCP ports for the components.

Fixed ports would collide between parallel test runs and with whatever a
developer already runs; the kernel's ephemeral pick avoids both. The port is
released before the component binds it, so a race is possible but rare, and a
lost race shows up as the component's own "address already in use" in its log.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 at the time of the call."""
    sockets: list[socket.socket] = []
    try:
        # Hold all of them open until every one is chosen, so they differ.
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """One free port on 127.0.0.1."""
    return free_ports(1)[0]
