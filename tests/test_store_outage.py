"""A state store that refuses writes pauses intake once and loses no file (CONTRACT §3).

A full state disk fails SQLite at the COMMIT (the WAL frames are written then), after
every file of the group commit was read into its savepoint. ENOSPC cannot be produced
here without root (a size-limited tmpfs needs CAP_SYS_ADMIN; the reliability test
tests/reliability/test_disk_full.py mounts one where it can), so the one substitute is
at that line: the daemon's real SQLite connections answer `COMMIT` with SQLite's own
"database or disk is full" while the test says the disk is full, and roll back for real.
Everything else is real: files, the watchdog observer, the sandbox over loopback.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import ACCOUNT, base_config, drop, events, make_receipt, wait_until

from receipt_agent import intake_worker
from receipt_agent.agent import Agent
from receipt_agent.sandbox import Sandbox

RETRY_S = 1.0  # STORE_RETRY_S for these tests: the cadence is what is checked, not 5 s


class _Disk:
    """The state disk as the daemon's SQLite connections see it: full or not."""

    def __init__(self) -> None:
        self.full = threading.Event()
        self.refused_lock = threading.Lock()
        self.refused_intake: list[float] = []  # monotonic times of the intake's refused commits
        self.refuse_next_intake = 0  # refuse this many intake commits, then have room again


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Disk:
    """Make the state store's COMMIT fail as on a full disk while `disk.full` is set."""
    state = _Disk()
    real_connect = sqlite3.connect

    class _FullDiskConnection(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if sql == "COMMIT" and self._is_full():
                raise sqlite3.OperationalError("database or disk is full")
            return super().execute(sql, *args)

        def _is_full(self) -> bool:
            intake = threading.current_thread().name == "intake"
            with state.refused_lock:
                if intake and state.refuse_next_intake > 0:
                    state.refuse_next_intake -= 1
                    state.refused_intake.append(time.monotonic())
                    return True
                if state.full.is_set():
                    if intake:
                        state.refused_intake.append(time.monotonic())
                    return True
            return False

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if str(database).startswith(str(tmp_path / "state")):
            kwargs["factory"] = _FullDiskConnection
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(intake_worker, "STORE_RETRY_S", RETRY_S)
    return state


@pytest.fixture
def config_raw(tmp_path: Path, sandbox: Sandbox, secret_file: Path) -> dict[str, Any]:
    """One dintero-json source sending to the sandbox; its spool folder exists."""
    (tmp_path / "spool").mkdir()
    return base_config(
        base_url=sandbox.base_url, spool_dir=tmp_path / "spool", state_dir=tmp_path / "state",
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip


def _drop_old(spool: Path, name: str, receipts: list[dict[str, Any]]) -> None:
    """A till's export written a minute ago: settled, never held back for a late append."""
    path = drop(spool, name, receipts)
    past = time.time() - 60
    os.utime(path, (past, past))


def test_intake_with_a_full_state_disk_pauses_once_retries_at_its_pace_and_resumes_once(
    tmp_path: Path, disk: _Disk, sandbox: Sandbox, config_raw: dict[str, Any],
    run_agent: Callable[..., Agent],
) -> None:  # fmt: skip
    """While the disk is full the log shows one `intake.paused`, then one `intake.resumed`.

    1. Daemon running; the state disk fills; 5 files of 20 receipts dropped, then 5 more
       once intake is paused (each drop wakes the watcher).
    Result: one `intake.paused` (error), no `intake.resumed`; intake tries the store at
    most once per retry interval, however often the watcher wakes it; spool untouched.
    2. Space returns.
    Result: one `intake.resumed`; all 200 receipts at the sandbox within a few retry
    intervals; spool empty; no `intake.failed`.
    """
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    run_agent(config_raw)
    wait_until(lambda: events(log, "agent.started"))
    disk.full.set()
    names = [f"a-{n:03d}.json" for n in range(10)]
    for number, name in enumerate(names[:5]):
        drop(spool, name, [make_receipt(number * 100 + i) for i in range(20)])
    wait_until(lambda: events(log, "intake.paused"))
    for number, name in enumerate(names[5:], start=5):  # each one wakes the intake thread
        drop(spool, name, [make_receipt(number * 100 + i) for i in range(20)])
    wait_until(lambda: len(disk.refused_intake) >= 3, timeout=10 * RETRY_S)
    assert sorted(p.name for p in spool.iterdir()) == names
    assert len(events(log, "intake.paused")) == 1
    assert events(log, "intake.resumed") == []
    with disk.refused_lock:
        attempts = list(disk.refused_intake)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.9 * RETRY_S, gaps  # one try per interval, not one per wake-up

    disk.full.clear()
    freed_at = time.monotonic()
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 200, timeout=5 * RETRY_S + 10)
    wait_until(lambda: list(spool.iterdir()) == [], timeout=10)
    assert time.monotonic() - freed_at < 5 * RETRY_S + 10
    paused, resumed = events(log, "intake.paused"), events(log, "intake.resumed")
    assert len(paused) == 1
    assert paused[0]["level"] == "error"
    assert "database or disk is full" in paused[0]["error"]
    assert len(resumed) == 1
    assert resumed[0]["paused_s"] >= RETRY_S
    assert events(log, "intake.failed") == []


def test_intake_whose_first_group_commit_is_refused_takes_every_file_in_at_the_retry(
    tmp_path: Path, disk: _Disk, sandbox: Sandbox, config_raw: dict[str, Any],
    run_agent: Callable[..., Agent],
) -> None:  # fmt: skip
    """Files of a refused group commit are taken in at the next retry, not the next rescan.

    1. 80 settled files (more than one group commit of 64) wait in the spool; the disk
       has no room for the first group's commit, and room again right after it.
    Result: `intake.paused` for the refused group, then `intake.resumed`; every file's
    receipt at the sandbox within a few retry intervals (the minute-long rescan would
    be the only other chance); spool empty; one paused/resumed pair.
    """
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    for number in range(80):
        _drop_old(spool, f"b-{number:03d}.json", [make_receipt(number)])
    disk.refuse_next_intake = 1
    run_agent(config_raw)
    wait_until(lambda: events(log, "intake.paused"))
    paused_at = time.monotonic()
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 80, timeout=5 * RETRY_S + 10)
    wait_until(lambda: list(spool.iterdir()) == [], timeout=10)
    assert time.monotonic() - paused_at < 5 * RETRY_S + 10
    assert len(events(log, "intake.paused")) == 1
    assert len(events(log, "intake.resumed")) == 1
    assert len(events(log, "file.accepted")) == 80
    assert events(log, "intake.failed") == []
