"""Sender: due receipts → batches → the API → state transitions (CONTRACT §4, §5).

Owns batching (by `batch.max_receipts` and `batch.max_bytes`, oldest first; payloads are
the stored JSON bytes, joined without re-serialising), splitting on 400/422/413 until a
bad receipt stands alone (it becomes `rejected` with the API's message), and backoff:
one pause for the whole sender after a transient failure or a configuration problem (an
outage costs one POST per backoff step, not one per batch); the wait is `api.backoff`
(tenacity, jittered), a `Retry-After` answer honoured even above the cap.

Emits batch.sent, batch.duplicates, batch.failed, receipt.rejected (where the API refused
it) and api.misconfigured. Never deletes or loses a receipt: a failed batch stays `pending`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import structlog
import tenacity

from receipt_agent import logs, sender_batch, statedb
from receipt_agent.api import DinteroClient, backoff
from receipt_agent.config import AgentConfig
from receipt_agent.errors import (
    MisconfiguredError,
    PayloadTooLargeError,
    RemoteRejectedError,
    StateStoreError,
    TransientSendError,
)

# `run --once` waits out backoffs (Retry-After included) for at most this long in total,
# and gives up after this many failures in a row: cron runs it again.
ONCE_WAIT_BUDGET_S = 60.0
ONCE_MAX_FAILURES = 5


class SendObserver(Protocol):
    """What the agent's metrics need to hear from the sender."""

    def receipts(self, source: str, outcome: str, count: int) -> None: ...
    def batch(self, outcome: str, status: int | None, seconds: float) -> None: ...
    def last_success(self, unix_ts: float) -> None: ...


@dataclass(slots=True)
class _SentMark:
    """One 2xx batch's ids waiting to be recorded `sent` (see Sender._record_sent)."""

    ids: list[int]
    done: bool = False
    at: float = 0.0
    error: BaseException | None = None


@dataclass(slots=True)
class _Flight:
    """One dispatched batch: it holds a POST slot until answered, then only its claim."""

    posting: bool = True


@dataclass
class FlushResult:
    """What one flush did."""

    batches: int = 0
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: bool = False


class Sender:
    """Sends due receipts; `flush()` is called by one thread at a time (max_instances=1)."""

    def __init__(
        self,
        db: statedb.StateDB,
        client: DinteroClient,
        config: AgentConfig,
        *,
        observer: SendObserver | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._batch = config.batch
        self._retry = config.retry
        self._observer = observer
        self._wait = backoff(config.retry)  # jittered, so agents do not retry in step
        self._failures = 0
        self._paused_until = 0.0  # time.monotonic()
        # Receipt row id → the largest batch it may go out in, after a batch holding it was
        # refused (400/422/413) and split. Without it, a transient failure in the middle of
        # a split made the next flush start over with the whole batch, and under a flaky
        # API (each POST ~50 % transient) a split needing ~10 clean POSTs in a row never
        # finished: one refused receipt blocked the whole queue (found by
        # tests/reliability/test_hostile_api.py). In memory: a restart only costs a re-split.
        self._split_cap: dict[int, int] = {}
        # After a 413 the API's size limit is known to be at most this many receipts: later
        # batches start there instead of being refused and split again (process lifetime).
        self._learned_cap = config.batch.max_receipts
        self._log = structlog.get_logger("receipt_agent")
        self.busy = threading.Event()
        # Set by intake when it queued receipts: a running flush sends them too before it
        # ends (a trickle goes at once), a flush that is not running is started by agent.
        self.wanted = threading.Event()
        self._executor = executor
        self._lock = threading.Lock()  # claims, the pause and the failure count
        self._answered = threading.Condition(threading.Lock())  # in-flight count, results
        self._in_flight = 0  # batches holding a POST slot (dispatched, not yet answered)
        self._recording = 0  # answered 2xx, their `sent` mark not yet committed
        self._claimed: set[int] = set()
        self._cursor = 0
        self._marks = threading.Condition(threading.Lock())  # group commit of `sent`
        self._marks_waiting: list[_SentMark] = []
        self._marking = False

    def reconfigure(self, config: AgentConfig, client: DinteroClient) -> None:
        """SIGHUP's reload: new batch and retry settings (and client) for the next batches.

        A flush in progress finishes the batch in hand as it was built; the backoff in
        force stays. A size limit learned from a 413 stays when below the new maximum.
        """
        learned = self._learned_cap if self._learned_cap < self._batch.max_receipts else None
        self._client = client
        self._batch = config.batch
        self._retry = config.retry
        self._wait = backoff(config.retry)
        self._learned_cap = min(learned or config.batch.max_receipts, config.batch.max_receipts)

    @property
    def marks_waiting(self) -> int:
        """Batches answered 2xx whose `sent` mark waits for the state store's write lock."""
        with self._marks:
            return len(self._marks_waiting)

    @property
    def paused_for_s(self) -> float:
        """Seconds until the sender may try again (0 when not backing off)."""
        return max(0.0, self._paused_until - time.monotonic())

    def flush(
        self, stop: threading.Event, *, once: bool = False, full_only: bool = False
    ) -> FlushResult:
        """Send every due batch until none is due, the sender backs off, or `stop` is set.

        Up to `batch.concurrency` batches are in flight at once (on the executor the agent
        handed in; without one, or at concurrency 1, strictly one after another in this
        thread). Full batches go out whenever a slot is free; a batch short of the limits
        only when nothing is in flight (Nagle's rule: at a trickle every receipt goes at
        once, under load receipts gather behind the batches in flight). Returns only after
        every batch it started was answered or left pending, so a drain that waits for the
        flush waits for all of them.

        With `once`, pending receipts are due whatever their backoff, and backoffs are
        waited out (at most ONCE_WAIT_BUDGET_S in total) instead of ending the flush.
        With `full_only`, a last batch short of `max_receipts`/`max_bytes` stays queued
        (run --once sends full batches while its intake still runs).
        """
        result = FlushResult()
        waited = 0.0
        self.busy.set()
        self.wanted.clear()
        try:
            while not stop.is_set():
                pause = self.paused_for_s
                if pause > 0:
                    if self._in_flight:
                        self._wait_for_answer(stop)  # the batches out there settle first
                        continue
                    out_of_budget = (
                        waited + pause > ONCE_WAIT_BUDGET_S or self._failures >= ONCE_MAX_FAILURES
                    )
                    if not once or out_of_budget:
                        result.failed = True
                        return result
                    stop.wait(pause)
                    waited += pause
                    continue
                if self._in_flight >= self._slots() or self._unfinished() >= 2 * self._slots():
                    self._wait_for_answer(stop)
                    continue
                batch, last = self._claim(ignore_backoff=once, full_only=full_only)
                if batch and last and self._in_flight:
                    # Nagle: a short batch waits for the batches in flight; what arrives
                    # meanwhile joins it.
                    self._unclaim(batch)
                    self._wait_for_answer(stop)
                    continue
                if not batch:
                    if self._unfinished():
                        self._wait_for_answer(stop)
                        continue
                    if self._more_wanted(result):
                        continue
                    return result
                result.batches += 1
                self._dispatch(batch, last, result)
                if last:
                    # The queue was empty behind this batch. Receipts taken in meanwhile
                    # go at once only if intake asked (a pass of its ended: a trickle),
                    # else with the next flush or a full batch: a 10,000-file burst of one
                    # receipt each made 2,753 POSTs of 1.8 receipts when every arrival
                    # was chased.
                    self._wait_all()
                    if self.paused_for_s > 0 or self._more_wanted(result):
                        continue  # a failure: the pause branch waits (once) or ends
                    return result
            return result
        finally:
            self._wait_all()
            self.busy.clear()

    def _more_wanted(self, result: FlushResult) -> bool:
        """Nothing in flight: whether intake queued more since, to be sent in this flush.

        `busy` is cleared before `wanted` is read (intake sets `wanted` before it reads
        `busy`), so a request is never lost between a flush's end and its check.
        """
        if result.failed:
            return False
        self.busy.clear()
        if self.wanted.is_set():
            self.wanted.clear()
            self.busy.set()
            return True
        return False

    # --- batches in flight -------------------------------------------------------------------

    def _unfinished(self) -> int:
        """Batches dispatched and not yet over: POSTing, or waiting for their `sent` mark."""
        return self._in_flight + self._recording

    def _slots(self) -> int:
        """How many batches may be in flight now.

        After a failure one batch goes alone until one is answered 2xx (a probe, as TCP's
        slow start): an API that comes back from an outage, or a token the restarted API
        never issued, meets one POST and one refresh, not `concurrency` of each.
        """
        if self._executor is None or self._failures:
            return 1
        return self._batch.concurrency

    def _claim(
        self, *, ignore_backoff: bool, full_only: bool
    ) -> tuple[list[statedb.QueuedReceipt], bool]:
        """Take the next batch out of the queue for one sender slot.

        A claimed receipt is in exactly one batch in flight: the next claim starts above
        the highest id claimed while anything is in flight (in memory: the agent lock on
        the state dir makes this process the only sender, and a crash ends every flight).
        """
        batch, last = self._next_batch(
            ignore_backoff=ignore_backoff, full_only=full_only, after_id=self._cursor
        )
        with self._lock:
            claimed = self._claimed
            if claimed:  # else nothing is in flight: the whole batch is free
                batch = [receipt for receipt in batch if receipt.id not in claimed]
            claimed.update([receipt.id for receipt in batch])
            if batch:
                self._cursor = max(self._cursor, batch[-1].id)
        return batch, last

    def _unclaim(self, batch: list[statedb.QueuedReceipt]) -> None:
        with self._lock:
            claimed = self._claimed
            claimed.difference_update([receipt.id for receipt in batch])
            # The cursor is the highest id claimed (a batch is claimed in id order, above
            # the cursor), 0 when nothing is in flight: the next claim starts at the oldest
            # again. Looked for in the set only when this batch held it.
            if self._cursor not in claimed:
                self._cursor = max(claimed, default=0)

    def _dispatch(
        self, batch: list[statedb.QueuedReceipt], last: bool, result: FlushResult
    ) -> None:
        with self._answered:
            self._in_flight += 1
        flight = _Flight()
        if self._executor is None or self._slots() == 1:
            self._run_batch(batch, last, result, flight)
        else:
            self._executor.submit(self._run_batch, batch, last, result, flight)

    def _run_batch(
        self,
        batch: list[statedb.QueuedReceipt],
        last: bool,
        result: FlushResult,
        flight: _Flight,
    ) -> None:
        """One batch in its slot: POST, record the outcome, release the claim."""
        own = FlushResult()
        try:
            try:
                self._send(batch, own, flight)
            except StateStoreError as error:
                self._unrecorded(batch, error, own)
        except Exception:  # noqa: BLE001 - a thread boundary: log, keep it pending, pause
            self._log.exception("job.failed", job="send", receipts=len(batch))
            self._pause(None)
            own.failed = True
        finally:
            self._unclaim(batch)
            with self._answered:
                result.sent += own.sent
                result.duplicates += own.duplicates
                result.rejected += own.rejected
                result.failed = result.failed or own.failed
                if flight.posting:
                    self._in_flight -= 1
                else:
                    self._recording -= 1
                self._answered.notify_all()

    def _answered_2xx(self, flight: _Flight) -> None:
        """Free the batch's POST slot while its `sent` mark waits for the write lock.

        The mark waits behind an intake group (up to 50 ms) or another group of marks;
        holding the slot meanwhile left an API 50 ms away with ~2.4 of 4 POSTs in flight.
        The claim stays until the mark is committed, so no receipt goes out twice; at
        most `concurrency` more batches wait for their marks (flush counts both).
        """
        with self._answered:
            flight.posting = False
            self._in_flight -= 1
            self._recording += 1
            self._answered.notify_all()

    def _wait_for_answer(self, stop: threading.Event) -> None:
        """Wait until a batch in flight is answered (or a short while, to see `stop`)."""
        with self._answered:
            if self._unfinished() and not stop.is_set():
                self._answered.wait(timeout=0.5)

    def _wait_all(self) -> None:
        with self._answered:
            while self._unfinished():
                self._answered.wait(timeout=0.5)

    def _next_batch(
        self, *, ignore_backoff: bool, full_only: bool = False, after_id: int = 0
    ) -> tuple[list[statedb.QueuedReceipt], bool]:
        """Return (the next batch, whether it holds every due receipt)."""
        cap, max_bytes, split_cap = self._learned_cap, self._batch.max_bytes, self._split_cap
        now, limit, skip = time.time(), self._batch.max_receipts, ignore_backoff
        if full_only and not split_cap:  # not a full batch yet: no payload read for nothing
            count, size = self._db.due_size(
                now=now, limit=limit, ignore_backoff=skip, after_id=after_id
            )
            if count < limit and count <= cap and 2 + count + size <= max_bytes:
                return [], True
        due = self._db.due(now=now, limit=limit, ignore_backoff=skip, after_id=after_id)
        batch = sender_batch.cut(due, cap=cap, max_bytes=max_bytes, split_cap=split_cap)
        last = len(due) < self._batch.max_receipts and len(batch) == len(due)
        if full_only and last:
            return [], True  # no limit reached: not a full batch yet
        return batch, last

    def _send(
        self,
        batch: list[statedb.QueuedReceipt],
        result: FlushResult,
        flight: _Flight | None = None,
    ) -> bool:
        """POST one batch; split it when refused. Return False when the sender must pause.

        `flight` is the dispatched batch's slot, freed once its 2xx is in hand (the halves
        of a split keep the slot until the last of them is answered).
        """
        if self.paused_for_s > 0:
            return False  # another batch in flight started a pause: this one waits too
        body = b"[" + b",".join([receipt.payload for receipt in batch]) + b"]"
        attempts = [receipt.attempts for receipt in batch]
        log = logs.bound()  # the lazy self._log binds a new logger on every call
        log.debug(
            "batch.sending", receipts=len(batch), bytes=len(body),
            retried=len(attempts) - attempts.count(0), attempt=1 + max(attempts),
        )  # fmt: skip
        started = time.monotonic()
        try:
            answer = self._client.post_receipts(body)
        except (RemoteRejectedError, PayloadTooLargeError) as error:
            self._observe_batch("rejected", error.status, started)
            if len(batch) == 1:
                self._reject(batch[0], error, result)
                return True
            if isinstance(error, PayloadTooLargeError):
                return self._send_smaller(batch, result, error)
            middle = len(batch) // 2
            for receipt in batch:  # resume the split here if a half fails transiently
                self._split_cap[receipt.id] = len(batch) - middle
            self._log.info(
                "batch.failed", status=error.status, error=str(error), retry_in=0,
                receipts=len(batch), action="split",
            )  # fmt: skip
            return self._send(batch[:middle], result) and self._send(batch[middle:], result)
        except TransientSendError as error:
            self._observe_batch("failed", error.status, started)
            self._back_off(batch, error, result)
            return False
        except MisconfiguredError as error:
            self._observe_batch("failed", error.status, started)
            retry_in = self._pause(None)
            self._db.record_error(str(error), now=time.time())
            if error.status != 401:  # noqa: PLR2004 - the api already logged auth.failed
                self._log.error(
                    "api.misconfigured", status=error.status, error=str(error),
                    retry_in=round(retry_in, 1), pending=len(batch),
                )  # fmt: skip
            result.failed = True
            return False
        ids = [receipt.id for receipt in batch]
        if flight is not None:
            self._answered_2xx(flight)
        now = self._record_sent(ids)
        if self._split_cap:
            for receipt_row_id in ids:
                self._split_cap.pop(receipt_row_id, None)
        self._failures = 0
        result.sent += len(batch)
        result.duplicates += answer.duplicates
        self._observe_batch("sent", answer.status, started)
        if self._observer is not None:
            for source, count in sender_batch.by_source(batch).items():
                self._observer.receipts(source, "sent", count)
            self._observer.last_success(now)
        log.info(
            "batch.sent", receipts=len(batch), created=answer.created,
            duplicates=answer.duplicates, ms=round(answer.ms, 1),
        )  # fmt: skip
        if answer.duplicates:
            log.info("batch.duplicates", count=answer.duplicates, receipts=len(batch))
            if self._observer is not None:
                self._observer.receipts(batch[0].source, "duplicate", answer.duplicates)
        return True

    def _record_sent(self, ids: list[int]) -> float:
        """Record a 2xx batch `sent`, in one transaction with the batches answered meanwhile.

        Group commit: the batch that finds no recording under way takes the write lock
        (an intake group holds it for up to 50 ms), then records its ids and those of
        every batch answered until then, which wait for that commit. One write lock, one
        UPDATE and one fsync for the group instead of one each: mark_sent of 4 batches
        in one costs 3.55 M instructions a batch against 5.43 M alone (callgrind). Return
        the time recorded. Raise what the recording raised, in every batch of the group:
        then none of them is recorded (they stay pending).
        """
        mark = _SentMark(ids)
        with self._marks:
            self._marks_waiting.append(mark)
            while self._marking and not mark.done:
                self._marks.wait()
            if mark.done:
                if mark.error is not None:
                    raise mark.error
                return mark.at
            self._marking = True  # no recording under way: this batch records the group
        group: list[_SentMark] = []
        now = time.time()
        error: BaseException | None = None
        try:
            with self._db.transaction() as tx:  # the write lock first: who arrives meanwhile joins
                with self._marks:
                    group, self._marks_waiting = self._marks_waiting, []
                now = time.time()
                statedb.write_sent(tx, [row_id for other in group for row_id in other.ids], now=now)
        except BaseException as caught:
            error = caught
            raise
        finally:
            with self._marks:
                if not group:  # failed before taking the group: only this batch gives up
                    self._marks_waiting.remove(mark)
                    group = [mark]
                for other in group:
                    other.done, other.at, other.error = True, now, error
                self._marking = False
                self._marks.notify_all()
        return now

    def _send_smaller(
        self, batch: list[statedb.QueuedReceipt], result: FlushResult, error: PayloadTooLargeError
    ) -> bool:
        """413: the API's limit is at most half this batch; send it in pieces of that size.

        The limit is remembered for later batches, so one oversized POST teaches the
        sender once instead of every batch being refused and split again.
        """
        self._learned_cap = min(self._learned_cap, len(batch) - len(batch) // 2)
        for receipt in batch:  # resume in pieces this small if a piece fails transiently
            self._split_cap[receipt.id] = self._learned_cap
        self._log.info(
            "batch.failed", status=error.status, error=str(error), retry_in=0,
            receipts=len(batch), action="split", max_receipts_now=self._learned_cap,
        )  # fmt: skip
        start = 0
        while start < len(batch):
            piece = batch[start : start + self._learned_cap]  # the cap may shrink meanwhile
            if not self._send(piece, result):
                return False
            start += len(piece)
        return True

    def _reject(
        self,
        receipt: statedb.QueuedReceipt,
        error: RemoteRejectedError | PayloadTooLargeError,
        result: FlushResult,
    ) -> None:
        message = f"the API refused this receipt ({error.status}): {error}"
        store_id, receipt_id = self._db.mark_rejected(receipt.id, message, now=time.time())
        self._split_cap.pop(receipt.id, None)
        result.rejected += 1
        if self._observer is not None:
            self._observer.receipts(receipt.source, "rejected", 1)
        self._log.warning(
            "receipt.rejected", store_id=store_id, receipt_id=receipt_id,
            error=message, status=error.status, where="remote",
        )  # fmt: skip

    def _back_off(
        self, batch: list[statedb.QueuedReceipt], error: TransientSendError, result: FlushResult
    ) -> None:
        now = time.time()
        retry_in = self._pause(error.retry_after)
        give_up = self._retry.give_up_after
        born = {} if give_up is None else self._db.created_at([r.id for r in batch])
        expired = [r for r in batch if give_up is not None and now - born.get(r.id, now) > give_up]
        keep = [r.id for r in batch if r not in expired]
        self._db.mark_retry(keep, str(error), now=now, next_attempt_at=now + retry_in)
        for receipt in expired:
            message = f"gave up after retry.give_up_after ({give_up:g}s); last error: {error}"
            store_id, receipt_id = self._db.mark_rejected(receipt.id, message, now=now)
            self._log.error(
                "receipt.rejected", store_id=store_id, receipt_id=receipt_id,
                error=message, where="gave_up",
            )  # fmt: skip
        result.failed = True
        self._log.warning(
            "batch.failed", status=error.status, error=str(error), retry_in=round(retry_in, 2),
            receipts=len(batch), attempt=self._failures,
        )  # fmt: skip

    def _unrecorded(
        self, batch: list[statedb.QueuedReceipt], error: StateStoreError, result: FlushResult
    ) -> None:
        """The state store could not record an outcome (disk full): back off, keep pending.

        Without this pause the flush job POSTed the same batch again every flush_interval
        while the disk stayed full (27 POSTs in 6 s; found by
        tests/reliability/test_disk_full.py). Dintero deduplicates what it already has.
        """
        retry_in = self._pause(None)
        result.failed = True
        self._log.error(
            "batch.failed", status=None, error=str(error), retry_in=round(retry_in, 2),
            receipts=len(batch), action="not_recorded",
        )  # fmt: skip

    def _pause(self, retry_after: float | None) -> float:
        """Start a sender-wide pause; return its length in seconds.

        Batches in flight together fail together in an outage: a pause already running
        counts as this failure's too (one backoff step per outage step, not one per
        batch), lengthened only by a larger Retry-After.
        """
        with self._lock:
            now = time.monotonic()
            if self._paused_until > now:
                if retry_after is not None and now + retry_after > self._paused_until:
                    self._paused_until = now + retry_after
                return self._paused_until - now
            self._failures += 1
            state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
            state.attempt_number = self._failures
            wait = float(self._wait(state))
            if retry_after is not None:
                # The server knows best: honour Retry-After even above retry.max.
                wait = max(retry_after, self._retry.initial)
            self._paused_until = now + wait
            return wait

    def _observe_batch(self, outcome: str, status: int | None, started: float) -> None:
        if self._observer is not None:
            self._observer.batch(outcome, status, time.monotonic() - started)
