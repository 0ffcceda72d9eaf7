"""The state store: one SQLite database in WAL mode with synchronous=FULL (CONTRACT §3, §4).

Owns every table: `files` (digests of files taken in), `receipts` (the queue and its
dead letters: pending → sent | rejected), `meta` (last success, last error) and
`reports` (periods already written). The schema is versioned with PRAGMA user_version
and migrated forward on open; the migrations themselves are `statedb_schema`'s.

Writes are serialised: one connection per thread, and one process-wide write lock held
inside `transaction()` (`statedb_locks.FairLock`), so the intake worker and the sender
never interleave. A second agent on the same state directory is refused by an flock on
`agent.lock` (`statedb_locks.lock_dir`).

Never deletes a receipt that is not `sent` or `rejected` (purge is explicit), never logs
(callers log outcomes), knows nothing of HTTP.

Over the 400-line target (under the 600 cap): one owner per table (STYLE §1.3) puts every
statement that touches `receipts` here, where its invariants can be read in one place.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from receipt_agent import permissions, statedb_rows, statedb_sql
from receipt_agent.errors import StateStoreError
from receipt_agent.statedb_locks import FairLock
from receipt_agent.statedb_schema import MIGRATIONS, SCHEMA_VERSION

PENDING, SENT, REJECTED = "pending", "sent", "rejected"
STATES = (PENDING, SENT, REJECTED)

# Intake's row writes, inside a caller's transaction (statedb_rows: split out for size).
insert_receipt = statedb_rows.insert_receipt
insert_receipts = statedb_rows.insert_receipts
insert_receipts_of_files = statedb_rows.insert_receipts_of_files
record_file = statedb_rows.record_file
record_files = statedb_rows.record_files


_P = ParamSpec("_P")
_R = TypeVar("_R")


class HeldRows(Protocol):
    """Rows a group holds to write at once (`intake_record.GroupRows`): `group_held`."""

    digests: set[str]  # of the held files (`has_file` answers True for them)

    def write(self, conn: sqlite3.Connection) -> None:
        """Write every held row through `conn`, inside the group's transaction."""


_H = TypeVar("_H", bound=HeldRows)

_HAS_FILE = "SELECT 1 FROM files WHERE digest = ?"


@contextlib.contextmanager
def _sqlite_errors(path: Path, doing: str, hint: str = "") -> Iterator[None]:
    """The one place a `sqlite3.Error` becomes a `StateStoreError` (httpx's transport
    error mapping shape): `path: <doing> (<sqlite's reason>)<hint>`."""
    try:
        yield
    except sqlite3.Error as error:
        raise StateStoreError(f"{path}: {doing} ({error}){hint}") from None


def _reads(
    method: Callable[Concatenate[StateDB, _P], _R],
) -> Callable[Concatenate[StateDB, _P], _R]:
    """Mark a StateDB query: any SQLite failure while it runs is a StateStoreError."""

    @functools.wraps(method)
    def mapped(self: StateDB, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        # What `with _sqlite_errors(self.path, "cannot read the state store")` does, without
        # a generator-based context manager on every query (has_file: one per spool file).
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise StateStoreError(f"{self.path}: cannot read the state store ({error})") from None

    return mapped


@dataclass(slots=True)  # not frozen: one per receipt sent (see mapping.ValidReceipt)
class QueuedReceipt:
    """A receipt row as the sender needs it to POST it; read-only (keys: mark_rejected)."""

    id: int
    source: str
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    """A receipt row as `queue list` shows it (no payload)."""

    id: int
    source: str
    store_id: str
    receipt_id: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    file: str | None


class StateDB:
    """The queue database; safe to share between threads (one connection per thread)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._local = threading.local()
        self._write_lock = FairLock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        if readonly:
            if not path.exists():
                raise StateStoreError(f"{path}: no state store yet; has the agent ever run?")
        else:
            # Created 0640 before SQLite opens it: its -wal/-shm copy this mode (CONTRACT §3).
            permissions.make_dirs(path.parent)
            permissions.create_file(path)
            self._migrate()

    # --- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with _sqlite_errors(self.path, "cannot open the state store"):
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30
                )
            else:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=30, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
        self._local.conn = conn
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    @property
    def writers_waiting(self) -> int:
        """Threads waiting for the write lock (served first come, first served)."""
        return self._write_lock.waiting

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Yield this thread's connection for `ledger_store`'s queries (SQLite errors →
        StateStoreError, as for every read here)."""
        with _sqlite_errors(self.path, "cannot read the state store"):
            yield self._connect()

    def close(self) -> None:
        """Close every thread's connection (call once, at shutdown)."""
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock and one IMMEDIATE transaction; commit on success.

        Raise StateStoreError (after rolling back) when SQLite cannot write, e.g. the
        disk is full: nothing half-written remains.
        """
        conn = self._connect()
        if getattr(self._local, "grouped", False):
            # Inside this thread's group(): one savepoint, so a failing file rolls back
            # alone and the group's one COMMIT carries the others. Its held rows first:
            # the group's rows go in in the order of its files.
            self._write_held(conn)
            with self._savepoint(conn):
                yield conn
            return
        with self._write_lock:
            with _sqlite_errors(self.path, "cannot start a write"):
                conn.execute("BEGIN IMMEDIATE")
            rolled_back = "write failed and was rolled back"
            with _sqlite_errors(self.path, rolled_back, "; check free disk space"):
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: this thread's transactions inside are savepoints of ONE transaction.

        Committed on exit (one WAL fsync for the whole group). Raise StateStoreError when
        the group could not be committed; then nothing of it was recorded.
        """
        with self.transaction() as conn:
            self._local.grouped, self._local.broken, self._local.held = True, False, None
            try:
                yield
                if self._local.broken:
                    raise StateStoreError(f"{self.path}: a write of this group failed")
                self._write_held(conn)
            finally:
                self._local.grouped, self._local.held = False, None

    def group_held(self, new: Callable[[], _H]) -> _H | None:
        """Inside this thread's group(): the rows it holds (made by `new` on first use), to
        be written at once before its next other write or its commit; else None. Raise
        StateStoreError after a failed write. `has_file` knows the held files' digests."""
        local = self._local.__dict__  # once per spool file: plain dict gets
        if not local.get("grouped"):
            return None
        if local["broken"]:
            raise StateStoreError(f"{self.path}: an earlier write of this group failed")
        held: _H | None = local["held"]
        if held is None:
            held = local["held"] = new()
        return held

    def _write_held(self, conn: sqlite3.Connection) -> None:
        """Write the rows the group holds; a failure breaks the group (`break_group`)."""
        held, self._local.held = self._local.held, None
        if held is None:
            return
        try:
            held.write(conn)
        except sqlite3.Error as error:
            raise self.break_group(error) from None
        except BaseException:
            self._local.broken = True  # some of them may be written: never commit them
            raise

    def group_writer(self) -> sqlite3.Connection:
        """Inside this thread's group(): its connection, for a file written without a
        savepoint (all its rows known before its first write), once the group's held rows
        are written. A write through it that fails must `break_group`. Raise
        StateStoreError after a failed write."""
        if self._local.broken:
            raise StateStoreError(f"{self.path}: an earlier write of this group failed")
        conn = self._connect()
        self._write_held(conn)
        return conn

    def break_group(self, error: BaseException) -> StateStoreError:
        """A `group_writer` write failed half-way through a file: return the error to raise;
        the group will not commit (nothing of it is recorded; its files stay in the spool)."""
        self._local.broken = True
        return StateStoreError(
            f"{self.path}: write failed and was rolled back ({error}); check free disk space"
        )

    @contextlib.contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        if self._local.broken:
            raise StateStoreError(f"{self.path}: an earlier write of this group failed")
        rolled_back = "write failed and was rolled back"
        with _sqlite_errors(self.path, rolled_back, "; check free disk space"):
            conn.execute("SAVEPOINT intake_file")
            try:
                yield
                conn.execute("RELEASE intake_file")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK TO intake_file")
                    conn.execute("RELEASE intake_file")
                # SQLite may have rolled the whole transaction back itself (SQLITE_FULL,
                # IOERR): a later SAVEPOINT would then start and commit a new one without
                # the files before it, whose moves wait for the group's commit. Refuse.
                if not conn.in_transaction:
                    self._local.broken = True
                raise

    def _migrate(self) -> None:
        conn = self._connect()
        with _sqlite_errors(self.path, "cannot read the schema version"):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"{self.path}: schema version {version} is newer than this receipt-agent "
                f"understands ({SCHEMA_VERSION}); upgrade receipt-agent"
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction() as tx:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {number + 1}")

    # --- files ---------------------------------------------------------------------------

    def has_file(self, digest: str) -> bool:
        """Given a file digest, return whether that content was already taken in (or is
        held by this thread's group, to be written at its commit)."""
        # Once per spool file: what @_reads and _connect() do, inline (~9,000 instructions
        # of calls per file, callgrind).
        local = self._local.__dict__  # this thread's: one lookup, then plain dict gets
        held = local.get("held")
        if held is not None and digest in held.digests:
            return True
        try:
            conn = local.get("conn") or self._connect()
            return conn.execute(_HAS_FILE, (digest,)).fetchone() is not None
        except sqlite3.Error as error:
            raise StateStoreError(f"{self.path}: cannot read the state store ({error})") from None

    # --- receipts ------------------------------------------------------------------------

    @_reads
    def counts(self) -> dict[str, int]:
        """Return the number of receipts per state (every state present)."""
        rows = self._connect().execute(statedb_sql.COUNTS)
        counts = dict.fromkeys(STATES, 0)
        counts.update(dict(rows))
        return counts

    @_reads
    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """Return {source: {state: count}}."""
        rows = self._connect().execute(
            "SELECT source, state, COUNT(*) FROM receipts GROUP BY source, state"
        )
        result: dict[str, dict[str, int]] = {}
        for source, state, count in rows:
            result.setdefault(source, dict.fromkeys(STATES, 0))[state] = count
        return result

    @_reads
    def pending_count(self) -> int:
        """Return how many receipts wait to be sent."""
        row = self._connect().execute("SELECT COUNT(*) FROM receipts WHERE state = 'pending'")
        return int(row.fetchone()[0])

    @_reads
    def oldest_pending_created_at(self) -> float | None:
        """Return the creation time (unix seconds) of the oldest pending receipt."""
        # Rows are inserted in time order, so the lowest pending id is the oldest: one step
        # along the partial index instead of MIN(created_at) over every pending row (17 ms
        # per call at 100,000 pending, paid by every flush and backlog tick).
        row = (
            self._connect()
            .execute(
                "SELECT created_at FROM receipts INDEXED BY receipts_pending "
                "WHERE state = 'pending' ORDER BY id LIMIT 1"
            )
            .fetchone()
        )
        return None if row is None else float(row[0])

    @_reads
    def oldest_pending_by_source(self) -> dict[str, float]:
        """Return {source: creation time of its oldest pending receipt}."""
        rows = self._connect().execute(
            "SELECT source, MIN(created_at) FROM receipts WHERE state = 'pending' GROUP BY source"
        )
        return {source: float(created) for source, created in rows}

    @_reads
    def due(
        self, *, now: float, limit: int, ignore_backoff: bool = False, after_id: int = 0
    ) -> list[QueuedReceipt]:
        """Return up to `limit` pending receipts due at `now`, above `after_id`, oldest first.

        Without their creation times (`created_at`): CPython's sqlite3 releases the GIL
        around each column read, so every column costs a GIL hand-off per receipt.
        """
        sql, params = _due("id, source, payload, attempts", now, limit, ignore_backoff, after_id)
        return [QueuedReceipt(*row) for row in self._connect().execute(sql, params)]

    @_reads
    def created_at(self, ids: list[int]) -> dict[int, float]:
        """{id: creation time} of these receipts (`retry.give_up_after` is an age)."""
        conn, created = self._connect(), dict[int, float]()
        for chunk in statedb_sql.id_chunks(ids):
            created.update(conn.execute(statedb_sql.created_at(len(chunk)), chunk))
        return created

    @_reads
    def due_size(
        self, *, now: float, limit: int, ignore_backoff: bool = False, after_id: int = 0
    ) -> tuple[int, int]:
        """(how many, payload bytes) of what `due` would return: counted inside SQLite, so
        no row crosses into Python (each one fetched releases the GIL to the intake thread)."""
        sql, params = _due("size_bytes", now, limit, ignore_backoff, after_id)
        counted = f"SELECT count(*), total(size_bytes) FROM ({sql})"  # noqa: S608 - ours
        count, size = self._connect().execute(counted, params).fetchone()
        return count, int(size)

    def mark_sent(self, ids: list[int], *, now: float) -> None:
        """Mark receipts `sent`; their payload is dropped, the (store, receipt) key stays."""
        with self.transaction() as tx:
            write_sent(tx, ids, now=now)

    def mark_rejected(self, receipt_row_id: int, error: str, *, now: float) -> tuple[str, str]:
        """Mark one receipt `rejected` (a dead letter) with the API's message; return its
        (store_id, receipt_id), ("", "") when there is no such receipt."""
        with self.transaction() as tx:
            # Its keys read first, not by UPDATE … RETURNING: that needs SQLite 3.35, and
            # RHEL 9's Python links 3.34. A give-up is rare; one more statement then.
            rows = tx.execute(
                "SELECT store_id, receipt_id FROM receipts WHERE id = ?", (receipt_row_id,)
            ).fetchall()
            tx.execute(
                "UPDATE receipts SET state = 'rejected', attempts = attempts + 1, "
                "last_error = ?, updated_at = ? WHERE id = ?",
                (error, now, receipt_row_id),
            )
        return (rows[0][0], rows[0][1]) if rows else ("", "")

    def mark_retry(self, ids: list[int], error: str, *, now: float, next_attempt_at: float) -> None:
        """Keep receipts pending with attempts+1 and a next attempt time."""
        with self.transaction() as tx:
            for chunk in statedb_sql.id_chunks(ids):
                tx.execute(
                    statedb_sql.mark_retry(len(chunk)), (next_attempt_at, error, now, *chunk)
                )
            _set_meta(tx, "last_error", error)
            _set_meta(tx, "last_error_at", str(now))

    def record_error(self, error: str, *, now: float) -> None:
        """Remember the last send error (for `status` and health)."""
        with self.transaction() as tx:
            _set_meta(tx, "last_error", error)
            _set_meta(tx, "last_error_at", str(now))

    def set_meta(self, key: str, value: str) -> None:
        """Remember one value in meta (the agent's unreadable files, for `status`)."""
        with self.transaction() as tx:
            _set_meta(tx, key, value)

    @_reads
    def rejected_since(self, since: float) -> int:
        """Return how many receipts became `rejected` at or after `since` (unix seconds)."""
        row = self._connect().execute(
            "SELECT COUNT(*) FROM receipts WHERE state = 'rejected' AND updated_at >= ?", (since,)
        )
        return int(row.fetchone()[0])

    @_reads
    def meta(self) -> dict[str, str]:
        """Return the meta table (last_success_at, last_error, last_error_at, …)."""
        return dict(self._connect().execute("SELECT key, value FROM meta"))

    @_reads
    def list_receipts(self, *, state: str | None = None, limit: int = 1000) -> list[ReceiptRow]:
        """Return receipts (newest first), optionally of one state, without payloads."""
        sql = (
            "SELECT id, source, store_id, receipt_id, state, attempts, next_attempt_at, "
            "last_error, created_at, updated_at, file FROM receipts"
        )
        params: tuple[str | int, ...] = (limit,)
        if state is not None:
            sql += " WHERE state = ?"
            params = (state, limit)
        rows = self._connect().execute(sql + " ORDER BY id DESC LIMIT ?", params)
        return [ReceiptRow(*row) for row in rows]

    def retry(self, ids: list[int] | None, *, now: float) -> int:
        """Move rejected receipts back to pending (all of them when `ids` is None)."""
        with self.transaction() as tx:
            sql = (
                "UPDATE receipts SET state = 'pending', next_attempt_at = 0, updated_at = ? "
                "WHERE state = 'rejected' AND size_bytes > 0"
            )
            if ids is None:
                return tx.execute(sql, (now,)).rowcount
            return sum(tx.execute(sql + " AND id = ?", (now, i)).rowcount for i in ids)

    def purge(self, *, state: str, older_than: float) -> int:
        """Delete `sent` or `rejected` receipts last updated before `older_than`."""
        if state not in (SENT, REJECTED):
            raise StateStoreError(f"purge --state {state}: only sent or rejected can be purged")
        with self.transaction() as tx:
            return tx.execute(
                "DELETE FROM receipts WHERE state = ? AND updated_at < ?", (state, older_than)
            ).rowcount

    # --- reports -------------------------------------------------------------------------

    @_reads
    def report_done(self, name: str, period_start: str) -> str | None:
        """Return the file written for this report period, or None."""
        row = (
            self._connect()
            .execute(
                "SELECT file FROM reports WHERE name = ? AND period_start = ?", (name, period_start)
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def record_report(self, name: str, period_start: str, file: str) -> None:
        """Remember that this report period was written."""
        with self.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)",
                (name, period_start, file, time.time()),
            )


def _due(
    columns: str, now: float, limit: int, ignore_backoff: bool, after_id: int
) -> tuple[str, tuple[float | int, ...]]:
    """`due`'s query of `columns`, and its parameters.

    INDEXED BY the partial index: walked in id order, the query stops after `limit` rows.
    Left to itself SQLite picks (state, updated_at), reads EVERY pending row and sorts
    them: O(backlog) per batch, quadratic over a 100,000-receipt drain.
    """
    sql = (
        f"SELECT {columns} FROM receipts INDEXED BY receipts_pending "  # noqa: S608 - ours
        "WHERE state = 'pending' AND id > ?"
    )
    if ignore_backoff:
        return sql + " ORDER BY id LIMIT ?", (after_id, limit)
    return sql + " AND next_attempt_at <= ? ORDER BY id LIMIT ?", (after_id, now, limit)


def write_sent(tx: sqlite3.Connection, ids: list[int], *, now: float) -> None:
    """`mark_sent`'s writes inside a caller's transaction: the sender's group commit takes
    the write lock (`transaction`) before it knows every id of the group."""
    for sql, params in statedb_sql.mark_sent_statements(ids, now):
        tx.execute(sql, params)
    _set_meta(tx, "last_success_at", str(now))


def _set_meta(tx: sqlite3.Connection, key: str, value: str) -> None:
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
