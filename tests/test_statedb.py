"""State store: durable settings, versioned schema, one owner of receipt states."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receipt_agent import statedb, statedb_locks
from receipt_agent.errors import AgentLockedError, StateStoreError


def test_open_sets_wal_full_sync_and_schema_version(tmp_path: Path) -> None:
    """A new state store is in WAL mode with synchronous=FULL and the current user_version."""
    db = statedb.StateDB(tmp_path / "state.db")
    conn = db._connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_open_newer_schema_refuses_with_upgrade_hint(tmp_path: Path) -> None:
    """A database written by a newer receipt-agent is refused, not damaged."""
    path = tmp_path / "state.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {statedb.SCHEMA_VERSION + 1}")
    with pytest.raises(StateStoreError, match="upgrade receipt-agent"):
        statedb.StateDB(path)


def test_insert_same_store_and_receipt_twice_is_a_local_duplicate(tmp_path: Path) -> None:
    """(store_id, receipt_id) is unique: the second insert reports a duplicate."""
    db = statedb.StateDB(tmp_path / "state.db")
    with db.transaction() as tx:
        common = {"source": "s", "payload": b"{}", "file": "f", "now": time.time()}
        assert statedb.insert_receipt(tx, store_id="a", receipt_id="1", **common)
        assert not statedb.insert_receipt(tx, store_id="a", receipt_id="1", **common)
        assert statedb.insert_receipt(tx, store_id="b", receipt_id="1", **common)
    assert db.counts()["pending"] == 2
    db.close()


def test_transaction_rolls_back_everything_on_error(tmp_path: Path) -> None:
    """A failure inside a transaction leaves no receipt and no file digest behind."""
    db = statedb.StateDB(tmp_path / "state.db")

    def failing_intake() -> None:
        with db.transaction() as tx:
            statedb.insert_receipt(
                tx, source="s", store_id="a", receipt_id="1", payload=b"{}", file="f", now=1.0
            )
            statedb.record_file(
                tx, digest="d", source="s", name="f", receipts=1, rejected=0, now=1.0
            )
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_intake()
    assert db.counts()["pending"] == 0
    assert not db.has_file("d")
    db.close()


def test_lock_dir_refuses_a_second_holder(tmp_path: Path) -> None:
    """Only one agent may hold a state directory; the second learns who holds it."""
    first = statedb_locks.lock_dir(tmp_path)
    with pytest.raises(AgentLockedError, match="another receipt-agent"):
        statedb_locks.lock_dir(tmp_path)
    first.close()
    statedb_locks.lock_dir(tmp_path).close()


def test_readonly_open_of_missing_store_explains(tmp_path: Path) -> None:
    """`status` before the first run says there is no state store yet."""
    with pytest.raises(StateStoreError, match="no state store yet"):
        statedb.StateDB(tmp_path / "state.db", readonly=True)


# --- more of the queue's rules, on a real SQLite file ---------------------------------------


def _queue(db: statedb.StateDB, *receipt_ids: str, now: float = 1000.0, **extra: Any) -> None:
    with db.transaction() as tx:
        for receipt_id in receipt_ids:
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc029", receipt_id=receipt_id,
                payload=f'{{"receipt_id": "{receipt_id}"}}'.encode(), file="f.json", now=now,
                **extra,
            )  # fmt: skip


def _ids(db: statedb.StateDB, *receipt_ids: str) -> list[int]:
    rows = {row.receipt_id: row.id for row in db.list_receipts()}
    return [rows[receipt_id] for receipt_id in receipt_ids]


def _receipt_ids(db: statedb.StateDB, queued: list[statedb.QueuedReceipt]) -> list[str]:
    names = {row.id: row.receipt_id for row in db.list_receipts()}
    return [names[receipt.id] for receipt in queued]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[statedb.StateDB]:
    store = statedb.StateDB(tmp_path / "state.db")
    yield store
    store.close()


def test_due_is_oldest_first_limited_and_honours_backoff(db: statedb.StateDB) -> None:
    """`due` returns pending receipts in arrival order, up to the limit, skipping backed-off ones.

    1. Queue R1..R4; back off R1 until t=2000.
    2. At t=1500: R2, R3 (limit 2); with ignore_backoff (a drain): R1, R2.
    3. At t=2000 R1 is due again, first.
    """
    _queue(db, "R1", "R2", "R3", "R4")
    (r1,) = _ids(db, "R1")
    db.mark_retry([r1], "HTTP 503", now=1100.0, next_attempt_at=2000.0)
    assert _receipt_ids(db, db.due(now=1500.0, limit=2)) == ["R2", "R3"]
    drained = db.due(now=1500.0, limit=2, ignore_backoff=True)
    assert _receipt_ids(db, drained) == ["R1", "R2"]
    assert drained[0].attempts == 1
    assert _receipt_ids(db, db.due(now=2000.0, limit=10)) == ["R1", "R2", "R3", "R4"]
    assert db.meta()["last_error"] == "HTTP 503"


@pytest.mark.parametrize(
    ("now", "limit", "ignore_backoff", "after"),
    [(1500.0, 10, False, 0), (1500.0, 2, True, 0), (2000.0, 10, False, 0), (1500.0, 10, True, 2)],
)
def test_due_size_counts_what_due_returns(
    db: statedb.StateDB, now: float, limit: int, ignore_backoff: bool, after: int
) -> None:
    """`due_size` is the count and payload bytes of `due`'s rows, whatever the backoff,
    limit and starting id (run --once's sender asks it before reading a batch)."""
    _queue(db, "R1", "R2", "R-three", "R4")
    (r1,) = _ids(db, "R1")
    db.mark_retry([r1], "HTTP 503", now=1100.0, next_attempt_at=2000.0)
    db.mark_sent(_ids(db, "R4"), now=1200.0)
    rows = db.due(now=now, limit=limit, ignore_backoff=ignore_backoff, after_id=after)
    assert rows
    assert db.due_size(now=now, limit=limit, ignore_backoff=ignore_backoff, after_id=after) == (
        len(rows),
        sum(len(row.payload) for row in rows),
    )


def test_created_at_answers_each_receipts_creation_time(db: statedb.StateDB) -> None:
    """`created_at` gives each asked receipt's creation time (give_up_after's age), past the
    512 ids of one statement too, and leaves out an id with no receipt."""
    _queue(db, "R1", now=1000.0)
    _queue(db, *(f"B{n}" for n in range(600)), now=1500.25)
    _queue(db, "R2", now=2000.5)
    r1, r2 = _ids(db, "R1", "R2")
    assert db.created_at([r2, r1, 10_000]) == {r1: 1000.0, r2: 2000.5}
    every = db.created_at(list(range(r1, r2 + 1)))
    assert len(every) == 602
    assert set(every.values()) == {1000.0, 1500.25, 2000.5}


def test_mark_sent_drops_the_payload_keeps_the_key_and_records_success(
    db: statedb.StateDB, tmp_path: Path
) -> None:
    """Sent: not due again, payload gone, and the same receipt dropped again is a duplicate."""
    _queue(db, "R1", "R2")
    db.mark_sent(_ids(db, "R1"), now=1200.0)
    assert db.counts() == {"pending": 1, "sent": 1, "rejected": 0}
    assert _receipt_ids(db, db.due(now=1200.0, limit=10)) == ["R2"]
    assert db.meta()["last_success_at"] == "1200.0"
    raw = sqlite3.connect(tmp_path / "state.db")
    try:
        payload = raw.execute("SELECT payload FROM receipts WHERE receipt_id = 'R1'").fetchone()
    finally:
        raw.close()
    assert payload == (b"",)
    with db.transaction() as tx:
        again = statedb.insert_receipt(
            tx, source="till-1", store_id="sc029", receipt_id="R1", payload=b"{}",
            file="g.json", now=1300.0,
        )  # fmt: skip
    assert again is False
    assert db.counts()["sent"] == 1


def test_a_corrected_receipt_replaces_its_rejected_predecessor(db: statedb.StateDB) -> None:
    """A receipt rejected at intake, dropped again corrected, is queued; a pending one is not."""
    _queue(db, "R1", rejected_error="gross_amount: not a number")
    _queue(db, "R2")
    assert db.counts() == {"pending": 1, "sent": 0, "rejected": 1}
    _queue(db, "R1", "R2", now=2000.0)
    assert db.counts() == {"pending": 2, "sent": 0, "rejected": 0}
    (row,) = [r for r in db.list_receipts() if r.receipt_id == "R1"]
    assert (row.state, row.last_error, row.attempts) == ("pending", None, 0)


def test_retry_moves_remote_rejections_back_but_never_intake_rejections(
    db: statedb.StateDB,
) -> None:
    """`queue retry` resends what Dintero refused; a receipt that failed validation has no payload.

    1. R1 refused by the API (mark_rejected names it by store and receipt id); R2 rejected
       at intake (no payload kept).
    2. retry everything: 1 moved, R1 pending and due at once; R2 stays rejected.
    """
    _queue(db, "R1")
    _queue(db, "R2", rejected_error="currency: must be 3 letters")
    (r1,) = _ids(db, "R1")
    assert db.mark_rejected(r1, "Dintero refused this receipt (400)", now=1100.0) == (
        "sc029",
        "R1",
    )
    assert db.mark_rejected(r1 + 100, "no such receipt", now=1100.0) == ("", "")
    assert db.retry(None, now=1200.0) == 1
    states = {row.receipt_id: row.state for row in db.list_receipts()}
    assert states == {"R1": "pending", "R2": "rejected"}
    assert _receipt_ids(db, db.due(now=1200.0, limit=10)) == ["R1"]
    assert db.retry([r1], now=1300.0) == 0  # already pending


def test_purge_deletes_only_old_finished_receipts(db: statedb.StateDB) -> None:
    """Purge removes sent/rejected rows older than the cut-off and refuses to touch pending."""
    _queue(db, "R1", "R2", "R3")
    r1, r2 = _ids(db, "R1", "R2")
    db.mark_sent([r1], now=1000.0)
    db.mark_sent([r2], now=5000.0)
    assert db.purge(state="sent", older_than=2000.0) == 1
    assert sorted(row.receipt_id for row in db.list_receipts()) == ["R2", "R3"]
    with pytest.raises(StateStoreError, match="only sent or rejected"):
        db.purge(state="pending", older_than=9999.0)
    assert db.counts()["pending"] == 1


def test_writes_from_many_threads_are_serialised_and_all_kept(db: statedb.StateDB) -> None:
    """Eight threads inserting at once (each with its own connection) lose no row."""
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            _queue(db, *(f"T{number}-{i}" for i in range(50)))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.pending_count() == 400
    raw = sqlite3.connect(db.path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()


def test_a_writer_waiting_for_the_store_goes_before_the_holders_next_write(
    db: statedb.StateDB,
) -> None:
    """First come, first served: the holder's next transaction queues behind a waiting one.

    With a plain lock the releasing thread took it straight back (on one core the waiter
    never ran first), so a sender's `sent` mark waited out intake group after group.
    """
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction():
            holding.set()
            release.wait(30)
            order.append("holder")
        with db.transaction():
            order.append("holder again")

    def waiter() -> None:
        with db.transaction():
            order.append("waiter")

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(5)
    second = threading.Thread(target=waiter)
    second.start()
    try:
        deadline = time.monotonic() + 30
        while db.writers_waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
    first.join(30)
    second.join(30)
    assert order == ["holder", "waiter", "holder again"]


def test_a_writer_interrupted_while_queued_does_not_stall_the_writers_after_it(
    db: statedb.StateDB,
) -> None:
    """A thread that stops waiting for the write lock (a signal's exception) gives up its turn."""

    class Interrupted(Exception):  # noqa: N818 - named for what happened to the waiter
        """The signal handler's exception."""

    def interrupted(signum: int, frame: object) -> None:
        raise Interrupted

    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction():
            holding.set()
            release.wait(30)

    def interrupt_the_queued_main_thread() -> None:
        deadline = time.monotonic() + 30
        while db.writers_waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGUSR1)

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(5)
    previous = signal.signal(signal.SIGUSR1, interrupted)
    try:
        killer = threading.Thread(target=interrupt_the_queued_main_thread)
        killer.start()
        with pytest.raises(Interrupted), db.transaction():
            pass
        killer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release.set()
        first.join(30)
    later = threading.Thread(target=_queue, args=(db, "after"))
    later.start()
    later.join(10)
    assert not later.is_alive()
    assert db.pending_count() == 1


def test_a_closed_and_reopened_store_keeps_everything_without_migrating_again(
    tmp_path: Path,
) -> None:
    """What was committed survives close and reopen; reports remember their periods."""
    path = tmp_path / "state.db"
    first = statedb.StateDB(path)
    _queue(first, "R1")
    first.record_report("monthly", "2026-10-01", "/out/monthly-2026-10.csv")
    first.close()
    again = statedb.StateDB(path)
    try:
        assert again.counts()["pending"] == 1
        assert again.report_done("monthly", "2026-10-01") == "/out/monthly-2026-10.csv"
        assert again.report_done("monthly", "2026-11-01") is None
    finally:
        again.close()
    readonly = statedb.StateDB(path, readonly=True)
    try:
        assert readonly.oldest_pending_created_at() == 1000.0
        with pytest.raises(StateStoreError, match="readonly"):
            _queue(readonly, "R2")
    finally:
        readonly.close()


def test_a_damaged_store_is_a_state_store_error_on_reads_too(tmp_path: Path) -> None:
    """A state.db that is not a database fails every operation with StateStoreError, not sqlite3.

    1. Create a store, then overwrite its file with text (a disk error, a wrong file).
    2. Opening it for writing, and every read of a read-only open, say which file and why.
    """
    path = tmp_path / "state.db"
    statedb.StateDB(path).close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not an SQLite database, just some text\n" * 100)
    with pytest.raises(StateStoreError, match=r"state\.db: .*not a database"):
        statedb.StateDB(path)
    readonly = statedb.StateDB(path, readonly=True)
    try:
        for read in (
            readonly.counts, readonly.pending_count, readonly.meta, readonly.list_receipts,
            readonly.oldest_pending_by_source, lambda: readonly.has_file("d"),
            lambda: readonly.due(now=0.0, limit=1),
        ):  # fmt: skip
            with pytest.raises(StateStoreError, match="cannot read the state store"):
                read()
    finally:
        readonly.close()
