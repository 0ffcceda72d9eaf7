"""State store: the multi-row writes intake and the sender use give the per-row outcome."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receipt_agent import ledger_store, statedb, statedb_sql
from receipt_agent.ledger import LedgerEntry


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[statedb.StateDB, statedb.StateDB]]:
    first, second = statedb.StateDB(tmp_path / "a.db"), statedb.StateDB(tmp_path / "b.db")
    yield first, second
    first.close()
    second.close()


def _rows(db: statedb.StateDB) -> list[tuple[object, ...]]:
    with db.reading() as conn:
        return conn.execute(
            "SELECT id, source, store_id, receipt_id, state, payload, size_bytes, attempts, "
            "last_error, created_at, updated_at, file FROM receipts ORDER BY id"
        ).fetchall()


def _seed(db: statedb.StateDB) -> None:
    """R3 pending, R5 sent, R7 and R9 rejected at intake, from an earlier file."""
    with db.transaction() as tx:
        for receipt_id, error in (("R3", None), ("R5", None), ("R7", "bad"), ("R9", "bad")):
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc029", receipt_id=receipt_id,
                payload=b"{}" if error is None else b"", file="old.json", now=500.0,
                rejected_error=error,
            )  # fmt: skip
    db.mark_sent([row.id for row in db.list_receipts() if row.receipt_id == "R5"], now=600.0)


def test_insert_receipts_matches_insert_receipt_one_by_one(
    two: tuple[statedb.StateDB, statedb.StateDB],
) -> None:
    """A file of 150 receipts with repeats, known, sent and rejected keys is queued exactly as
    receipt by receipt: the same rows, and the same new/duplicate answer for each.

    1. Both stores hold R3 pending, R5 sent, R7 and R9 rejected.
    2. One takes the file with insert_receipt per receipt, the other with insert_receipts
       (chunks of 64, 64, 16, 4, 2: a repeat and a replaced rejection fall across chunks).
    Result: identical receipts tables and identical answers.
    """
    one_by_one, batched = two
    _seed(one_by_one)
    _seed(batched)
    keys = [f"R{n}" for n in range(150)] + ["R10", "R7", "R7", "R149", "R3"]
    receipts = [("sc029", key, f'{{"n": "{key}"}}'.encode()) for key in keys]
    receipts.append(("other", "R10", b"{}"))  # the same receipt_id in another store is new
    expected = []
    with one_by_one.transaction() as tx:
        for store_id, receipt_id, payload in receipts:
            is_new = statedb.insert_receipt(
                tx, source="till-1", store_id=store_id, receipt_id=receipt_id,
                payload=payload, file="f.json", now=1000.0,
            )  # fmt: skip
            expected.append(is_new)
    with batched.transaction() as tx:
        answers = statedb.insert_receipts(tx, receipts, source="till-1", file="f.json", now=1000.0)
    assert answers == expected
    assert answers.count(False) == 7  # R3, R5, and the repeats of R10, R7, R7, R149, R3
    assert _rows(batched) == _rows(one_by_one)
    assert batched.counts() == {"pending": 150, "sent": 1, "rejected": 0}


def test_insert_receipts_of_new_receipts_stores_payloads_as_bytes(tmp_path: Path) -> None:
    """New receipts are all answered new, due in file order, with the payload that was given."""
    db = statedb.StateDB(tmp_path / "state.db")
    receipts = [("sc029", f"R{n}", f'{{"n": {n}}}'.encode()) for n in range(3)]
    with db.transaction() as tx:
        assert statedb.insert_receipts(tx, receipts, source="s", file="f", now=1.0) == [True] * 3
    due = db.due(now=2.0, limit=10)
    assert [q.payload for q in due] == [r[2] for r in receipts]
    assert all(type(q.payload) is bytes for q in due)
    db.close()


def test_record_entries_matches_record_entry_one_by_one(
    two: tuple[statedb.StateDB, statedb.StateDB],
) -> None:
    """Ledger rows written in chunks are the rows record_entry writes, in the same order,
    and the same content read twice stays one row."""
    entries = []
    for n in range(90):
        entry = LedgerEntry(
            register="1" if n % 2 else "", number=None if n % 3 else str(n % 70),
            business_day="2026-11-20", outcome="receipt", content=f"c{n % 70}",
            amount_minor=n, vat_minor={"25": n}, payments_minor={"CARD": n},
        )  # fmt: skip
        entries.append(("sc029", f"R{n % 70}", entry))
    dumps = _ledger_both_ways(two, entries, "SELECT rowid, * FROM ledger ORDER BY rowid")
    assert dumps[0] == dumps[1]
    keys = {(e.register, e.number or receipt_id, e.content) for _, receipt_id, e in entries}
    assert len(dumps[0]) == len(keys) < len(entries)


def test_record_entries_of_unnumbered_receipts_writes_the_rows_record_entry_writes(
    two: tuple[statedb.StateDB, statedb.StateDB],
) -> None:
    """A dintero-json file's ledger rows (one store and day, no till number or register),
    written in their short form, hold the same values of the same types as record_entry's,
    in order; a chunk holding another kind of row, store or day is written in full."""
    entries = []
    for n in range(138):  # chunks of 64, 64, 8, 2: short; a rejection; a store; a day
        entry = LedgerEntry(
            register="", number=None, business_day="2026-11-20" if n != 137 else "2026-11-21",
            outcome="receipt" if n != 90 else "rejected", content=f"c{n}",
            amount_minor=None if n == 3 else n, vat_minor={"25": n}, payments_minor={},
        )  # fmt: skip
        entries.append(("sc029" if n != 130 else "other", f"R{n}", entry))
    dumps = _ledger_both_ways(
        two, entries,
        "SELECT rowid, *, typeof(register), typeof(number), typeof(numbered), "
        "typeof(amount_minor), typeof(figures) FROM ledger ORDER BY rowid",
    )  # fmt: skip
    assert dumps[0] == dumps[1]
    assert len(dumps[0]) == len(entries)


def test_mark_sent_and_retry_of_a_large_batch_touch_exactly_those_receipts(
    tmp_path: Path,
) -> None:
    """A batch of 700 ids (two statements, the last padded) is sent; the others stay pending;
    a retry counts one attempt per receipt even for an id given twice."""
    db = statedb.StateDB(tmp_path / "state.db")
    receipts = [("sc029", f"R{n}", b"{}") for n in range(1000)]
    with db.transaction() as tx:
        statedb.insert_receipts(tx, receipts, source="s", file="f", now=1.0)
    ids = [row.id for row in db.list_receipts(limit=2000)]
    db.mark_sent(ids[:700], now=2.0)
    assert db.counts() == {"pending": 300, "sent": 700, "rejected": 0}
    db.mark_retry([*ids[700:703], ids[700]], "HTTP 503", now=3.0, next_attempt_at=9.0)
    retried = {q.id: q.attempts for q in db.due(now=3.0, limit=1000, ignore_backoff=True)}
    assert [retried[i] for i in ids[700:704]] == [1, 1, 1, 0]
    assert len(db.due(now=3.0, limit=1000)) == 297
    raw = sqlite3.connect(tmp_path / "state.db")
    try:
        sent = raw.execute("SELECT COUNT(*) FROM receipts WHERE payload = x''").fetchone()[0]
    finally:
        raw.close()
    assert sent == 700
    db.close()


def test_batch_updates_look_rows_up_by_id_never_scan_the_backlog(tmp_path: Path) -> None:
    """mark_sent and mark_retry of any batch size find their rows by id (a rowid search per
    id), so a batch costs the same with 100,000 receipts pending as with 100."""
    db = statedb.StateDB(tmp_path / "state.db")
    with db.reading() as conn:
        for count in (1, 4, 512):
            for sql, fixed in (
                (statedb_sql.mark_sent(count), 1),
                (statedb_sql.mark_retry(count), 3),
            ):
                plan = conn.execute("EXPLAIN QUERY PLAN " + sql, [0] * (fixed + count)).fetchall()
                assert [row[3] for row in plan] == [
                    "SEARCH receipts USING INTEGER PRIMARY KEY (rowid=?)"
                ], (count, plan)
    db.close()


def test_mark_sent_of_runs_and_scattered_ids_marks_exactly_the_pending_ones(
    tmp_path: Path,
) -> None:
    """Marking sent a run of ids holding a rejected and an already sent receipt, plus a few
    scattered ids, sends exactly the pending receipts among them; the others keep their
    state and attempts, and receipts outside the ids stay pending."""
    db = statedb.StateDB(tmp_path / "state.db")
    with db.transaction() as tx:
        statedb.insert_receipts(
            tx, [("sc029", f"R{n}", b"{}") for n in range(40)], source="s", file="f", now=1.0
        )
    ids = [row.id for row in reversed(db.list_receipts(limit=100))]
    db.mark_rejected(ids[3], "refused", now=1.5)
    db.mark_sent([ids[5]], now=1.5)
    chosen = [*ids[0:20], ids[25], ids[27], ids[30], ids[31]]
    db.mark_sent(chosen, now=2.0)
    with db.reading() as conn:
        states = dict(conn.execute("SELECT id, state || ' ' || attempts FROM receipts"))
    expected = dict.fromkeys(ids, "pending 0")
    expected.update(dict.fromkeys(chosen, "sent 1"))
    expected[ids[3]] = "rejected 1"
    assert states == expected
    assert db.counts() == {"pending": 40 - len(chosen), "sent": len(chosen) - 1, "rejected": 1}
    db.close()


def test_id_runs_cut_ids_into_ranges_and_leftovers() -> None:
    """Consecutive ids (in any order, repeats once) become ranges when at least RUN_MIN
    long; shorter runs are left for the IN list."""
    long_run = list(range(10, 10 + statedb_sql.RUN_MIN))
    assert statedb_sql.id_runs([*reversed(long_run), long_run[0]]) == ([(10, long_run[-1])], [])
    assert statedb_sql.id_runs([*long_run, 40, 41, *range(50, 60), 70]) == (
        [(10, long_run[-1]), (50, 59)],
        [40, 41, 70],
    )
    assert statedb_sql.id_runs([1, 2, 3]) == ([], [1, 2, 3])
    assert statedb_sql.id_runs([]) == ([], [])


def test_mark_sent_of_a_run_walks_its_rowid_range(tmp_path: Path) -> None:
    """A run of ids is marked sent with one rowid range search, never a scan of the backlog."""
    db = statedb.StateDB(tmp_path / "state.db")
    with db.reading() as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + statedb_sql.MARK_SENT_RANGE, [0] * 3)
        assert [row[3] for row in plan] == [
            "SEARCH receipts USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
        ]
    db.close()


def _ledger_both_ways(
    two: tuple[statedb.StateDB, statedb.StateDB],
    entries: list[tuple[str, str, LedgerEntry]],
    query: str,
) -> list[list[Any]]:
    """Write `entries` with record_entry one by one into the first store and with
    record_entries into the second; return `query`'s rows from each."""
    one_by_one, batched = two
    with one_by_one.transaction() as tx:
        for store_id, receipt_id, entry in entries:
            ledger_store.record_entry(
                tx, source="till-1", store_id=store_id, receipt_id=receipt_id, entry=entry,
                file="f.json", now=1000.0,
            )  # fmt: skip
    with batched.transaction() as tx:
        ledger_store.record_entries(tx, entries, source="till-1", file="f.json", now=1000.0)
    dumps = []
    for db in (one_by_one, batched):
        with db.reading() as conn:
            dumps.append(conn.execute(query).fetchall())
    return dumps
