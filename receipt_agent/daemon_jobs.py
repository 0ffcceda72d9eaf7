"""The daemon's scheduled jobs, and which of them a SIGHUP reload schedules again.

The jobs: the flush (every `batch.flush_interval`, CONTRACT §2), `queue.backlog` once a
minute (§6), the metrics textfile, each report's `cron` and the reports' catch-up (§2
`reports`), and `reconcile.cron` once per source timezone (§7). The flush itself is the
agent's (it shares a counter with intake); it is handed in as a callable.

Adds and removes jobs on the scheduler the agent built; never starts or stops it (the agent
owns every thread, and shuts the scheduler down before the state store closes). Writes
nothing itself but the metrics textfile; each job's module owns its own writes.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from receipt_agent import scheduler, statedb
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig
from receipt_agent.metrics import AgentMetrics
from receipt_agent.reload import ConfigChanges

METRICS_JOB = "metrics"
METRICS_INTERVAL_S = 15.0


class DaemonJobs:
    """The job list of one daemon: `schedule()` at start, `reconfigure()` on a reload."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        db: statedb.StateDB,
        client: DinteroClient,
        metrics: AgentMetrics,
        stop_event: threading.Event,
        flush: Callable[[], None],
    ) -> None:
        self._config = config
        self._db = db
        self._client = client
        self._metrics = metrics
        self._stop_event = stop_event
        self._flush = flush
        self._token_refreshes_seen = 0
        self._log = structlog.get_logger("receipt_agent")

    def schedule(self, sched: Any) -> None:
        """Add every job of the running config to `sched`."""
        scheduler.add_interval_job(
            sched, scheduler.FLUSH_JOB, self._flush, self._config.batch.flush_interval,
            start_now=True,
        )  # fmt: skip
        scheduler.add_interval_job(
            sched, scheduler.BACKLOG_JOB, self._backlog, scheduler.BACKLOG_INTERVAL_S,
            start_now=False,
        )  # fmt: skip
        self._schedule_metrics(sched)
        self.schedule_reports(sched)
        self.schedule_reconcile(sched)

    def reconfigure(
        self, sched: Any, config: AgentConfig, client: DinteroClient, changes: ConfigChanges
    ) -> None:
        """SIGHUP: the new config and client; the jobs whose settings changed scheduled again.

        A job that runs now finishes as it began; its next run uses the new settings.
        """
        self._config, self._client = config, client
        if changes.has("batch"):
            scheduler.add_interval_job(
                sched, scheduler.FLUSH_JOB, self._flush, config.batch.flush_interval,
                start_now=True,
            )  # fmt: skip
        if changes.has("reports") or changes.has("dintero"):
            _remove_jobs(sched, "report:", "reports:")
            self.schedule_reports(sched)
        if changes.has("reconcile") or changes.has("sources"):  # zones come from sources
            _remove_jobs(sched, "reconcile:")
            self.schedule_reconcile(sched)
        if changes.has("metrics"):
            _remove_jobs(sched, METRICS_JOB)
            self._schedule_metrics(sched)

    def _schedule_metrics(self, sched: Any) -> None:
        if self._config.metrics.textfile is not None:
            scheduler.add_interval_job(
                sched, METRICS_JOB, self._write_metrics, METRICS_INTERVAL_S, start_now=True
            )

    def schedule_reconcile(self, sched: Any) -> None:
        """`reconcile.cron` in each source's timezone: one job per zone (CONTRACT §2, §7)."""
        settings = self._config.reconcile
        if settings is None or not settings.cron:
            return
        for zone in sorted({source.timezone for source in self._config.sources}):
            scheduler.add_cron_job(
                sched, f"reconcile:{zone}", functools.partial(self._reconcile, zone),
                settings.cron, zone,
            )  # fmt: skip

    def _reconcile(self, zone: str) -> None:
        from receipt_agent import reconcile

        results = reconcile.run_daily(
            self._config, self._db, self._client, stop=self._stop_event, timezone=zone
        )
        for result in results:
            self._metrics.reconciled(result["source"], result["result"], result["gaps"])

    def schedule_reports(self, sched: Any) -> None:
        """Each report's `cron` in its timezone, and one catch-up run at once."""
        if not self._config.reports:
            return
        from receipt_agent.reports.runner import ReportRunner

        runner = ReportRunner(self._config, self._client, self._db, stop_event=self._stop_event)
        for report in self._config.reports:
            if report.cron:
                scheduler.add_cron_job(
                    sched, f"report:{report.name}", functools.partial(runner.run_scheduled, report),
                    report.cron, report.timezone,
                )  # fmt: skip
        sched.add_job(scheduler.guarded("reports:catch-up", runner.catch_up), id="reports:catch-up")

    def _backlog(self) -> None:
        pending, oldest_age_s = self.update_queue_metrics()
        if pending:
            self._log.info("queue.backlog", pending=pending, oldest_age_s=oldest_age_s)

    def update_queue_metrics(self) -> tuple[int, float | None]:
        """Set the queue gauges and count new token refreshes; return (pending, oldest age)."""
        pending = self._db.pending_count()
        oldest = self._db.oldest_pending_created_at()
        oldest_age_s = None if oldest is None else round(max(0.0, time.time() - oldest), 1)
        self._metrics.set_queue(pending, oldest_age_s)
        refreshes = self._client.token_refreshes
        for _ in range(refreshes - self._token_refreshes_seen):
            self._metrics.token_refreshed()
        self._token_refreshes_seen = refreshes
        return pending, oldest_age_s

    def _write_metrics(self) -> None:
        if self._config.metrics.textfile is not None:
            self._metrics.write_textfile(self._config.metrics.textfile)


def _remove_jobs(sched: Any, *prefixes: str) -> None:
    for job in sched.get_jobs():
        if job.id.startswith(prefixes):
            job.remove()
