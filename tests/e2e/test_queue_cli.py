"""Operator commands through the installed CLI: status, queue, convert, sandbox, check-config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr
from support import ACCOUNT, BIN, SECRET, cli, drop, make_receipt, report_entry, wait_until

from receipt_agent.agent import Agent
from receipt_agent.config import load_config
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

pytestmark = pytest.mark.e2e


def test_queue_retry_sends_a_receipt_the_api_refused_once_it_accepts_it(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """A dead letter from an API refusal goes back to pending with `queue retry` and is sent.

    1. The sandbox refuses R000003. 2. run --once: it is `rejected`. 3. The refusal is
    lifted; `queue retry --all-rejected`; run --once.
    Result: all 5 at the sandbox; nothing rejected.
    """
    sandbox.set_faults(refuse_receipt_id="^R000003$")
    drop(spool_dir, "a.json", [make_receipt(i) for i in range(5)])
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 3  # a rejection
    rejected = orjson.loads(
        cli("queue", "list", "--state", "rejected", "--json", "-c", str(agent_config)).stdout
    )
    assert [row["receipt_id"] for row in rejected] == ["R000003"]

    sandbox.clear_faults()
    retry = cli("queue", "retry", "--all-rejected", "-c", str(agent_config))
    assert retry.returncode == 0
    assert "1 receipts moved back to pending" in retry.stdout
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0
    assert len(sandbox.receipt_ids(ACCOUNT)) == 5
    status = orjson.loads(cli("status", "--json", "-c", str(agent_config)).stdout)
    assert status["counts"] == {"pending": 0, "sent": 5, "rejected": 0}
    assert status["healthy"] is True


def test_queue_retry_of_receipt_invalid_at_intake_explains_why_not(
    agent_config: Path, spool_dir: Path
) -> None:
    """Receipts invalid in the export are not retried; the CLI says to fix the export."""
    drop(spool_dir, "a.json", [make_receipt(1, currency="kroner")])
    cli("run", "--once", "-c", str(agent_config))
    result = cli("queue", "retry", "--all-rejected", "-c", str(agent_config))
    assert "0 receipts moved back" in result.stdout
    assert "fix the export" in result.stderr


def test_queue_purge_removes_only_old_sent_rows(
    agent_config: Path, spool_dir: Path, state_dir: Path
) -> None:
    """`queue purge --state sent --older-than 7d` deletes only sent rows older than 7 days."""
    drop(spool_dir, "a.json", [make_receipt(i) for i in range(4)])
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0
    db = StateDB(state_dir / "state.db")
    with db.transaction() as tx:
        tx.execute(
            "UPDATE receipts SET updated_at = updated_at - 8 * 86400 WHERE receipt_id < 'R000002'"
        )
    db.close()
    result = cli("queue", "purge", "--state", "sent", "--older-than", "7d", "-c", str(agent_config))
    assert result.stdout.strip() == "2 sent receipts purged"
    assert (
        cli(
            "queue", "purge", "--state", "pending", "--older-than", "1d", "-c", str(agent_config)
        ).returncode
        == 2
    )


def test_status_text_shows_counts_and_health(agent_config: Path, spool_dir: Path) -> None:
    """`status` without --json prints a readable table and the health verdict."""
    drop(spool_dir, "a.json", [make_receipt(1)])
    cli("run", "--once", "-c", str(agent_config))
    result = cli("status", "-c", str(agent_config))
    assert result.returncode == 0
    assert "till-1" in result.stdout
    assert "healthy" in result.stdout


def test_convert_prints_mapped_receipts_and_errors_without_sending(
    agent_config: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """`convert` shows the Dintero JSON for good receipts and a readable error for bad ones."""
    export = tmp_path / "export.json"
    export.write_bytes(orjson.dumps([make_receipt(1), make_receipt(2, currency="kroner")]))
    result = cli("convert", "--source", "till-1", str(export), "-c", str(agent_config))
    assert result.returncode == 1
    receipts = orjson.loads(result.stdout)
    assert [r["receipt_id"] for r in receipts] == ["R000001"]
    assert receipts[0]["store"] == {"id": "sc029", "name": "SC Oslo"}
    assert "invalid sc029/R000002" in result.stderr
    assert "currency" in result.stderr
    assert sandbox.requests == []


def test_sandbox_command_passes_fault_flags_to_the_sandbox(tmp_path: Path) -> None:
    """`receipt-agent sandbox` takes the sandbox's own flags: port file and fault switches."""
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [str(BIN / "receipt-agent"), "sandbox", "--port", "0", "--port-file", str(port_file),
         "--error-rate", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text().strip())
        stats = httpx.get(f"http://127.0.0.1:{port_file.read_text().strip()}/_sandbox/stats")
        assert stats.json()["faults"]["error_rate"] == 1.0
    finally:
        process.terminate()
        process.wait(10)


def test_check_config_reports_a_report_cron_it_cannot_schedule(
    make_agent_config: Callable[..., Path],
) -> None:
    """A crontab line with a day of week of 9 is named as `reports[0].cron`, exit 2."""
    config = make_agent_config(reports=[report_entry(cron="0 6 * * 9")])
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 2
    assert "reports[0].cron: day of week 9 is out of range" in result.stderr


def test_agent_restart_restores_the_last_success_gauge(
    make_agent_config: Callable[..., Path], state_dir: Path
) -> None:
    """After a restart the last-success metric shows the stored time, not 0."""
    db = StateDB(state_dir / "state.db")
    db.mark_sent([], now=1_790_000_000.0)
    db.close()
    config = load_config(make_agent_config())
    agent = Agent(config, SecretStr(SECRET))
    agent._open()
    try:
        assert b"receipt_agent_last_success_timestamp_seconds 1.79e+09" in agent.metrics.render()
    finally:
        agent._close()
