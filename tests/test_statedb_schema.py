"""State store schema: migrations keep every row, and the hot statements stay cheap."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receipt_agent import statedb, statedb_schema, statedb_sql


def _store_at_version(path: Path, version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in statedb_schema.MIGRATIONS[:version]:
        conn.executescript(migration)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def test_migration_3_keeps_every_receipt_and_its_id(tmp_path: Path) -> None:
    """A version-2 state store with pending, sent and rejected receipts opens with every row,
    id and value as it was, and new receipts get ids after the old ones."""
    path = tmp_path / "state.db"
    conn = _store_at_version(path, 2)
    rows = [
        (n, state, payload, f"error {n}", 2.0)
        for n, state, payload in ((3, "pending", b"{}"), (7, "sent", b""), (9, "rejected", b""))
    ]
    before = _old_rows(conn, rows)

    db = statedb.StateDB(path)
    try:
        with db.reading() as reader:
            _assert_upgraded_intact(reader, before)
        with db.transaction() as tx:
            statedb.insert_receipt(
                tx, source="till", store_id="sc029", receipt_id="r-new", payload=b"{}",
                file="b.json", now=3.0,
            )  # fmt: skip
        assert [row.id for row in db.due(now=10.0, limit=10)] == [3, 10]
    finally:
        db.close()


def test_state_check_refuses_an_unknown_state(tmp_path: Path) -> None:
    """The state store itself refuses a receipt state other than pending, sent or rejected."""
    db = statedb.StateDB(tmp_path / "state.db")
    try:
        with db.reading() as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO receipts (source, store_id, receipt_id, state, payload, size_bytes, "
                "created_at, updated_at) VALUES ('till', 'sc029', 'r-1', 'lost', x'', 0, 1, 1)"
            )
    finally:
        db.close()


def test_writing_receipts_builds_no_table_per_row(tmp_path: Path) -> None:
    """Queueing a file's receipts and changing a receipt's state run without an ephemeral
    table (a CHECK written `state IN (…)` builds one for every row: ~10,000 instructions)."""
    db = statedb.StateDB(tmp_path / "state.db")
    try:
        with db.reading() as reader:
            for sql, variables in (
                (statedb_sql.receipts_insert(64), 2 + 4 * 64),
                (statedb_sql.receipts_insert(64, one_store=True), 3 + 3 * 64),
                ("UPDATE receipts SET state = ?, updated_at = ? WHERE id = ?", 3),
            ):
                program = reader.execute(f"EXPLAIN {sql}", [None] * variables).fetchall()
                assert "OpenEphemeral" not in {step[1] for step in program}, sql
    finally:
        db.close()


def test_migration_4_keeps_every_receipt_and_indexes_only_finished_ones(tmp_path: Path) -> None:
    """A version-3 state store opens with every row as it was; its (state, updated_at) index
    now holds only sent and rejected receipts, and status counts, recent rejections and
    purge give the same answers as before."""
    path = tmp_path / "state.db"
    conn = _store_at_version(path, 3)
    rows = [
        (3, "pending", b"{}", None, 2.0),
        (7, "sent", b"", None, 2.0),
        (9, "rejected", b"", None, 4.0),
    ]
    before = _old_rows(conn, rows)

    db = statedb.StateDB(path)
    try:
        with db.reading() as reader:
            _assert_upgraded_intact(reader, before)
            indexes = {row[1]: row[4] for row in reader.execute("PRAGMA index_list(receipts)")}
            assert "receipts_state_updated" not in indexes
            assert indexes["receipts_done"] == 1  # partial
            done = reader.execute(
                "SELECT id FROM receipts INDEXED BY receipts_done "
                "WHERE state = 'sent' OR state = 'rejected' ORDER BY id"
            ).fetchall()
            assert done == [(7,), (9,)]
        assert db.counts() == {"pending": 1, "sent": 1, "rejected": 1}
        assert db.rejected_since(3.0) == 1
        assert db.purge(state="sent", older_than=3.0) == 1
        assert db.counts() == {"pending": 1, "sent": 0, "rejected": 1}
    finally:
        db.close()


def test_finished_receipts_are_found_through_their_partial_index(tmp_path: Path) -> None:
    """Counting by state, recent rejections and purge read the partial indexes, never
    every row of a large store."""
    db = statedb.StateDB(tmp_path / "state.db")
    try:
        with db.reading() as conn:
            for sql, params in (
                (statedb_sql.COUNTS, ()),
                (
                    "SELECT COUNT(*) FROM receipts WHERE state = 'rejected' AND updated_at >= ?",
                    (1.0,),
                ),
                ("DELETE FROM receipts WHERE state = ? AND updated_at < ?", ("sent", 1.0)),
                ("DELETE FROM receipts WHERE state = ? AND updated_at < ?", ("rejected", 1.0)),
            ):
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
                assert not [step for step in plan if step.startswith("SCAN receipts")
                            and "INDEX" not in step], (sql, plan)  # fmt: skip
    finally:
        db.close()


def _old_rows(
    conn: sqlite3.Connection, rows: list[tuple[int, str, bytes, str | None, float]]
) -> list[Any]:
    """Insert (id, state, payload, last_error, updated_at) receipts into a store at an old
    version, close it, and return its receipts as they were."""
    for row_id, state, payload, error, updated in rows:
        conn.execute(
            "INSERT INTO receipts (id, source, store_id, receipt_id, state, payload, size_bytes, "
            "attempts, next_attempt_at, last_error, created_at, updated_at, file) "
            "VALUES (?, 'till', 'sc029', ?, ?, ?, ?, 2, 5.5, ?, 1.0, ?, 'a.json')",
            (row_id, f"r-{row_id}", state, payload, len(payload), error, updated),
        )
    before = conn.execute("SELECT * FROM receipts ORDER BY id").fetchall()
    conn.close()
    return before


def _assert_upgraded_intact(reader: sqlite3.Connection, before: list[Any]) -> None:
    """The store is at the current version with every old receipt unchanged and whole."""
    assert reader.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA_VERSION
    assert reader.execute("SELECT * FROM receipts ORDER BY id").fetchall() == before
    assert reader.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
