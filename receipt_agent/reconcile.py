"""Reconciliation: prove a business day complete (CONTRACT §1 `reconcile`, §2 `reconcile:`, §7).

Reads the ledger, control totals and receipt states from the state store
(`ledger_store`), asks Dintero whether it holds sent receipts when `--remote` says so
(`api.search_receipt`, paced at `max_requests_per_second`, transient failures retried with
`api.retry_transient`, the token shared with the caller's client), and hands the
lot to `reconcile_core`, which decides. `record` keeps the verdicts where `status` sees
them; `log_results` emits `reconcile.completed` / `reconcile.mismatch` (one line per source,
store, register and day, the contract's keys plus `differences`). Never changes a receipt,
a ledger row or a file.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from receipt_agent import api, ledger_store, statedb
from receipt_agent.config import AgentConfig, SourceBase
from receipt_agent.errors import MisconfiguredError, TransientSendError
from receipt_agent.reconcile_core import COMPLETE, DayInput, Row, reconcile_day

REMOTE_MODES = ("none", "sample", "all")
_MAX_DIFFERENCES_LOGGED = 10


def yesterday(source: SourceBase, *, now: datetime | None = None) -> str:
    """Return yesterday's date (YYYY-MM-DD) in the source's timezone."""
    moment = now if now is not None else datetime.now(source.tz)
    return (moment.astimezone(source.tz).date() - timedelta(days=1)).isoformat()


class Reconciler:
    """Reconciles days of the configured sources against the state store (and Dintero)."""

    def __init__(
        self,
        config: AgentConfig,
        db: statedb.StateDB,
        client: api.DinteroClient | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.client = client
        self._stop = stop or threading.Event()
        settings = config.reconcile
        self.sample_size = settings.sample_size if settings else 50
        self.interval_s = 1.0 / (settings.max_requests_per_second if settings else 5.0)
        self._next_request_at = 0.0

    def run(
        self, *, date: str | None = None, source: str | None = None, remote: str = "none"
    ) -> list[dict[str, Any]]:
        """Given a date (default: yesterday per source), a source name (default: all) and a
        remote mode, return one result per source, store, register and day.

        Raise ConfigError for an unknown source name.
        """
        sources = [self.config.source(source)] if source else list(self.config.sources)
        results: list[dict[str, Any]] = []
        for item in sources:
            results.extend(self.reconcile_source(item, date or yesterday(item), remote))
        return results

    def reconcile_source(self, source: SourceBase, day: str, remote: str) -> list[dict[str, Any]]:
        """Return the results of one source and business day."""
        rows = [
            Row(
                store_id=row.store_id, register=row.register, number=row.number,
                numbered=row.numbered, outcome=row.outcome, receipt_id=row.receipt_id,
                amount_minor=row.amount_minor, figures=row.figures, content=row.content,
                state=row.state,
            )
            for row in ledger_store.day_rows(self.db, source.name, day)
        ]  # fmt: skip
        keys = {(row.store_id, row.register) for row in rows if row.numbered}
        day_input = DayInput(
            source=source.name, date=day, format_name=source.format_name, rows=rows
        )
        for control in ledger_store.controls(self.db, source.name, day):
            key = (control["store_id"], control["register"])
            day_input.controls.setdefault(key, []).append(control)
            keys.add(key)
        for store_id, register in keys:
            day_input.history[(store_id, register)] = ledger_store.register_numbers(
                self.db, source.name, store_id, register
            )
            previous = ledger_store.previous_control(self.db, source.name, store_id, register, day)
            if previous is not None:
                day_input.previous[(store_id, register)] = previous
        notes: list[str] = []
        if remote != "none":
            day_input.remote_checked, day_input.remote_missing = self._check_remote(
                rows, remote, day, notes
            )
        results = reconcile_day(day_input)
        if not results:
            results = [_empty(source, day)]
        for result in results:
            result["unchecked"].extend(notes)
        return results

    # --- remote ----------------------------------------------------------------------------

    def _check_remote(
        self, rows: list[Row], mode: str, day: str, notes: list[str]
    ) -> tuple[set[str], set[str]]:
        sent = sorted({row.receipt_id for row in rows if row.state == "sent" and row.receipt_id})
        if self.client is None:
            notes.append("remote: no Dintero client; not checked")
            return set(), set()
        if mode == "sample" and len(sent) > self.sample_size:
            sent = sorted(random.Random(day).sample(sent, self.sample_size))  # noqa: S311 - a sample, not a secret
        checked: set[str] = set()
        missing: set[str] = set()
        for receipt_id in sent:
            if self._stop.is_set():
                notes.append("remote: interrupted by shutdown")
                break
            try:
                held = self._search(receipt_id)
            except _StoppedError:
                notes.append("remote: interrupted by shutdown")
                break
            except (MisconfiguredError, TransientSendError) as error:
                notes.append(f"remote: stopped after {len(checked)} checks: {error}")
                break
            checked.add(receipt_id)
            if not held:
                missing.add(receipt_id)
        return checked, missing

    def _search(self, receipt_id: str) -> bool:
        """One paced search; transient failures retried like sends (tenacity backoff)."""
        assert self.client is not None  # noqa: S101 - _check_remote returned early otherwise
        client = self.client
        retrying = api.retry_transient(self.config.retry, self._sleep)
        return bool(retrying(self._paced, lambda: api.search_receipt(client, receipt_id)))

    def _paced(self, call: Callable[[], bool]) -> bool:
        # At most max_requests_per_second: each request waits for its slot.
        delay = self._next_request_at - time.monotonic()
        if delay > 0:
            self._sleep(delay)
        self._next_request_at = max(time.monotonic(), self._next_request_at) + self.interval_s
        return call()

    def _sleep(self, seconds: float) -> None:
        # Never time.sleep: a shutdown ends the wait, and the retries with it (a wait that
        # merely returned early would run the remaining tries back to back).
        if self._stop.wait(seconds):
            raise _StoppedError


class _StoppedError(Exception):
    """A shutdown arrived while a search waited for its slot or its next try."""


def _empty(source: SourceBase, day: str) -> dict[str, Any]:
    return {
        "date": day, "source": source.name, "store_id": source.store.id, "register": "",
        "result": COMPLETE, "gaps": 0, "mismatches": 0,
        "numbering": {"first": None, "last": None, "gaps": 0, "missing": []},
        "conflicts": [], "counts": {}, "sums_minor": {}, "control": {},
        "remote": {"checked": 0, "missing": []}, "differences": [],
        "unchecked": ["nothing from this source was taken in for this business day"],
    }  # fmt: skip


def log_results(results: list[dict[str, Any]]) -> None:
    """Log one `reconcile.completed` or `reconcile.mismatch` line per result (CONTRACT §6)."""
    log = structlog.get_logger("receipt_agent")
    for result in results:
        keys = {
            "date": result["date"],
            "source": result["source"],
            "store_id": result["store_id"],
            "register": result["register"],
            "result": result["result"],
            "gaps": result["gaps"],
            "mismatches": result["mismatches"],
        }
        if result["result"] == COMPLETE:
            log.info("reconcile.completed", **keys)
        else:
            differences = result["differences"][:_MAX_DIFFERENCES_LOGGED]
            log.warning("reconcile.mismatch", **keys, differences=differences)


def record(db: statedb.StateDB, results: list[dict[str, Any]]) -> None:
    """Remember the results where `status` sees them (the last run's verdict decides)."""
    ledger_store.record_result(db, results, now=time.time())


def run_daily(
    config: AgentConfig,
    db: statedb.StateDB,
    client: api.DinteroClient | None,
    *,
    stop: threading.Event | None = None,
    timezone: str | None = None,
) -> list[dict[str, Any]]:
    """The `reconcile.cron` job: yesterday of every source (of `timezone`, when given),
    recorded and logged."""
    remote = config.reconcile.remote if config.reconcile else "none"
    runner = Reconciler(config, db, client, stop=stop)
    results: list[dict[str, Any]] = []
    for source in config.sources:
        if timezone is None or source.timezone == timezone:
            results.extend(runner.reconcile_source(source, yesterday(source), remote))
    if not results:
        return results
    record(db, results)
    log_results(results)
    return results
