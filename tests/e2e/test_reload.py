"""SIGHUP re-reads the config under a running daemon (CONTRACT §1, §6; issue 16)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import (
    ACCOUNT,
    base_config,
    drop,
    events,
    make_receipt,
    start_agent,
    stop_agent,
    wait_until,
)

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def config_of(
    tmp_path: Path, sandbox: Sandbox, spool_dir: Path, secret_file: Path
) -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        return base_config(
            base_url=sandbox.base_url, spool_dir=spool_dir, state_dir=tmp_path / "state",
            secret_file=secret_file, log_file=tmp_path / "agent.log", **overrides,
        )  # fmt: skip

    return make


def _write(path: Path, config: dict[str, Any]) -> None:
    """Replace the config file whole, as an editor or config management would."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    temporary.replace(path)


def _started(request: Any) -> datetime:
    return request.at - timedelta(milliseconds=request.duration_ms)


def test_sighup_adds_a_source_and_changes_the_batch_size_without_losing_anything(
    config_of: Callable[..., dict[str, Any]],
    tmp_path: Path,
    spool_dir: Path,
    sandbox: Sandbox,
) -> None:
    """1. `run` with till-1 and batch.max_receipts 100; 300 receipts in till-1 going out
    through a slow API (batches in flight). 2. The config gains till-2 and
    max_receipts 7; SIGHUP. 3. 20 receipts dropped in till-2. 4. A broken config; SIGHUP.
    5. 5 more receipts in till-2.
    Result: `config.reloaded` names sources and batch with till-2 added; all 325 receipts
    reach the sandbox once; every POST begun after the reload holds at most 7; the broken
    config is refused with `config.invalid` naming the key, and the daemon goes on; exit 0.
    """
    sandbox.set_faults(delay_s=0.05)
    config_path = tmp_path / "config.yaml"
    config = config_of()
    _write(config_path, config)
    log = tmp_path / "agent.log"
    till_2 = tmp_path / "till-2"
    till_2.mkdir()
    process = start_agent(config_path)
    try:
        wait_until(lambda: events(log, "agent.started"), timeout=20)
        for part in range(3):
            receipts = [make_receipt(100 * part + i) for i in range(100)]
            drop(spool_dir, f"part-{part}.json", receipts)
        wait_until(lambda: sandbox.receipt_ids(ACCOUNT), timeout=20)  # sending has begun

        config["sources"].append(
            dict(config["sources"][0], name="till-2", path=str(till_2), store={"id": "sc030"})
        )
        config["batch"]["max_receipts"] = 7
        _write(config_path, config)
        process.send_signal(signal.SIGHUP)
        reloaded = wait_until(lambda: events(log, "config.reloaded"), timeout=20)[0]
        assert reloaded["changed"] == ["sources", "batch"]
        assert reloaded["sources_added"] == ["till-2"]
        assert reloaded["sources_removed"] == reloaded["sources_changed"] == []
        drop(till_2, "new.json", [make_receipt(1000 + i, store_id="sc030") for i in range(20)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 320, timeout=30)

        broken = dict(config, batch={"max_receipts": 5, "flush_intervall": "1s"})
        _write(config_path, broken)
        process.send_signal(signal.SIGHUP)
        invalid = wait_until(lambda: events(log, "config.invalid"), timeout=20)[0]
        assert any(p.startswith("batch.flush_intervall: unknown key") for p in invalid["problems"])
        drop(till_2, "after.json", [make_receipt(2000 + i, store_id="sc030") for i in range(5)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 325, timeout=30)
        assert process.poll() is None
    finally:
        code, stderr = stop_agent(process)
    assert code == 0, stderr
    ids = sandbox.receipt_ids(ACCOUNT)
    assert len(ids) == len(set(ids)) == 325
    assert len(events(log, "config.reloaded")) == 1
    reload_at = datetime.fromisoformat(reloaded["timestamp"].replace("Z", "+00:00"))
    later = [
        r for r in sandbox.requests
        if r.path.endswith("/receipts") and r.receipts and _started(r) > reload_at
    ]  # fmt: skip
    assert later, "no POST after the reload"
    assert max(r.receipts for r in later) <= 7


def test_sighup_changes_the_log_level_and_refuses_a_state_dir_move(
    config_of: Callable[..., dict[str, Any]],
    tmp_path: Path,
    spool_dir: Path,
    sandbox: Sandbox,
) -> None:
    """1. `run` at log.level info. 2. log.level debug; SIGHUP; a file dropped.
    3. state_dir moved; SIGHUP.
    Result: `config.reloaded` changed [log]; the file's `spool.ready` debug line appears;
    the move is refused as `config.invalid` naming state_dir; the daemon goes on.
    """
    config_path = tmp_path / "config.yaml"
    config = config_of()
    _write(config_path, config)
    log = tmp_path / "agent.log"
    process = start_agent(config_path)
    try:
        wait_until(lambda: events(log, "agent.started"), timeout=20)
        config["log"]["level"] = "debug"
        _write(config_path, config)
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: events(log, "config.reloaded"))[0]["changed"] == ["log"]
        drop(spool_dir, "a.json", [make_receipt(1)])
        wait_until(lambda: events(log, "spool.ready"))
        wait_until(lambda: sandbox.receipt_ids(ACCOUNT) == ["R000001"])

        _write(config_path, dict(config, state_dir=str(tmp_path / "elsewhere")))
        process.send_signal(signal.SIGHUP)
        invalid = wait_until(lambda: events(log, "config.invalid"))[0]
        assert invalid["problems"][0].startswith("state_dir: cannot change while the agent runs")
        assert process.poll() is None
    finally:
        code, stderr = stop_agent(process)
    assert code == 0, stderr
    assert not (tmp_path / "elsewhere").exists()
