"""Operator rough edges of issue 16, tried through the installed CLI as a new user would."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from support import BIN, cli, drop, free_port, make_receipt, read_log, start_agent, stop_agent
from support import wait_until as wait_for

from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

pytestmark = pytest.mark.e2e


def _queue_rows(agent_config: Path, spool_dir: Path, count: int) -> None:
    drop(spool_dir, "a.json", [make_receipt(i) for i in range(count)])
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0


def test_queue_list_fits_80_columns_and_says_when_it_stops_at_the_limit(
    agent_config: Path, spool_dir: Path, state_dir: Path
) -> None:
    """At 80 columns every row is one line with its whole receipt id; `--limit 3` of 5 says so.

    1. Five receipts sent; one gets a long last error. 2. `queue list --limit 3` with
    COLUMNS=80. Result: no line over 80 characters, each receipt id whole on its row, the
    error on its own line, and stderr says the listing stopped at 3.
    """
    _queue_rows(agent_config, spool_dir, 5)
    db = StateDB(state_dir / "state.db")
    with db.transaction() as tx:
        tx.execute(
            "UPDATE receipts SET last_error = ? WHERE receipt_id = 'R000004'",
            ("the API refused this receipt (400): items[0].amount: must be an integer " * 2,),
        )
    db.close()
    env = {**os.environ, "COLUMNS": "80"}

    result = cli("queue", "list", "--limit", "3", "-c", str(agent_config), env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    for receipt_id in ("R000004", "R000003", "R000002"):
        assert sum(f"sc029/{receipt_id}" in line for line in lines) == 1, lines
    assert "R000001" not in result.stdout
    assert any(line.strip().startswith("the API refused") for line in lines)
    assert "showing the newest 3 receipts; there are more" in result.stderr
    complete = cli("queue", "list", "--limit", "5", "-c", str(agent_config), env=env)
    assert "there are more" not in complete.stderr


def test_queue_list_json_into_head_prints_no_traceback(agent_config: Path, spool_dir: Path) -> None:
    """`queue list --json | head -1` ends quietly: no BrokenPipeError traceback on stderr."""
    _queue_rows(agent_config, spool_dir, 60)
    command = f"'{BIN / 'receipt-agent'}' queue list --json -c '{agent_config}' | head -1"

    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.stdout.strip() == "["
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr


def test_convert_of_a_missing_file_is_a_usage_error_without_traceback(agent_config: Path) -> None:
    """`convert --source till-1 /missing.json` exits 2 with one sentence naming the file."""
    result = cli("convert", "--source", "till-1", "/missing.json", "-c", str(agent_config))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "/missing.json: cannot read it (No such file or directory)" in result.stderr


def test_queue_retry_without_ids_is_a_usage_error_never_logged(
    agent_config: Path, tmp_path: Path
) -> None:
    """`queue retry` alone exits 2 with a hint on stderr and logs no `config.invalid`."""
    result = cli("queue", "retry", "-c", str(agent_config))

    assert result.returncode == 2
    assert "name receipt ids (from `queue list`) or give --all-rejected" in result.stderr
    assert "config.invalid" not in result.stderr
    log = tmp_path / "agent.log"
    assert not log.exists() or all(e["event"] != "config.invalid" for e in read_log(log))


@pytest.mark.parametrize("argv", [["--version"], ["run", "--version"], ["status", "--version"]])
def test_version_is_accepted_before_and_after_the_command(argv: list[str]) -> None:
    """`receipt-agent --version` and `receipt-agent run --version` both print the version."""
    result = cli(*argv)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("receipt-agent ")


def test_health_on_the_metrics_listener_is_json_with_the_status_verdict(
    make_agent_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox
) -> None:
    """1. `run` with metrics.listen; 2. GET /health: 200 {"status": "healthy"}.
    3. The API refuses every call and a receipt waits; GET /health and `status` agree.
    Result: /health is a small JSON document, not the metrics page; 503 when degraded.
    """
    port = free_port()
    config = make_agent_config(metrics={"listen": f"127.0.0.1:{port}"})
    agent = start_agent(config)
    try:
        url = f"http://127.0.0.1:{port}/health"

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(url, timeout=2)
            except httpx.TransportError:
                return None

        healthy = wait_for(answer, timeout=20)
        assert healthy.status_code == 200
        assert healthy.headers["content-type"] == "application/json"
        assert healthy.json()["status"] == "healthy"
        assert "receipt_agent_" not in healthy.text

        sandbox.set_faults(forbidden=True)
        drop(spool_dir, "a.json", [make_receipt(1)])
        degraded = wait_for(lambda: (r := answer()) is not None and r.status_code == 503 and r)
        document = degraded.json()
        assert document["status"] == "degraded"
        assert document["problems"]
        status = cli("status", "--json", "--max-age", "30m", "-c", str(config))
        assert status.returncode == 1
        assert orjson.loads(status.stdout)["healthy"] is False
        assert "receipt_agent_queue_pending" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        code, stderr = stop_agent(agent)
    assert code == 0, stderr


def test_debug_level_logs_settle_decisions_batch_sizes_and_retries(
    make_agent_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    """With `log.level: debug`, one file produces `spool.ready` and `batch.sending` lines.

    1. The sandbox fails the first POST with a 503. 2. run --once takes in one file of 3.
    Result: `spool.ready` names the file; `batch.sending` has receipts=3 with attempt 1,
    then attempt 2 for the retry; at `info` none of these lines appear.
    """
    sandbox.set_faults(fail_next=1)
    config = make_agent_config(
        log={"file": str(tmp_path / "agent.log"), "format": "json", "level": "debug"}
    )
    drop(spool_dir, "a.json", [make_receipt(i) for i in range(3)])
    os.utime(spool_dir / "a.json", (time.time() - 60, time.time() - 60))

    assert cli("run", "--once", "-c", str(config)).returncode == 0

    lines = read_log(tmp_path / "agent.log")
    ready = [e for e in lines if e["event"] == "spool.ready"]
    assert [(e["source"], e["file"]) for e in ready] == [("till-1", "a.json")]
    sending = [e for e in lines if e["event"] == "batch.sending"]
    assert [(e["receipts"], e["attempt"]) for e in sending] == [(3, 1), (3, 2)]
    assert all(e["level"] == "debug" for e in ready + sending)
