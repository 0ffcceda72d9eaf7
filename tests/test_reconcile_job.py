"""The daily reconciliation job (`reconcile.cron`), its metric, and `status` (CONTRACT §1, §7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import time_machine
from pydantic import SecretStr
from saft_exports import DAY, saft, saft_source, sale
from structlog.testing import capture_logs
from support import SECRET, cli, wait_until

from receipt_agent import scheduler
from receipt_agent.agent import Agent
from receipt_agent.config import load_config
from receipt_agent.daemon_jobs import DaemonJobs
from receipt_agent.reconcile_core import DayInput, Row, reconcile_day

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture
def job_config(make_agent_config: Callable[..., Path], spool_dir: Path) -> Path:
    """One SAF-T source with the daily reconciliation at 05:30 (Oslo), no remote check."""
    return make_agent_config(
        sources=[saft_source(spool_dir)], reconcile={"cron": "30 5 * * *", "remote": "none"}
    )


def _status(config: Path) -> tuple[int, dict[str, Any]]:
    result = cli("status", "-c", str(config), "--json")
    return result.returncode, orjson.loads(result.stdout)


def test_daily_job_runs_at_reconcile_cron_and_status_is_degraded_until_a_complete_run(
    job_config: Path, spool_dir: Path
) -> None:
    """The job fires at 05:30 Oslo, reconciles yesterday, logs reconcile.mismatch with the
    contract's keys, counts the day and its gap, and `status` stays degraded until a later
    run is complete.

    1. Take in receipts 1, 2 and 4 of 2026-03-02 (`run --once`).
    2. The clock (time-machine, ticking) at 05:29:58.5 on 2026-03-03 in Oslo; the agent's
       own job list (DaemonJobs) adds the job to a real scheduler, which fires it.
    3. `status --json`: exit 1, the problem names the reconciliation.
    4. Receipt 3 arrives in another file; `reconcile --date` by hand is complete.
    Result: status exits 0 again.
    """
    (spool_dir / "day.xml").write_bytes(saft([sale(1), sale(2), sale(4)]))
    assert cli("run", "--once", "-c", str(job_config)).returncode == 0
    agent = Agent(load_config(job_config), SecretStr(SECRET))
    agent._open()  # the state store and client as `run` opens them, without the daemon loop
    sched = scheduler.build_scheduler()
    with (
        capture_logs() as logs,
        time_machine.travel(datetime(2026, 3, 3, 5, 29, 58, 500_000, tzinfo=OSLO), tick=True),
    ):
        DaemonJobs(
            agent.config, db=agent.db, client=agent.client, metrics=agent.metrics,
            stop_event=agent.stop_event, flush=lambda: None,
        ).schedule_reconcile(sched)  # fmt: skip
        sched.start()
        try:
            assert agent.db.meta().get("reconcile_result") is None
            wait_until(lambda: agent.db.meta().get("reconcile_result") == "mismatch")
        finally:
            sched.shutdown(wait=True)
            agent._close()
    (line,) = [entry for entry in logs if entry["event"] == "reconcile.mismatch"]
    assert line["log_level"] == "warning"
    assert {key: line[key] for key in ("date", "source", "store_id", "register", "gaps")} == {
        "date": DAY, "source": "till", "store_id": "sc029", "register": "K1", "gaps": 1,
    }  # fmt: skip
    assert line["result"] == "mismatch"
    assert line["mismatches"] == 0
    metrics = agent.metrics.render().decode()
    assert 'receipt_agent_reconcile_mismatch_days_total{source="till"} 1.0' in metrics
    assert 'receipt_agent_reconcile_gaps_total{source="till"} 1.0' in metrics

    code, status = _status(job_config)
    assert code == 1
    assert any("reconciliation" in problem for problem in status["problems"])

    (spool_dir / "late.xml").write_bytes(saft([sale(3)]))
    assert cli("run", "--once", "-c", str(job_config)).returncode == 0
    assert cli("reconcile", "-c", str(job_config), "--date", DAY).returncode == 0
    assert _status(job_config)[0] == 0


def _row(number: str, *, day_content: str = "a", outcome: str = "receipt") -> Row:
    return Row(
        store_id="s", register="1", number=number, numbered=True, outcome=outcome,
        receipt_id=f"s-1-{number}", amount_minor=100, figures={}, content=day_content,
        state="pending",
    )  # fmt: skip


def test_core_names_a_hole_at_the_turn_of_the_day_and_not_a_reset() -> None:
    """Numbers 1–5 yesterday and 8–9 today: 6–7 are missing today; a register that starts
    again at 1 today (a per-day numbering) has no gap."""
    history = [(str(n), "2026-03-01") for n in range(1, 6)] + [("8", DAY), ("9", DAY)]
    day = DayInput(source="t", date=DAY, format_name="saft-cashregister",
                   rows=[_row("8"), _row("9")], history={("s", "1"): history})  # fmt: skip
    (result,) = reconcile_day(day)
    assert (result["gaps"], result["numbering"]["missing"]) == (2, ["6–7"])

    reset = [(str(n), "2026-03-01") for n in range(1, 6)] + [("1", DAY), ("2", DAY)]
    day = DayInput(source="t", date=DAY, format_name="saft-cashregister",
                   rows=[_row("1"), _row("2")], history={("s", "1"): reset})  # fmt: skip
    assert reconcile_day(day)[0]["gaps"] == 0


def test_core_names_a_number_seen_with_two_contents_but_not_a_corrected_rejection() -> None:
    """The same number with two different receipts is a mismatch; a rejected receipt that
    came back corrected under the same number is not."""
    history = [("1", DAY)]
    twice = DayInput(source="t", date=DAY, format_name="csv",
                     rows=[_row("1", day_content="a"), _row("1", day_content="b")],
                     history={("s", "1"): history})  # fmt: skip
    (result,) = reconcile_day(twice)
    assert (result["result"], result["conflicts"]) == ("mismatch", ["1"])

    corrected = DayInput(source="t", date=DAY, format_name="csv",
                         rows=[_row("1", day_content="a", outcome="rejected"),
                               _row("1", day_content="b")],
                         history={("s", "1"): history})  # fmt: skip
    assert reconcile_day(corrected)[0]["result"] == "complete"


def test_core_reports_counts_only_for_a_format_without_numbers() -> None:
    """Dintero JSON receipts have no till number: counted, and the output says numbering
    and control totals could not be checked."""
    row = Row(store_id="s", register="", number="r-1", numbered=False, outcome="receipt",
              receipt_id="r-1", amount_minor=500, figures={}, content="c",
              state="sent")  # fmt: skip
    (result,) = reconcile_day(DayInput(source="t", date=DAY, format_name="dintero-json",
                                       rows=[row]))  # fmt: skip
    assert result["result"] == "complete"
    assert (result["counts"]["receipt"], result["counts"]["sent"]) == (1, 1)
    assert result["sums_minor"]["sent"] == 500
    assert any(line.startswith("numbering:") for line in result["unchecked"])
    assert "control totals: dintero-json exports carry none" in result["unchecked"]


def test_migration_of_a_version_1_state_store_keeps_every_row(tmp_path: Path) -> None:
    """A state store written before reconciliation existed opens with its receipts, files and
    meta intact, at the current schema version, and reconcile can record into it."""
    import sqlite3

    from receipt_agent import statedb, statedb_schema

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript(statedb_schema.MIGRATIONS[0])
    conn.execute(
        "INSERT INTO receipts (source, store_id, receipt_id, state, payload, size_bytes, "
        "created_at, updated_at) VALUES ('till', 'sc029', 'r-1', 'pending', x'7b7d', 2, 1, 1)"
    )
    conn.execute("INSERT INTO files VALUES ('d1', 'till', 'a.json', 1, 1, 0)")
    conn.execute("INSERT INTO meta VALUES ('last_success_at', '5')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    db = statedb.StateDB(path)
    try:
        assert db.counts()["pending"] == 1
        assert db.has_file("d1")
        assert db.meta()["last_success_at"] == "5"
        with db.reading() as reader:
            assert reader.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA_VERSION
            assert reader.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    finally:
        db.close()


def test_recorded_verdict_of_one_source_never_clears_another_sources_mismatch(
    tmp_path: Path,
) -> None:
    """1. Source a and b reconcile: b has a mismatch → status verdict mismatch.
    2. A by-hand run of source a alone is complete → still mismatch (b is not re-checked).
    3. Source b is complete later → the verdict clears."""
    from receipt_agent import ledger_store, statedb

    def result(source: str, verdict: str) -> dict[str, Any]:
        return {"source": source, "store_id": "s", "register": "1", "date": "2026-01-15",
                "result": verdict, "gaps": 0, "mismatches": int(verdict != "complete")}  # fmt: skip

    db = statedb.StateDB(tmp_path / "state.db")
    try:
        ledger_store.record_result(db, [result("a", "complete"), result("b", "mismatch")], now=1)
        assert db.meta()["reconcile_result"] == "mismatch"
        ledger_store.record_result(db, [result("a", "complete")], now=2)
        assert db.meta()["reconcile_result"] == "mismatch"
        ledger_store.record_result(db, [result("b", "complete")], now=3)
        assert db.meta()["reconcile_result"] == "complete"
    finally:
        db.close()
