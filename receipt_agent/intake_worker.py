"""Taking files in, for the daemon's intake thread and for `run --once` (CONTRACT §3).

`take` is the per-file boundary: whatever goes wrong with one file (read, parse, map,
move) is that file's fault record (`file_faults`), retried with backoff while the other
files go on; only the state store refusing a write pauses intake (`intake.paused`, then
`intake.resumed`). `loop` is the intake thread's body: scan the spools, take the ready
files in group commits, sleep until woken (a folder event, a reload) or a file is due.
A file read and queued but still being written is held in the spool and visited again.

A spool file is moved or deleted only by `intake` and only after its commit returned.
Starts no thread (the agent starts the one that runs `loop`); emits `intake.paused`,
`intake.resumed` and `intake.failed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from receipt_agent import logs, spool, statedb
from receipt_agent.config import AgentConfig
from receipt_agent.errors import StateStoreError
from receipt_agent.file_faults import FileFaults
from receipt_agent.intake import sync_moves, take_in
from receipt_agent.intake_group import GroupCommit
from receipt_agent.intake_record import FileOutcome
from receipt_agent.metrics import AgentMetrics

RESCAN_INTERVAL_S = 60.0  # the folder listing is the truth; inotify only wakes us earlier
HOLD_FACTOR = 3.0  # a file leaves the spool only when its mtime is older than 3 × settle
STORE_RETRY_S = 5.0  # how often intake retries after the state store refused a write


class IntakeWorker:
    """The intake of one agent; `config` and `spool` are replaced by a SIGHUP reload."""

    def __init__(
        self,
        config: AgentConfig,
        db: statedb.StateDB,
        metrics: AgentMetrics,
        *,
        request_flush: Callable[[], None],
    ) -> None:
        self.config = config
        self.spool = spool.Spool(config.sources)
        self._db = db
        self._metrics = metrics
        self._request_flush = request_flush  # full batch queued, or a pass queued some
        self.faults = FileFaults()
        self.paused_since: float | None = None  # the state store refused a write
        self._store_retry_at = 0.0  # monotonic; while paused, no intake pass before it
        self.queued_since_flush = 0
        self.once = False  # run --once: no hold (one pass, no later visit)
        # Files read and queued but held in the spool → (monotonic time to visit again,
        # path, its mtime then).
        self._revisit: dict[tuple[str, str], tuple[float, Path, float]] = {}
        self._log = structlog.get_logger("receipt_agent")

    def take(self, ready: spool.ReadyFile, group: GroupCommit | None = None) -> FileOutcome | None:
        """Take in one file; return None when it stays in the spool.

        The per-file boundary (CONTRACT §3): whatever goes wrong with this file (read,
        parse, map, move) is this file's fault record, retried with backoff while the
        other files go on. Only the state store refusing a write pauses intake.
        """
        key = ready.key
        held = self._revisit.get(key)
        hold_s, unparsed_hold_s = self._hold_s(ready)
        try:
            outcome = take_in(
                ready.path, ready.source, self._db, self.config,
                hold_s=hold_s,
                unparsed_hold_s=unparsed_hold_s,
                held_mtime=None if held is None else held[2],
                defer=None if group is None else group.defer_for(key),
                where=ready.where,
                name=key[1],
            )  # fmt: skip
        except StateStoreError as error:
            self._pause(error, source=ready.source.name, file=ready.path.name)
            return None
        except Exception as error:  # noqa: BLE001 - the per-file boundary: this file alone
            if isinstance(error, FileNotFoundError) and not (
                ready.path.exists() or ready.path.is_symlink()
            ):  # gone between listing and opening (another agent, an operator)
                self.faults.cleared(*key)
                return None
            self.faults.failed(*key, error)
            return None
        self.faults.cleared(*key)
        self._revisit.pop(key, None)
        if outcome.outcome in ("changed", "held"):
            # Still in the spool: visit it again when it may leave (a changed file is
            # unsettled again, so the spool holds it back until it settles).
            hold_s = max(hold_s, unparsed_hold_s)
            due = time.monotonic() + max(0.0, ready.mtime + hold_s - time.time())
            self._revisit[key] = (due, ready.path, ready.mtime)
        if outcome.recorded:  # the store took a write; in a group, only once it commits
            if group is None:
                self._resume()
            else:
                group.has_records = True
        if outcome.outcome not in ("changed", "held"):
            self.spool.forget(ready)
        if group is None:
            self._count(outcome)
        else:  # its counts are known once the group wrote its rows: commit_group counts it
            group.outcomes.append(outcome)
        return outcome

    def _count(self, outcome: FileOutcome) -> None:
        """A file's metrics, and its receipts in `queued_since_flush`."""
        self._count_all([outcome], None)

    def _hold_s(self, ready: spool.ReadyFile) -> tuple[float, float]:
        """(how long after its last change a file taken in stays in the spool, and how long
        one that does not parse does).

        The hold guards against a writer that keeps the file open and appends after a
        pause: while it lasts the file is read again when it changes (its queued receipts
        are local duplicates). A file its writer closed needs none, except when it does
        not parse: tills that write a file in pieces, closing it between them, are common,
        and the first piece alone was quarantined; now it waits until unchanged for
        `settle` (CONTRACT §3's settled), and is read again when its writer closes it again.
        `run --once` (one pass, no later visit) takes in what is settled and archives it.
        """
        if self.once:
            return 0.0, 0.0
        settle = ready.source.settle
        return (0.0, settle) if ready.closed else (HOLD_FACTOR * settle, HOLD_FACTOR * settle)

    def commit_group(
        self, group: GroupCommit, counted: Callable[[FileOutcome], None] | None = None
    ) -> bool:
        """Commit the intake group (one fsync), count its files, then move them: each one's
        own fault. A file's counts are known once the group wrote its rows (at its commit
        at the latest): its metrics, and `counted` (run --once's summary) for each.

        Return False when the state store refused the commit (intake is paused); then only
        its quarantined files are counted (the others stay in the spool, nothing recorded).
        """
        recorded, taken = group.has_records, group.outcomes
        try:
            after = group.commit()
        except StateStoreError as error:  # nothing of the group recorded; all stay in spool
            self._pause(error)
            self._count_all([o for o in taken if o.outcome == "quarantined"], counted)
            return False
        if recorded:  # not before: a file's savepoint proves nothing until the commit
            self._resume()
        self._count_all(taken, counted)
        with logs.batched():  # the group's lines in one write, not one each
            for key, action in after:
                try:
                    action()
                except Exception as error:  # noqa: BLE001 - the per-file boundary: this file alone
                    source, name = key
                    if isinstance(error, FileNotFoundError):
                        self.faults.cleared(source, name)
                    else:
                        self.faults.failed(source, name, error)
        if not self.once and self.queued_since_flush >= self.config.batch.max_receipts:
            self._request_flush()
        return True

    def _count_all(
        self, outcomes: list[FileOutcome], counted: Callable[[FileOutcome], None] | None
    ) -> None:
        """Files' metrics, summed per source (a group's: one increment per source and
        series, not four per file), their receipts in `queued_since_flush`, and
        `counted(outcome)` for each."""
        sums: dict[str, list[int]] = {}  # source → [quarantined, accepted, receipts, ...]
        for outcome in outcomes:
            counts = sums.get(outcome.source)
            if counts is None:
                counts = sums[outcome.source] = [0, 0, 0, 0, 0]
            if outcome.outcome == "quarantined":
                counts[0] += 1
            elif outcome.outcome != "archived":  # counted when it was read, before its hold
                counts[1] += 1
                counts[2] += outcome.receipts
                counts[3] += outcome.rejected
                counts[4] += outcome.duplicates
            self.queued_since_flush += outcome.receipts
            if counted is not None:
                counted(outcome)
        for source, (quarantined, accepted, queued, rejected, duplicates) in sums.items():
            if quarantined:
                self._metrics.file_quarantined(source, quarantined)
            if accepted:
                self._metrics.file_accepted(source, accepted)
                self._metrics.receipts(source, "queued", queued)
                self._metrics.receipts(source, "rejected", rejected)
                self._metrics.receipts(source, "duplicate", duplicates)

    def _pause(self, error: StateStoreError, **where: str) -> None:
        """The state store refused a write: `intake.paused` once per outage, and the next
        intake attempt not before STORE_RETRY_S (folder events do not hurry it)."""
        self._store_retry_at = time.monotonic() + STORE_RETRY_S
        if self.paused_since is None:
            self.paused_since = time.monotonic()
            self._log.error(
                "intake.paused", **where, error=f"{error}; the files stay in the spool and "
                f"intake retries every {STORE_RETRY_S:g}s",
            )  # fmt: skip

    def _resume(self) -> None:
        """A commit that recorded something returned: `intake.resumed`, once per outage."""
        if self.paused_since is not None:
            self._log.info(
                "intake.resumed", paused_s=round(time.monotonic() - self.paused_since, 1)
            )
            self.paused_since = None

    def loop(self, stop_event: threading.Event, wake: threading.Event) -> None:
        """The intake thread: scan, take in ready files, sleep until woken or due."""
        while not stop_event.is_set():
            # Paused: one retry per STORE_RETRY_S, however often the watcher wakes us.
            paused = self.paused_since is not None
            if paused and stop_event.wait(max(0.0, self._store_retry_at - time.monotonic())):
                return
            wake.clear()
            timeout = RESCAN_INTERVAL_S
            group = GroupCommit(self._db)
            try:
                # Files in their backoff after a failure, or read and held in the spool a
                # little longer, are left out; the others go on. A backlog comes a chunk at
                # a time (SCAN_LIMIT, the oldest first; `next_due` 0 while more are ready).
                ready, next_due = self.spool.scan(
                    limit=spool.SCAN_LIMIT,
                    skip=self._not_now,
                    tracked=self.faults.keys() | self._revisit.keys(),
                )
                taken = False
                for item in ready:
                    if stop_event.is_set():
                        self.commit_group(group)
                        self.sync_folders(taken)
                        return
                    outcome = self.take(item, group)
                    taken = outcome is not None or taken
                    if outcome is None and self.paused_since is not None:
                        break
                    # A full group commits now (and a full batch is sent at once); refused,
                    # the rest of the pass waits for the next retry.
                    if group.is_full() and not self.commit_group(group):
                        break
                self.commit_group(group)
                if self.queued_since_flush:
                    self._request_flush()  # the pass is over: an idle sender sends at once
                self.sync_folders(taken)
                self.faults.persist(self._db)
                # Faults and holds of files no longer ready are dropped: those of this
                # pass's files, and those the scan found ready (skipped or not)
                present = ready.present | ready.keys_among(
                    self.faults.keys() | self._revisit.keys()
                )
                self.faults.retain(present)
                self._revisit = {
                    k: v for k, v in self._revisit.items() if k in present or v[1].exists()
                }
                revisit = min((held[0] for held in self._revisit.values()), default=None)
                if revisit is not None:
                    revisit = max(0.0, revisit - time.monotonic())
                if self.paused_since is not None:
                    timeout = STORE_RETRY_S
                else:
                    for due in (next_due, self.faults.next_due_s(), revisit):
                        if due is not None:
                            timeout = min(timeout, due + 0.01)
            except Exception:  # noqa: BLE001 - the thread boundary: log and keep taking files in
                group.abandon()  # its files stay in the spool, nothing of them recorded
                self._log.exception("intake.failed")
                timeout = STORE_RETRY_S
            wake.wait(timeout)

    def _not_now(self, key: tuple[str, str], mtime: float, closed: bool) -> bool:
        """Whether a ready file waits: in its backoff after a failure, or read and held
        until its visit (one closed again since goes now: a till that appended and
        closed, its new rows go out at once)."""
        if not self.faults.is_due(*key):
            return True
        held = self._revisit.get(key)
        if held is None or held[0] <= time.monotonic():
            return False
        return not (closed and mtime != held[2])

    def sync_folders(self, taken: bool) -> None:
        """After a pass that moved files: fsync the folders once (intake's step 4)."""
        if not taken:
            return
        try:
            sync_moves(self.config.sources, self.config)
        except OSError as error:  # the moves stay valid; a power cut could only undo them
            self._log.warning(
                "intake.failed", error=f"cannot fsync a spool or archive folder ({error}); "
                "after a power cut some archived files may be archived again",
            )  # fmt: skip
