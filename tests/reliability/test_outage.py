"""Scenario 3 of issue 5: a long API outage grows the queue visibly and drains it calmly.

The sandbox runs in its own process; the outage is that process stopped (the port then
refuses connections), and the recovery is a new sandbox process on the SAME port, as a
Dintero outage looks from a store. Time is compressed with small backoff caps. The CI
variant shortens the `queue.backlog` interval with RECEIPT_AGENT_TEST_BACKLOG_INTERVAL_S
(a test-only environment variable read by receipt_agent.scheduler; not configuration);
the slow variant keeps the real once-a-minute job and checks its cadence.
"""

from __future__ import annotations

import itertools
import math
import signal
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest
import yaml
from faultkit import AgentProcess, SandboxProcess, db_check, pending_count, record_result
from faultkit import wait_for_event as wait_for
from support import ACCOUNT, base_config, cli, drop, make_receipt, read_log, wait_until

pytestmark = pytest.mark.reliability

BATCH = 50


def _when(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def _outage_run(
    tmp_path: Path, *, files: int, per_file: int, outage_s: float, cap_s: float, fast: bool
) -> None:
    spool, state, log = tmp_path / "spool", tmp_path / "state", tmp_path / "agent.log"
    spool.mkdir()
    secret = tmp_path / "client_secret"
    secret.write_text("canary-secret-s3cr3t-value\n")
    secret.chmod(0o600)
    sandbox = SandboxProcess(tmp_path).start()
    port = sandbox.port
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=spool, state_dir=state,
        secret_file=secret, log_file=log,
    )  # fmt: skip
    settings["dintero"]["timeout"] = "2s"
    settings["batch"] = {"max_receipts": BATCH, "flush_interval": "0.2s"}
    settings["retry"] = {"initial": "0.2s", "max": f"{cap_s}s"}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    env = {"RECEIPT_AGENT_TEST_BACKLOG_INTERVAL_S": "1"} if fast else {}
    agent = AgentProcess(config, env=env)
    fed: list[str] = []
    try:
        # Before: the API is up and takes a first file.
        drop(spool, "before.json", [make_receipt(900_000 + n) for n in range(BATCH)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == BATCH, timeout=20)

        # The outage: the sandbox process stops; files keep coming.
        sandbox.stop()
        down_at = time.time()
        pace = outage_s * 0.8 / files
        for number in range(files):
            receipts = [make_receipt(number * per_file + i) for i in range(per_file)]
            fed += [r["receipt_id"] for r in receipts]
            drop(spool, f"o-{number:04d}.json", receipts)
            time.sleep(pace)  # pacing the feed, not waiting for a result
        wait_until(lambda: pending_count(state / "state.db") == len(fed), timeout=20)
        backlog = wait_for(log, "queue.backlog", count=2, timeout=outage_s + 130)
        wait_until(lambda: time.time() - down_at >= outage_s, timeout=outage_s + 5)
        status = cli("status", "--json", "-c", str(config))
        report = orjson.loads(status.stdout)
        assert status.returncode == 1  # degraded: the last send failed
        assert report["counts"]["pending"] == len(fed)
        first_fed_age = time.time() - down_at
        assert report["oldest_pending_age_s"] >= first_fed_age - pace - 2

        # The API returns on the same port.
        sandbox.start()
        assert sandbox.port == port
        back_at = time.time()
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) >= len(fed), timeout=120)
        drain_s = time.time() - back_at
        wait_until(lambda: pending_count(state / "state.db") == 0, timeout=20)
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(40) == 0, agent.stderr()
        stats = sandbox.stats()
        received = sandbox.receipt_ids(ACCOUNT)
    finally:
        agent.ensure_stopped()
        sandbox.stop()

    # Each once. Batches start oldest first, but up to batch.concurrency are in flight
    # together and may be answered in any order among themselves.
    assert sorted(received) == sorted(fed)
    assert len(received) == len(set(received))
    assert db_check(state / "state.db")["counts"] == {"sent": len(fed) + BATCH}
    # No thundering herd: one POST per batch, all 200, after one 401 for the token the
    # new sandbox process never issued (refreshed once, as CONTRACT §5 says).
    batches = math.ceil(len(fed) / BATCH)
    assert stats["receipt_posts"] == batches
    assert stats["token_issues"] == 1
    assert set(stats["by_status"]) <= {"200", "401"}
    assert stats["by_status"].get("401", 0) <= 1
    # During the outage: retries backed off to the cap, not a hammering.
    lines = read_log(log)
    failed = [
        e for e in lines if e.get("event") == "batch.failed" and down_at <= _when(e) < back_at
    ]
    gaps = [_when(b) - _when(a) for a, b in itertools.pairwise(failed)]
    assert len(failed) <= (back_at - down_at) / cap_s + 8, len(failed)
    assert min(gaps[-3:]) >= cap_s * 0.9, gaps[-3:]
    pendings = [e["pending"] for e in backlog]
    assert pendings[-1] >= pendings[0] > 0
    if not fast:  # the real job: once a minute
        cadence = _when(backlog[1]) - _when(backlog[0])
        assert 55 <= cadence <= 65, cadence
    record_result(
        "outage",
        fed=len(fed),
        delivered=len(set(received)),
        lost=len(set(fed) - set(received)),
        resent=stats["duplicates"],
        posts_after_recovery=stats["receipt_posts"],
        connection_attempts_during_outage=len(failed),
        outage_s=round(back_at - down_at, 1),
        backlog_lines=len([e for e in lines if e.get("event") == "queue.backlog"]),
        backlog_pending_max=max(e["pending"] for e in lines if e.get("event") == "queue.backlog"),
        oldest_pending_age_s_at_status=report["oldest_pending_age_s"],
        drain_s=round(drain_s, 1),
    )


def test_outage_in_ci_size_queues_shows_backlog_and_drains_oldest_first(tmp_path: Path) -> None:
    """CI size: 8 s of connection refused while 300 receipts arrive; all drain in order.

    1. The sandbox takes a first file, then its process stops; 10 files arrive.
    2. `queue.backlog` lines appear (interval shortened to 1 s); `status --json` shows
       300 pending and the oldest pending age.
    3. The sandbox restarts on the same port.
    Result: the 300 arrive in the order fed, one POST per batch, one token; the retries
    during the outage reached the 1 s cap and stayed there.
    """
    _outage_run(tmp_path, files=10, per_file=30, outage_s=8, cap_s=1, fast=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_outage_of_two_minutes_logs_backlog_each_minute_and_drains_oldest_first(
    tmp_path: Path,
) -> None:
    """Full size: 130 s outage, 2,000 receipts, the real once-a-minute `queue.backlog`."""
    _outage_run(tmp_path, files=40, per_file=50, outage_s=130, cap_s=5, fast=False)
