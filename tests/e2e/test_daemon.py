"""End to end: the `receipt-agent run` daemon as a real process against the sandbox."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from support import (
    ACCOUNT,
    SECRET,
    cli,
    drop,
    events,
    make_receipt,
    read_log,
    start_agent,
    stop_agent,
    wait_until,
)

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def daemon_config(make_agent_config: Callable[..., Path]) -> Callable[..., Path]:
    return make_agent_config


def _stop(process: subprocess.Popen[str], timeout: float = 40) -> int:
    return stop_agent(process, timeout=timeout)[0]


def test_daemon_delivers_files_dropped_while_running_and_logs_contract_events(
    daemon_config: Callable[..., Path], tmp_path: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """An operator reading the JSON log sees the whole life of the agent and its receipts.

    1. Start `run`; drop a good file, a file with one invalid receipt, a duplicate and a
       broken file. 2. Wait until the sandbox has them. 3. SIGTERM.
    Result: exit 0; the log holds agent.started/stopping/stopped, file.accepted,
    file.quarantined, receipt.rejected, receipt.duplicate, batch.sent,
    auth.token_refreshed, each line JSON with timestamp/level/event, and no secret.
    """
    process = start_agent(daemon_config())
    log = tmp_path / "agent.log"
    try:
        wait_until(lambda: events(log, "agent.started"))
        drop(spool_dir, "good.json", [make_receipt(i) for i in range(30)])
        bad = [make_receipt(100), make_receipt(101, currency="kroner")]
        drop(spool_dir, "bad.json", bad)
        drop(spool_dir, "again.json", [make_receipt(5)])
        drop(spool_dir, "broken.json", b'[{"receipt_id": ')
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 31)
        wait_until(lambda: events(log, "file.quarantined"))
    finally:
        code = _stop(process)
    assert code == 0
    lines = read_log(log)
    names = {line["event"] for line in lines}
    for name in (
        "agent.started", "agent.stopping", "agent.stopped", "file.accepted", "file.quarantined",
        "receipt.rejected", "receipt.duplicate", "batch.sent", "auth.token_refreshed",
    ):  # fmt: skip
        assert name in names, name
    assert all({"timestamp", "level", "event"} <= set(line) for line in lines)
    assert lines[0]["timestamp"].endswith("Z") or "+00:00" in lines[0]["timestamp"]
    assert SECRET not in log.read_text()
    sidecar = orjson.loads(
        (tmp_path / "state/quarantine/till-1/broken.json.error.json").read_bytes()
    )
    assert sidecar["kind"] == "parse_error"
    assert sidecar["error"]


def test_daemon_honours_retry_after_on_429(
    daemon_config: Callable[..., Path], tmp_path: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """After a 429 with Retry-After: 2, the agent waits at least 2 s before the next POST.

    Result: the receipts arrive; the gap between the 429 and the next receipts POST,
    measured on the sandbox's own request record, is >= 2 s.
    """
    sandbox.set_faults(rate_limit_every=1, retry_after_s=2, endpoints=frozenset({"receipts"}))
    process = start_agent(daemon_config())
    try:
        drop(spool_dir, "a.json", [make_receipt(i) for i in range(3)])
        wait_until(lambda: any(r.status == 429 for r in sandbox.requests), timeout=15)
        sandbox.clear_faults()
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 3, timeout=15)
    finally:
        assert _stop(process) == 0
    posts = [r for r in sandbox.requests if r.path.endswith("/receipts")]
    first_429 = next(i for i, r in enumerate(posts) if r.status == 429)
    gap = (posts[first_429 + 1].at - posts[first_429].at).total_seconds()
    assert gap >= 2.0
    failed = events(tmp_path / "agent.log", "batch.failed")
    assert failed[0]["status"] == 429
    assert failed[0]["retry_in"] >= 2


def test_daemon_refreshes_an_expired_token_mid_run(
    daemon_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Tokens that live 2 s are renewed (at half-life or on a 401) and nothing fails."""
    sandbox.set_faults(token_lifetime_s=2)
    process = start_agent(daemon_config())
    try:
        for n in range(4):
            drop(spool_dir, f"f{n}.json", [make_receipt(n)])
            wait_until(lambda n=n: len(sandbox.receipt_ids(ACCOUNT)) == n + 1, timeout=10)
            time.sleep(1.2)  # let the token age past its half-life between files
    finally:
        assert _stop(process) == 0
    assert sandbox.token_issues >= 2
    assert len(events(tmp_path / "agent.log", "auth.token_refreshed")) >= 2
    assert not events(tmp_path / "agent.log", "auth.failed")


def test_daemon_sigterm_mid_batch_exits_0_and_loses_nothing(
    daemon_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox, state_dir: Path
) -> None:
    """SIGTERM while a slow batch is in flight: exit 0; every receipt is sent or pending.

    1. A sandbox that answers in 1.5 s. 2. Drop 300 receipts. 3. SIGTERM during the first
    POST. 4. Restart with a fast sandbox and `run --once`.
    Result: first exit 0 and sent + pending == 300; after the second run all 300 arrived.
    """
    sandbox.set_faults(delay_s=1.5, endpoints=frozenset({"receipts"}))
    config = daemon_config(batch={"max_receipts": 100, "flush_interval": "0.2s"})
    process = start_agent(config)
    drop(spool_dir, "big.json", [make_receipt(i) for i in range(300)])
    wait_until(
        lambda: (
            sandbox.receipt_posts >= 1
            or any(r.path.endswith("/receipts") for r in sandbox.requests)
        ),
        timeout=15,
    )
    started = time.monotonic()
    assert _stop(process) == 0
    assert time.monotonic() - started < 35
    counts = orjson.loads(cli("status", "--json", "-c", str(config)).stdout)["counts"]
    assert counts["sent"] + counts["pending"] == 300
    sandbox.clear_faults()
    assert cli("run", "--once", "-c", str(config)).returncode == 0
    assert len(sandbox.receipt_ids(ACCOUNT)) == 300


def test_second_agent_on_same_state_dir_refuses_to_start(
    daemon_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A second `run` on the same state directory exits with a message naming the lock."""
    config = daemon_config()
    process = start_agent(config)
    try:
        wait_until(lambda: events(tmp_path / "agent.log", "agent.started"))
        second = cli("run", "-c", str(config), timeout=20)
    finally:
        assert _stop(process) == 0
    assert second.returncode == 1
    assert "another receipt-agent" in second.stderr


def test_check_config_reports_three_planted_mistakes_at_once(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Three mistakes in one config are all printed as `path: message`, exit 2."""
    config = write_config(
        {
            "dintero": {"account_id": "X123", "client_id": "c"},
            "state_dir": str(tmp_path / "state"),
            "sources": [
                {
                    "name": "till-1",
                    "path": str(tmp_path),
                    "format": "dintero-json",
                    "settle": "soon",
                    "store": {"id": "s"},
                    "colour": "blue",
                }
            ],
        }
    )
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 2
    lines = [
        line for line in result.stderr.splitlines() if ": " in line and "config.invalid" not in line
    ]
    assert any(line.startswith("dintero.account_id: ") for line in lines)
    assert any(line.startswith("sources[0].settle: ") for line in lines)
    assert any(line.startswith("sources[0].colour: unknown key") for line in lines)


def test_check_config_accepts_valid_config_and_prints_config_ok(agent_config: Path) -> None:
    """A valid config with a readable secret prints `config ok` and exits 0."""
    result = cli("check-config", "-c", str(agent_config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("config ok")


def test_check_config_online_fetches_a_token(agent_config: Path, sandbox: Sandbox) -> None:
    """`check-config --online` proves the credentials by fetching a token."""
    result = cli("check-config", "--online", "-c", str(agent_config))
    assert result.returncode == 0, result.stderr
    assert sandbox.token_issues == 1


def test_run_once_with_invalid_config_exits_2(tmp_path: Path) -> None:
    """`run --once` with a config that does not exist exits 2 with the path named."""
    result = cli("run", "--once", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "missing.yaml: cannot read the config file" in result.stderr


def test_run_with_unwritable_log_file_exits_2_naming_log_file(
    daemon_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A log file the agent cannot open is reported as `log.file: …`, exit 2, no traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = daemon_config(log={"file": str(blocker / "agent.log"), "format": "json"})
    result = cli("run", "--once", "-c", str(config))
    assert result.returncode == 2
    assert "log.file: cannot open" in result.stderr
    assert "Traceback" not in result.stderr
