"""Spool files that could not be read or moved: per-file backoff and `file.unreadable`.

CONTRACT §3: a file the agent cannot read or move (permissions, I/O error) stays in the
spool and affects that file alone. The intake asks `is_due()` before it touches a file
and reports each failure with `failed()`; the file is then left alone for a backoff
(`RETRY_INITIAL_S`, doubling, capped at `RETRY_MAX_S`, from tenacity's wait strategy)
while every other file and source goes on. The failure is logged as `file.unreadable`
(source, file, error, since) the first time and then at most once an hour while it lasts;
an unexpected error (a bug, not the file system) is logged as `intake.failed` with its
traceback under the same rule, so a bad file can neither block intake nor flood the log.

Keeps state in memory (the intake thread is its one user) and a copy in the state store's
meta for `status` (`persist`). Never touches a file.
"""

from __future__ import annotations

import errno
import time
from collections.abc import KeysView
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
import tenacity

from receipt_agent import statedb
from receipt_agent.errors import StateStoreError

RETRY_INITIAL_S = 2.0
RETRY_MAX_S = 300.0
LOG_EVERY_S = 3600.0
FAULTS_META_KEY = "file_faults"  # a JSON list of FileFaults.snapshot(), read by `status`


@dataclass
class FileFault:
    """One spool file that failed: what, since when, and when to try it again."""

    source: str
    file: str
    error: str
    since: float  # unix time of the first failure
    attempts: int
    next_try: float  # time.monotonic()
    logged_at: float  # time.monotonic()


def describe_os_error(error: OSError) -> str:
    """Given an OSError, return one operator sentence naming the errno and the path."""
    code = errno.errorcode.get(error.errno or 0, "?")
    where = f" on {error.filename}" if error.filename else ""
    if error.filename2:
        where += f" → {error.filename2}"
    return (
        f"{error.strerror or type(error).__name__} (errno {error.errno} {code}){where}; "
        "the file stays in the spool and is retried; check its permissions and the folders'"
    )


class FileFaults:
    """The files intake currently leaves alone, keyed by (source name, file name)."""

    def __init__(
        self,
        *,
        initial_s: float = RETRY_INITIAL_S,
        max_s: float = RETRY_MAX_S,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self._faults: dict[tuple[str, str], FileFault] = {}
        self._wait = tenacity.wait_exponential(multiplier=initial_s, min=initial_s, max=max_s)
        self._log_every_s = log_every_s
        self._log = structlog.get_logger("receipt_agent")
        self.changed = False  # set on every add/clear; `persist` resets it

    def is_due(self, source: str, file: str, now: float | None = None) -> bool:
        """Return whether the file may be tried now (no fault, or its backoff is over)."""
        fault = self._faults.get((source, file))
        return fault is None or (time.monotonic() if now is None else now) >= fault.next_try

    def failed(self, source: str, file: str, error: BaseException) -> FileFault:
        """Record a failure of this file, log it when due, and return its fault record."""
        now = time.monotonic()
        fault = self._faults.get((source, file))
        text = describe_os_error(error) if isinstance(error, OSError) else _describe(error)
        if fault is None:
            fault = FileFault(source, file, text, time.time(), 0, now, now - self._log_every_s)
            self._faults[(source, file)] = fault
            self.changed = True
        elif fault.error != text:
            fault.error = text
            self.changed = True
        fault.attempts += 1
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = fault.attempts
        fault.next_try = now + float(self._wait(state))
        if now - fault.logged_at >= self._log_every_s:
            fault.logged_at = now
            since = datetime.fromtimestamp(fault.since, UTC).isoformat(timespec="seconds")
            if isinstance(error, OSError):
                self._log.error(
                    "file.unreadable", source=source, file=file, error=text, since=since,
                    attempts=fault.attempts,
                )  # fmt: skip
            else:
                self._log.error(
                    "intake.failed", source=source, file=file, error=text, since=since,
                    attempts=fault.attempts, exc_info=error,
                )  # fmt: skip
        return fault

    def cleared(self, source: str, file: str) -> None:
        """The file was taken in (or is gone): forget its fault."""
        if self._faults.pop((source, file), None) is not None:
            self.changed = True

    def keys(self) -> KeysView[tuple[str, str]]:
        """The (source, file) of every file with a fault record."""
        return self._faults.keys()

    def retain(self, present: set[tuple[str, str]]) -> None:
        """Forget the faults of files no longer in their spool (moved away by someone)."""
        for key in set(self._faults) - present:
            self.cleared(*key)

    def next_due_s(self, now: float | None = None) -> float | None:
        """Return seconds until the earliest backoff ends, or None without faults."""
        if not self._faults:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, min(fault.next_try for fault in self._faults.values()) - now)

    def __len__(self) -> int:
        return len(self._faults)

    def snapshot(self) -> list[dict[str, Any]]:
        """Return the current faults as plain dicts (for the state store and `status`)."""
        return [
            {"source": f.source, "file": f.file, "error": f.error, "since": f.since}
            for f in sorted(self._faults.values(), key=lambda f: (f.source, f.file))
        ]

    def persist(self, db: statedb.StateDB) -> None:
        """Keep the faults in the state store for `status`, when they changed since."""
        if not self.changed:
            return
        try:
            db.set_meta(FAULTS_META_KEY, orjson.dumps(self.snapshot()).decode())
        except StateStoreError:
            return  # tried again after the next pass; intake.paused tells the operator
        self.changed = False


def _describe(error: BaseException) -> str:
    # The type only: an exception's message may quote a value from the export.
    return (
        f"unexpected {type(error).__name__} while taking the file in (a bug; the traceback "
        "is in this log line); the file stays in the spool and is retried"
    )
