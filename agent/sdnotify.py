"""systemd's notify protocol, for ``Type=notify`` units: READY, STATUS, STOPPING, WATCHDOG.

A datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace); without it, as outside systemd, every call is a silent no-op. Ten lines instead of
the ``sdnotify`` package, which leaks a socket (a ResourceWarning; stack-notes §0).
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``); False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def watchdog_period() -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec=``), or None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
