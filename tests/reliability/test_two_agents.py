"""Scenario 7 of issue 5: a second agent on the same state directory refuses to start.

Two real `receipt-agent` processes, one config: the second must say plainly that another
agent (with its pid) holds the state directory and exit, without touching the queue;
the first goes on delivering.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import AgentProcess, db_check, record_result, wait_for_event
from support import ACCOUNT, base_config, cli, drop, make_receipt, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.reliability


def test_second_agent_on_same_state_dir_refuses_to_start_with_a_clear_message(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """`receipt-agent run` twice on one state dir: the second exits 1 naming the first's pid.

    1. Start an agent; wait for agent.started.
    2. Start a second `run`, then a `run --once`, on the same config.
    Result: both exit 1 with "another receipt-agent (pid N) is running" (the time the second
    took is recorded; the 60 s bound only stops a hung test: on a loaded 2-core machine the
    interpreter's start-up alone has taken over 10 s); the first agent still runs and
    delivers a file dropped afterwards, each receipt once.
    """
    spool = tmp_path / "spool"
    spool.mkdir()
    log = tmp_path / "agent.log"
    config = write_config(
        base_config(
            base_url=sandbox.base_url,
            spool_dir=spool,
            state_dir=tmp_path / "state",
            secret_file=secret_file,
            log_file=log,
        )
    )
    drop(spool, "a.json", [make_receipt(n) for n in range(20)])
    first = AgentProcess(config)
    second: AgentProcess | None = None
    try:
        wait_for_event(log, "agent.started")
        started = time.monotonic()
        second = AgentProcess(config)
        code = second.wait_exit(60)
        refused_s = time.monotonic() - started
        once = cli("run", "--once", "-c", str(config), timeout=60)
        assert code == 1
        message = f"another receipt-agent (pid {first.pid}) is running on this state directory"
        assert message in second.stderr()
        assert once.returncode == 1
        assert message in once.stderr
        assert first.alive()
        drop(spool, "b.json", [make_receipt(n) for n in range(20, 40)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 40, timeout=20)
        first.signal(signal.SIGTERM)
        assert first.wait_exit(40) == 0
    finally:
        first.ensure_stopped()
        if second is not None:
            second.ensure_stopped()
    assert sandbox.stats()["duplicates"] == 0
    assert db_check(tmp_path / "state" / "state.db")["counts"] == {"sent": 40}
    assert len(wait_for_event(log, "agent.started")) == 1  # the second never started
    record_result(
        "two_agents",
        fed=40,
        delivered=len(sandbox.receipt_ids(ACCOUNT)),
        lost=0,
        resent=sandbox.stats()["duplicates"],
        posts=sandbox.receipt_posts,
        second_refused_after_s=round(refused_s, 2),
        message=second.stderr().strip().splitlines()[-1],
    )
