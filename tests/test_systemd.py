"""sd_notify and credentials (receipt_agent.systemd) against a real Unix datagram socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from receipt_agent import systemd


@pytest.fixture(autouse=True)
def _no_systemd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test as if not run by systemd, whatever the developer's shell holds."""
    for name in (
        systemd.NOTIFY_SOCKET_ENV,
        systemd.WATCHDOG_USEC_ENV,
        systemd.WATCHDOG_PID_ENV,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket standing in for systemd's, named in $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv(systemd.NOTIFY_SOCKET_ENV, str(path))
        yield sock


def test_notify_without_socket_is_a_no_op() -> None:
    """Outside systemd every call returns False and nothing is raised."""
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.stopping() is False
    assert systemd.status("pending 3") is False
    assert systemd.watchdog_ping() is False


def test_notify_messages_arrive_as_datagrams(notify_socket: socket.socket) -> None:
    """systemd receives READY=1, STATUS=…, WATCHDOG=1 and STOPPING=1, one datagram each."""
    assert systemd.ready() is True
    assert systemd.status("pending 12, last sent 14:03:11") is True
    assert systemd.watchdog_ping() is True
    assert systemd.stopping() is True

    received = [notify_socket.recv(4096) for _ in range(4)]

    assert received == [
        b"READY=1",
        b"STATUS=pending 12, last sent 14:03:11",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]


def test_status_with_newlines_stays_one_assignment(notify_socket: socket.socket) -> None:
    """A multi-line status text cannot inject a second assignment such as READY=1."""
    assert systemd.status("pending 1\nREADY=1") is True

    assert notify_socket.recv(4096) == b"STATUS=pending 1 READY=1"


def test_notify_to_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NOTIFY_SOCKET starting with @ reaches a socket in the abstract namespace."""
    name = f"receipt-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        monkeypatch.setenv(systemd.NOTIFY_SOCKET_ENV, "@" + name)

        assert systemd.ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_notify_to_missing_socket_returns_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale NOTIFY_SOCKET (supervisor gone) makes notify return False, never raise."""
    monkeypatch.setenv(systemd.NOTIFY_SOCKET_ENV, str(tmp_path / "gone"))

    assert systemd.watchdog_ping() is False


@pytest.mark.parametrize("value", ["", "relative/notify", "vsock:2:1234"])
def test_notify_with_unusable_address_returns_false(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Addresses that are neither absolute paths nor @abstract are ignored."""
    monkeypatch.setenv(systemd.NOTIFY_SOCKET_ENV, value)

    assert systemd.ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    """WatchdogSec=30 (WATCHDOG_USEC=30000000) for this process means a ping every 15 s."""
    monkeypatch.setenv(systemd.WATCHDOG_USEC_ENV, "30000000")
    monkeypatch.setenv(systemd.WATCHDOG_PID_ENV, str(os.getpid()))

    assert systemd.watchdog_interval_s() == 15.0


def test_watchdog_interval_without_pid_applies_to_us(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset WATCHDOG_PID means the watchdog applies to this process."""
    monkeypatch.setenv(systemd.WATCHDOG_USEC_ENV, "2000000")

    assert systemd.watchdog_interval_s() == 1.0


def test_watchdog_interval_for_another_pid_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables inherited from a parent (another WATCHDOG_PID) do not apply to us."""
    monkeypatch.setenv(systemd.WATCHDOG_USEC_ENV, "30000000")
    monkeypatch.setenv(systemd.WATCHDOG_PID_ENV, str(os.getpid() + 1))

    assert systemd.watchdog_interval_s() is None


@pytest.mark.parametrize("value", [None, "", "abc", "0", "-5"])
def test_watchdog_interval_when_disabled_is_none(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No WatchdogSec=, or a malformed value, means no pings."""
    if value is not None:
        monkeypatch.setenv(systemd.WATCHDOG_USEC_ENV, value)

    assert systemd.watchdog_interval_s() is None
