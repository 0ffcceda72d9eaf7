"""The daemon's lifecycle for `run` and `run --once` (CONTRACT §1; the uvicorn shape).

start → (lock the state dir, open the state store, start observers, intake thread,
scheduler, metrics; sd_notify READY=1; `agent.started`) → tick loop on the main thread
(SIGHUP: log reopen and config reload, `config.reloaded`; watchdog pings, STATUS=)
→ drain (`agent.stopping`: no new files, the file in hand finished, the batch in flight
acknowledged or left pending, bounded by DRAIN_TIMEOUT_S) → `agent.stopped`.

Signal handlers only set flags; a second SIGTERM/SIGINT ends the drain at once (not
drained, exit 1) and the cli exits hard: its one forced exit.

Owns every thread: the intake worker (and run --once's pass), the watchdog observers,
the APScheduler pool and the metrics listener. Every thread's top loop catches, logs and continues.

Taking files in (the per-file boundary, the intake thread's loop) is `intake_worker`'s;
the scheduled jobs (and which of them a reload schedules again) are `daemon_jobs`'; what
a reload may change and what changed is `reload`'s; applying it is here.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from pydantic import SecretStr

from receipt_agent import (
    logs,
    reload,
    scheduler,
    spool,
    spool_watch,
    statedb,
    statedb_locks,
    systemd,
)
from receipt_agent.api import DinteroClient
from receipt_agent.config import MAX_CONCURRENCY, AgentConfig
from receipt_agent.daemon_jobs import DaemonJobs
from receipt_agent.intake_group import GroupCommit
from receipt_agent.intake_record import FileOutcome
from receipt_agent.intake_worker import RESCAN_INTERVAL_S, IntakeWorker
from receipt_agent.metrics import AgentMetrics, HealthCheck
from receipt_agent.once_report import OnceSummary
from receipt_agent.sender import Sender

DRAIN_TIMEOUT_S = 30.0  # systemd's TimeoutStopSec must be larger
TICK_S = 0.5
EXIT_OK, EXIT_FAILED = 0, 1


class Agent:
    """One receipt-agent process: `run()` for the daemon, `run_once()` for one pass."""

    def __init__(
        self,
        config: AgentConfig,
        client_secret: SecretStr,
        *,
        health: HealthCheck | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self._config_path = config_path  # re-read on SIGHUP (None: SIGHUP only reopens logs)
        self._observers: list[Any] = []
        self._retired_clients: list[DinteroClient] = []  # replaced by a reload; closed at exit
        self._health = health  # what GET /health on the metrics listener answers
        self._secret = client_secret
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._hup = threading.Event()
        self._forced = threading.Event()  # a second SIGTERM/SIGINT: stop waiting, exit hard
        self._log = structlog.get_logger("receipt_agent")
        self.metrics = AgentMetrics(sources=[source.name for source in config.sources])
        self._scheduler: Any = None  # set once the daemon's scheduler exists
        self._watcher: spool_watch.SpoolWatcher | None = None  # the daemon's folder watches
        self.once_summary: OnceSummary | None = None  # what `run --once` did, for the CLI
        # False after a drain cut short by its bound or a second signal (cli exits hard).
        self.drained = True

    # --- shared set-up -------------------------------------------------------------------

    def _open(self) -> None:
        self._lock = statedb_locks.lock_dir(self.config.state_dir)
        self.db = statedb.StateDB(self.config.db_path)
        self.client = DinteroClient(self.config.dintero, self._secret)
        # The send slots (batch.concurrency, CONTRACT §2). Threads start only when a batch
        # is handed over (none at concurrency 1); sized to the cap so a reload may raise it.
        self._send_pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENCY, thread_name_prefix="send")
        self.sender = Sender(
            self.db, self.client, self.config, observer=self.metrics, executor=self._send_pool
        )
        self._intake = IntakeWorker(
            self.config, self.db, self.metrics, request_flush=self._flush_soon
        )
        last_success = self.db.meta().get("last_success_at")
        if last_success is not None:  # the gauge survives restarts
            self.metrics.last_success(float(last_success))

    def _close(self) -> None:
        # After a drain that timed out the cli exits hard; never wait for a hung POST here.
        self._send_pool.shutdown(wait=self.drained, cancel_futures=True)
        for client in [*self._retired_clients, self.client]:
            client.close()
        if self.drained:  # else a thread may still use a connection; the process exits hard
            self.db.close()
        self._lock.close()
        gc.unfreeze()  # see _freeze_start_up

    # --- run --once ------------------------------------------------------------------------

    def run_once(self) -> int:
        """Take in every ready file, send everything pending, and return the exit code.

        0 when everything was taken in and delivered; 1 when receipts stay pending (or the
        state store refused a file); 3 when something needs a person (CONTRACT §1). The
        summary line is left in `self.once_summary` for the CLI to print.
        """
        self._open()
        _freeze_start_up()
        self._intake.once = True
        summary = self.once_summary = OnceSummary()
        try:
            with self._signal_handlers():
                # The pass runs on a thread of its own so that a second signal, seen here,
                # ends the wait even while a POST of the pass hangs (the cli then exits hard).
                return self._until_forced(functools.partial(self._once_pass, summary))
        finally:
            self._close()

    def _until_forced(self, work: Callable[[], int]) -> int:
        """Run `work` on a thread; return its result, or EXIT_FAILED (not drained) when a
        second signal comes first. An exception of `work` is raised here."""
        done, outcome = threading.Event(), list[Any]()

        def run() -> None:
            try:
                outcome.append(work())
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=run, name="once", daemon=True).start()
        while not done.wait(TICK_S):
            if self._forced.is_set():
                self.drained = False
                return EXIT_FAILED
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return int(outcome[0])

    def _once_pass(self, summary: OnceSummary) -> int:
        """run --once's pass: every ready file taken in, then everything pending sent."""
        for source in self.config.sources:
            if not source.path.is_dir():
                summary.missing_folders.append(source.name)
                self._log.warning("spool.missing", source=source.name, path=str(source.path))
        taken = False
        # Full batches go out from a second thread while intake goes on, so the
        # POSTs and their commits wait while this thread parses (the daemon's
        # intake thread and flush job overlap the same way); the rest goes after.
        intake_done, batch_ready = threading.Event(), threading.Event()
        sending = threading.Thread(
            target=scheduler.guarded(
                scheduler.FLUSH_JOB,
                functools.partial(self._send_full_batches, intake_done, batch_ready),
            ),
            name="sender",
            daemon=True,
        )
        sending.start()
        queued = 0

        def counted(outcome: FileOutcome) -> None:  # after its group's commit
            nonlocal queued
            queued += outcome.receipts
            summary.count_file(outcome)

        group = GroupCommit(self.db)
        try:
            # A chunk at a time, oldest first (SCAN_LIMIT), each scan starting after the
            # last file of the one before: a file that stays in the spool is not tried
            # twice, and files that settle meanwhile join while a backlog lasts.
            after = None
            while not self.stop_event.is_set():
                ready, _ = self._intake.spool.scan(limit=spool.SCAN_LIMIT, after=after)
                for item in ready:
                    if self.stop_event.is_set():
                        break
                    outcome = self._intake.take(item, group)
                    taken = outcome is not None or taken
                    if group.is_full():
                        self._intake.commit_group(group, counted)
                        if queued >= self.config.batch.max_receipts:
                            queued = 0
                            batch_ready.set()
                if not ready.more:
                    break
                after = ready.last()
            self._intake.commit_group(group, counted)
        finally:
            group.abandon()
            intake_done.set()
            batch_ready.set()
            sending.join()
        self._intake.sync_folders(taken)
        self._intake.faults.persist(self.db)
        summary.count_sent(self.sender.flush(self.stop_event, once=True))
        summary.pending = self.db.pending_count()
        summary.left_in_spool = len(self._intake.spool.scan(ignore_settle=True)[0])
        summary.unreadable = len(self._intake.faults)
        summary.store_refused = self._intake.paused_since is not None
        return summary.exit_code()

    def _send_full_batches(
        self, intake_done: threading.Event, batch_ready: threading.Event
    ) -> None:
        """run --once's sender thread: full batches only, until intake is done or a failure."""
        while True:
            batch_ready.wait()
            batch_ready.clear()
            if intake_done.is_set():
                return
            result = self.sender.flush(intake_done, full_only=True)
            if self.once_summary is not None:
                self.once_summary.count_sent(result)
            if result.failed:
                return  # the final flush (once=True) retries within the once-mode budget

    # --- the daemon --------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT, then drain and return 0."""
        self._open()
        _freeze_start_up()
        sched = scheduler.build_scheduler()
        intake_thread = threading.Thread(
            target=self._intake.loop, args=(self.stop_event, self._wake), name="intake", daemon=True
        )
        drained: bool | None = None
        try:
            with self._signal_handlers():
                self._observers = self._start_observers()  # a reload refills it
                intake_thread.start()
                self._jobs = DaemonJobs(
                    self.config, db=self.db, client=self.client, metrics=self.metrics,
                    stop_event=self.stop_event, flush=self._flush,
                )  # fmt: skip
                self._jobs.schedule(sched)
                self._scheduler = sched
                sched.start()
                self._start_metrics()
                systemd.ready()
                self._log.info(
                    "agent.started", sources=[s.name for s in self.config.sources],
                    pid=os.getpid(), account_id=self.config.dintero.account_id,
                )  # fmt: skip
                self._tick_loop(intake_thread)
                systemd.stopping()
                self._log.info("agent.stopping", pending=self.db.pending_count())
                drained = self.drained = self._drain(sched, intake_thread)
                self._log.info("agent.stopped", drained=drained, pending=self.db.pending_count())
                return EXIT_FAILED if self._forced.is_set() else EXIT_OK
        finally:
            if drained is None:  # start-up or the loop failed: what started stops first
                self.stop_event.set()
                self.drained = self._drain(sched, intake_thread)
            self.metrics.stop()
            self._close()

    def _start_observers(self) -> list[Any]:
        self._watcher = spool_watch.SpoolWatcher(
            self.config.sources, self._wake, on_closed=self._intake.spool.note_closed
        )
        try:
            failed = self._watcher.start()
        except OSError as error:  # e.g. no inotify instance left: the rescan still finds files
            self._log.warning("spool.watch_failed", error=str(error), rescan_s=RESCAN_INTERVAL_S)
            return [observer for observer in self._watcher.observers if observer.is_alive()]
        for source, problem in failed:  # e.g. the inotify watch limit
            self._log.warning(
                "spool.watch_failed", source=source.name, error=str(problem),
                rescan_s=RESCAN_INTERVAL_S,
            )  # fmt: skip
        for source in self._watcher.missing():
            self._log.warning("spool.missing", source=source.name, path=str(source.path))
        return self._watcher.observers

    def _watch_again(self, config: AgentConfig) -> None:
        """A reload changed the sources: a new spool (keeping what the old one knew) and
        new folder watches."""
        fresh = spool.Spool(config.sources)
        fresh.adopt(self._intake.spool)
        self._intake.spool = fresh
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=5.0)
        self._observers[:] = self._start_observers()

    def _check_folders(self) -> None:
        """Report source folders that went missing; watch again those that came back."""
        if self._watcher is None:
            return
        gone, _ = self._watcher.check()
        for source in gone:
            self._log.warning("spool.missing", source=source.name, path=str(source.path))

    def _start_metrics(self) -> None:
        if self.config.metrics.listen:
            self.metrics.start_listener(self.config.metrics.listen, health=self._health)

    def _flush(self) -> None:
        self._intake.queued_since_flush = 0
        self.sender.flush(self.stop_event)
        self._jobs.update_queue_metrics()

    def _flush_soon(self) -> None:
        """Receipts were queued: a running flush sends them too, else run the flush job now.

        Called for a full batch and at the end of every intake pass that queued something,
        so a trickle is sent at once (adaptive batching; under load receipts gather behind
        the batches in flight). `wanted` is set before `busy` is read (see Sender).
        """
        self._intake.queued_since_flush = 0
        self.sender.wanted.set()
        if self._scheduler is not None and not self.sender.busy.is_set():
            scheduler.run_soon(self._scheduler, scheduler.FLUSH_JOB)

    def _tick_loop(self, intake_thread: threading.Thread) -> None:
        interval = systemd.watchdog_interval_s()
        last_ping = last_status = 0.0
        while not self.stop_event.wait(TICK_S):
            if self._hup.is_set():
                self._hup.clear()
                logs.reopen()
                if self._config_path is not None:
                    self._reload(self._config_path)
            self._check_folders()
            now = time.monotonic()
            if interval is not None and now - last_ping >= interval and intake_thread.is_alive():
                systemd.watchdog_ping()  # only while the loop and the intake thread are alive
                last_ping = now
            if now - last_status >= 5.0:  # noqa: PLR2004
                last_status = now
                systemd.status(self._status_line())

    def _reload(self, path: Path) -> None:
        """SIGHUP: apply the config file as it is now, or keep the running one (CONTRACT §1).

        Runs on the main thread. Nothing in flight is touched: the file in hand and the
        batch in flight finish as they began; what comes next uses the new settings.
        """
        new, secret, problems = reload.read_new_config(path, self.config, self._secret)
        if new is not None and new.log != self.config.log:
            try:
                logs.configure(file=new.log.file, format=new.log.format, level=new.log.level)
            except OSError as error:
                new, problems = None, [("log.file", str(error))]
        if new is None:
            self._log.error(
                "config.invalid", problems=[f"{key}: {message}" for key, message in problems],
                kept="the running config",
            )  # fmt: skip
            return
        changes = reload.diff_configs(self.config, new)
        if changes.has("dintero") or secret.get_secret_value() != self._secret.get_secret_value():
            self._retired_clients.append(self.client)  # a request in flight may still use it
            self.client, self._secret = DinteroClient(new.dintero, secret), secret
        old, self.config = self.config, new
        self._intake.config = new
        self.sender.reconfigure(new, self.client)
        if changes.has("sources"):
            self._watch_again(new)
        if self._scheduler is not None:
            self._jobs.reconfigure(self._scheduler, new, self.client, changes)
        if old.metrics.listen != new.metrics.listen:
            self.metrics.stop()
            try:
                self._start_metrics()
            except OSError as error:
                self._log.error("config.invalid", problems=[f"metrics.listen: {error}"])
        self._wake.set()  # list the (new) source folders now, not at the next rescan
        self._log.info("config.reloaded", **changes.log_keys())

    def _status_line(self) -> str:
        last = self.db.meta().get("last_success_at")
        when = (
            datetime.fromtimestamp(float(last), UTC).astimezone().strftime("%H:%M:%S")
            if last
            else "never"
        )
        return f"pending {self.db.pending_count()}, last sent {when}"

    def _drain(self, sched: Any, intake_thread: threading.Thread) -> bool:
        """No new files; wait (bounded by DRAIN_TIMEOUT_S, ended by a second signal) for
        the file in hand and every running job, the flush with its batches in flight
        included. Return whether all of them finished (then the state store may close)."""
        for observer in self._observers:
            observer.stop()
        self._wake.set()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        if sched.running:  # no job starts from here; one already running is waited for
            sched.shutdown(wait=False)

        def waited(finished: Callable[[float], bool]) -> bool:
            # In TICK_S slices, on the thing's own event, so a second signal is seen.
            while not self._forced.is_set():
                remaining = deadline - time.monotonic()
                if finished(max(0.0, min(TICK_S, remaining))):
                    return True
                if remaining <= 0:
                    return False
            return False

        intake_done = waited(lambda timeout_s: _joined(intake_thread, timeout_s))
        jobs_done = waited(scheduler.RUNNING_JOBS.wait_idle)
        for observer in self._observers:
            observer.join(timeout=max(0.1, deadline - time.monotonic()))
        return intake_done and jobs_done and not self.sender.busy.is_set()

    @contextlib.contextmanager
    def _signal_handlers(self) -> Any:
        def on_stop(signum: int, _: FrameType | None) -> None:
            # Flags only (uvicorn's shape); the second signal forces: the drain (or the
            # run --once wait) ends at once and the cli exits hard (its one forced exit).
            (self._forced if self.stop_event.is_set() else self.stop_event).set()

        def on_hup(signum: int, _: FrameType | None) -> None:
            self._hup.set()

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
            signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
            signal.SIGHUP: signal.signal(signal.SIGHUP, on_hup),
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _freeze_start_up() -> None:
    """Leave what start-up built (modules, models, config, clients) out of the collector's
    full passes: they live as long as the process, and the passes that intake's
    allocations trigger scanned them again and again (run --once, files of 1: ~7,400
    instructions per file less, callgrind). What start-up left as garbage is collected
    first. A frozen object a reload replaces is freed by its reference count, or, in a
    reference cycle, when `_close` unfreezes them all (so an agent run inside a longer
    process, as the tests do, leaves nothing frozen behind)."""
    gc.collect()
    gc.freeze()


def _joined(thread: threading.Thread, timeout_s: float) -> bool:
    if thread.is_alive():  # never started (start-up failed): nothing to join
        thread.join(timeout_s)
    return not thread.is_alive()
