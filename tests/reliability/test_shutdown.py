"""Scenario 6 of issue 5: SIGTERM drains within its bound, a second one forces, SIGHUP reopens.

Real `receipt-agent run` processes against the sandbox (in a thread of the test, so its
request records can be read); signals are sent with os.kill, as systemd does.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultkit import AgentProcess, db_check, record_result, wait_for_event
from support import ACCOUNT, base_config, cli, drop, make_receipt, read_log, wait_until

from receipt_agent.agent import DRAIN_TIMEOUT_S
from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.reliability


def _settings(tmp_path: Path, sandbox: Sandbox, secret_file: Path, **batch: Any) -> dict[str, Any]:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=spool, state_dir=tmp_path / "state",
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    settings["batch"] = {"max_receipts": 50, "flush_interval": "0.2s", **batch}
    return settings


def _backlog(spool: Path, files: int, per_file: int) -> set[str]:
    expected: set[str] = set()
    for number in range(files):
        receipts = [make_receipt(number * per_file + i) for i in range(per_file)]
        expected.update(r["receipt_id"] for r in receipts)
        drop(spool, f"b-{number:04d}.json", receipts)
    return expected


def _sigterm_with_backlog(
    tmp_path: Path,
    sandbox: Sandbox,
    write_config: Callable[..., Path],
    secret_file: Path,
    *,
    files: int,
) -> None:
    sandbox.set_faults(delay_s=0.3)
    config = write_config(_settings(tmp_path, sandbox, secret_file))
    log, state = tmp_path / "agent.log", tmp_path / "state"
    expected = _backlog(tmp_path / "spool", files, 50)
    agent = AgentProcess(config)
    try:
        wait_for_event(log, "batch.sent", count=2, timeout=30)
        signalled = time.monotonic()
        agent.signal(signal.SIGTERM)
        code = agent.wait_exit(DRAIN_TIMEOUT_S + 10)
        exit_s = time.monotonic() - signalled
    finally:
        agent.ensure_stopped()
    assert code == 0, agent.stderr()
    assert exit_s < DRAIN_TIMEOUT_S
    stopped = [e for e in read_log(log) if e.get("event") == "agent.stopped"]
    assert stopped
    assert stopped[0]["drained"] is True
    checked = db_check(state / "state.db")
    assert checked["integrity"] == "ok"
    counts = checked["counts"]
    # Every receipt is in the state store or still in a spool file the agent had not taken
    # in yet (how far intake got before the signal depends on the machine's load).
    in_spool = sum(
        len(json.loads(path.read_bytes())) for path in (tmp_path / "spool").glob("*.json")
    )
    assert counts.get("sent", 0) + counts.get("pending", 0) + in_spool == len(expected)
    at_sandbox = set(sandbox.receipt_ids(ACCOUNT))
    # The batch in flight was acknowledged (marked sent) before exit: the sandbox holds
    # exactly the receipts the state store calls sent; the rest are pending, not lost.
    assert len(at_sandbox) == counts.get("sent", 0)
    left_pending = counts.get("pending", 0)
    assert left_pending > 0, "the backlog drained before the SIGTERM: make it larger"

    drained = time.monotonic()
    again = cli("run", "--once", "-c", str(config), timeout=120)
    assert again.returncode == 0, again.stderr
    assert set(sandbox.receipt_ids(ACCOUNT)) == expected
    record_result(
        "shutdown_sigterm",
        fed=len(expected),
        delivered=len(sandbox.receipt_ids(ACCOUNT)),
        lost=len(expected - set(sandbox.receipt_ids(ACCOUNT))),
        resent=sandbox.stats()["duplicates"],
        posts=sandbox.receipt_posts,
        exit_after_sigterm_s=round(exit_s, 2),
        pending_at_exit=left_pending,
        drain_s=round(time.monotonic() - drained, 1),
    )


def test_sigterm_during_backlog_exits_0_fast_with_inflight_batch_acknowledged(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """SIGTERM amid a 1,000-receipt backlog: exit 0 in well under the drain bound, nothing lost.

    1. 20 files of 50 receipts; the sandbox answers in 0.3 s; the agent starts sending.
    2. SIGTERM after the second batch.
    Result: exit 0 before DRAIN_TIMEOUT_S; `agent.stopped` with drained=true; the sandbox
    holds exactly what the state store marks sent; the rest pending; `run --once`
    delivers the rest.
    """
    _sigterm_with_backlog(tmp_path, sandbox, write_config, secret_file, files=20)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_during_backlog_of_10000_exits_0_fast_with_inflight_batch_acknowledged(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """Full size: as the CI variant with a 10,000-receipt backlog."""
    _sigterm_with_backlog(tmp_path, sandbox, write_config, secret_file, files=200)


def _hanging_post(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> AgentProcess:
    """An agent whose POST hangs: the sandbox never answers, the client waits 120 s."""
    sandbox.set_faults(hang_rate=1.0, hang_s=300)
    settings = _settings(tmp_path, sandbox, secret_file)
    settings["dintero"]["timeout"] = "120s"
    config = write_config(settings)
    _backlog(tmp_path / "spool", 2, 50)
    agent = AgentProcess(config)
    wait_until(lambda: any(r.path.endswith("/receipts") for r in sandbox.requests), timeout=20)
    return agent


def test_second_sigterm_forces_exit_while_a_post_hangs(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """A second SIGTERM ends an agent whose drain waits on a hanging POST, at once.

    1. The sandbox never answers; the agent's POST is in flight.
    2. SIGTERM; wait for agent.stopping; SIGTERM again.
    Result: the process is gone within 3 s of the second signal (exit 1, forced); its
    receipts are still pending in the state store.
    """
    agent = _hanging_post(tmp_path, sandbox, write_config, secret_file)
    try:
        agent.signal(signal.SIGTERM)
        wait_for_event(tmp_path / "agent.log", "agent.stopping", timeout=10)
        second = time.monotonic()
        agent.signal(signal.SIGTERM)
        code = agent.wait_exit(10)
        forced_s = time.monotonic() - second
    finally:
        agent.ensure_stopped()
    assert code == 1
    assert forced_s < 3
    # The first batch goes out as soon as the first file is in (adaptive batching), so the
    # second file may still be in the spool when the signal comes: pending + unread = 100.
    in_spool = sum(
        len(json.loads(path.read_bytes())) for path in (tmp_path / "spool").glob("*.json")
    )
    counts = db_check(tmp_path / "state" / "state.db")["counts"]
    assert set(counts) <= {"pending"}
    assert counts.get("pending", 0) + in_spool == 100


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_with_a_hanging_post_exits_0_at_the_drain_bound(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """A POST that never returns holds shutdown for DRAIN_TIMEOUT_S at most, then exit 0.

    1. The sandbox never answers; client timeout 120 s; the agent's POST is in flight.
    2. SIGTERM once.
    Result: exit 0 within DRAIN_TIMEOUT_S + 5 s (systemd's TimeoutStopSec is larger);
    the batch left pending.
    """
    agent = _hanging_post(tmp_path, sandbox, write_config, secret_file)
    try:
        signalled = time.monotonic()
        agent.signal(signal.SIGTERM)
        code = agent.wait_exit(DRAIN_TIMEOUT_S + 60)
        exit_s = time.monotonic() - signalled
    finally:
        agent.ensure_stopped()
    assert code == 0, agent.stderr()
    assert exit_s < DRAIN_TIMEOUT_S + 5, exit_s
    # The first batch goes out as soon as the first file is in (adaptive batching), so the
    # second file may still be in the spool when the signal comes: pending + unread = 100.
    in_spool = sum(
        len(json.loads(path.read_bytes())) for path in (tmp_path / "spool").glob("*.json")
    )
    counts = db_check(tmp_path / "state" / "state.db")["counts"]
    assert set(counts) <= {"pending"}
    assert counts.get("pending", 0) + in_spool == 100
    record_result("shutdown_hanging_post", exit_after_sigterm_s=round(exit_s, 1), pending=100)


def test_sighup_after_log_moved_writes_new_lines_to_the_new_file(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """After logrotate moves agent.log and sends SIGHUP, new lines go to a new agent.log.

    Result: the file dropped after the HUP is logged in the new agent.log only.
    """
    config = write_config(_settings(tmp_path, sandbox, secret_file))
    log, spool = tmp_path / "agent.log", tmp_path / "spool"
    agent = AgentProcess(config)
    try:
        wait_for_event(log, "agent.started")
        drop(spool, "before.json", [make_receipt(1)])
        wait_for_event(log, "batch.sent")
        log.rename(tmp_path / "agent.log.1")
        agent.signal(signal.SIGHUP)
        wait_until(log.exists, timeout=10)
        drop(spool, "after.json", [make_receipt(2)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 2, timeout=10)
        wait_for_event(log, "batch.sent")
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(40) == 0
    finally:
        agent.ensure_stopped()
    old = [e.get("file") for e in read_log(tmp_path / "agent.log.1")]
    new = [e.get("file") for e in read_log(log)]
    assert "after.json" in new
    assert "after.json" not in old
    assert "before.json" in old
    assert any(e.get("event") == "agent.stopped" for e in read_log(log))
