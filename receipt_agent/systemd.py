"""systemd integration: sd_notify, in the standard library only.

Owns the `NOTIFY_SOCKET` datagram protocol (sd_notify(3)) that `Type=notify` and
`WatchdogSec=` in `systemd/receipt-agent.service` rely on. The `LoadCredential=` lookup
in `$CREDENTIALS_DIRECTORY` has one home, config/environment.py's secret lookup (CONTRACT §2),
which sits below this module in the import layers. Reads environment variables and sends
datagrams; never writes a file, never raises because systemd is absent: outside a unit
every call is a cheap no-op returning False or None.

The protocol: one datagram of newline-separated `KEY=VALUE` assignments to the
AF_UNIX socket named by `$NOTIFY_SOCKET`; a name starting with `@` is in the Linux
abstract namespace (`@` stands for the leading NUL byte).
"""

from __future__ import annotations

import os
import socket

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"

# systemd's own STATUS= texts are short; a long one is truncated in `systemctl status`.
_STATUS_MAX_CHARS = 200


def _socket_address() -> str | bytes | None:
    """Return the notify socket's address from the environment, or None when unusable."""
    name = os.environ.get(NOTIFY_SOCKET_ENV, "")
    if name.startswith("@"):
        # Abstract namespace: the address is NUL followed by the rest of the name.
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    # Unset, empty, or a transport we do not speak (e.g. `vsock:` in systemd ≥ 253).
    return None


def notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; return True when it was sent.

    Returns False without doing anything when `$NOTIFY_SOCKET` is unset (not started by
    systemd, or `NotifyAccess=` does not allow it), and False when sending fails: the
    agent must never stop delivering receipts because its supervisor cannot be told.
    """
    address = _socket_address()
    if address is None or not message:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.send(message.encode())
    except OSError:
        return False
    return True


def ready() -> bool:
    """Tell systemd start-up is complete (`Type=notify`: `systemctl start` returns now)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd the agent has begun its drain after SIGTERM."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Set the one-line status shown by `systemctl status`, e.g. "pending 12, last sent 14:03"."""
    line = " ".join(text.split())[:_STATUS_MAX_CHARS]
    return notify(f"STATUS={line}")


def watchdog_ping() -> bool:
    """Reset the `WatchdogSec=` timer; call it only from a main loop that is healthy."""
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """Return how often to ping the watchdog (half of `WatchdogSec=`), or None when off.

    None when `$WATCHDOG_USEC` is unset, not a positive integer, or when `$WATCHDOG_PID`
    names another process (the variables were inherited from a parent, not meant for us).
    """
    watchdog_pid = os.environ.get(WATCHDOG_PID_ENV)
    if watchdog_pid is not None and watchdog_pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get(WATCHDOG_USEC_ENV, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    # sd_watchdog_enabled(3) recommends pinging at half the interval.
    return usec / 2 / 1_000_000
