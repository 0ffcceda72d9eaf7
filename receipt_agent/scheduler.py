"""The APScheduler 3.x scheduler: triggers and job defaults, no job logic.

Every job gets explicit `coalesce=True` (missed runs collapse into one),
`max_instances=1` (a job never overlaps itself: one flush at a time) and a
`misfire_grace_time`. Jobs are callables handed in by the agent; each one must catch and
log its own exceptions (huey's rule), which `guarded` does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from receipt_agent.cron import crontab_trigger

FLUSH_JOB = "flush"
BACKLOG_JOB = "backlog"
# `queue.backlog` once a minute (CONTRACT §6). RECEIPT_AGENT_TEST_BACKLOG_INTERVAL_S exists
# only so tests/reliability/test_outage.py can see several lines in seconds, not minutes; it
# is not configuration and operators have no reason to set it.
BACKLOG_INTERVAL_S = float(os.environ.get("RECEIPT_AGENT_TEST_BACKLOG_INTERVAL_S") or 60.0)


def build_scheduler() -> Any:
    """Return an unstarted BackgroundScheduler in UTC with the project's job defaults."""
    # APScheduler is imported by the daemon only: `run --once` uses `guarded` alone.
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )


class _RunningJobs:
    """How many guarded jobs are running now, so a drain can wait for them (bounded)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def wait_idle(self, timeout_s: float) -> bool:
        """Return True once no guarded job runs, False if one still runs after `timeout_s`."""
        with self.changed:
            return self.changed.wait_for(lambda: self.count == 0, timeout=timeout_s)


RUNNING_JOBS = _RunningJobs()


def guarded(name: str, func: Callable[[], object]) -> Callable[[], None]:
    """Wrap a job so an exception is logged with its traceback and the job runs again.

    Running jobs are counted in RUNNING_JOBS: the scheduler's shutdown(wait=False) does not
    stop a job that already runs, and the state store must not close under it.
    """

    def run() -> None:
        with RUNNING_JOBS.changed:
            RUNNING_JOBS.count += 1
        try:
            func()
        except Exception:  # noqa: BLE001 - a job boundary: log and keep the scheduler alive
            structlog.get_logger("receipt_agent").exception("job.failed", job=name)
        finally:
            with RUNNING_JOBS.changed:
                RUNNING_JOBS.count -= 1
                RUNNING_JOBS.changed.notify_all()

    return run


def add_interval_job(
    scheduler: Any, name: str, func: Callable[[], object], seconds: float, *, start_now: bool
) -> None:
    """Run `func` every `seconds`; first run at once when `start_now`."""
    from apscheduler.triggers.interval import IntervalTrigger

    first_run = {"next_run_time": datetime.now(UTC)} if start_now else {}
    scheduler.add_job(
        guarded(name, func),
        IntervalTrigger(seconds=max(seconds, 0.05)),
        id=name,
        name=name,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, int(seconds)),
        replace_existing=True,
        **first_run,
    )


def add_cron_job(
    scheduler: Any, name: str, func: Callable[[], object], cron: str, timezone: str
) -> None:
    """Run `func` on a crontab line in `timezone` (crontab weekdays; DST by APScheduler)."""
    scheduler.add_job(
        guarded(name, func),
        crontab_trigger(cron, timezone),
        id=name,
        name=name,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
        replace_existing=True,
    )


def run_soon(scheduler: Any, name: str) -> None:
    """Ask for the job `name` to run now (coalesced with a run already due)."""
    job = scheduler.get_job(name)
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))
