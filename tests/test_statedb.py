"""State store: durable settings, versioned schema, one owner of receipt states."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from receipt_agent import statedb
from receipt_agent.errors import AgentLockedError, StateStoreError


def test_open_sets_wal_full_sync_and_schema_version(tmp_path: Path) -> None:
    """A new state store is in WAL mode with synchronous=FULL and the current user_version."""
    db = statedb.StateDB(tmp_path / "state.db")
    conn = db._connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA_VERSION
    assert db.integrity_check() == "ok"
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
    first = statedb.lock_dir(tmp_path)
    with pytest.raises(AgentLockedError, match="another receipt-agent"):
        statedb.lock_dir(tmp_path)
    first.close()
    statedb.lock_dir(tmp_path).close()


def test_readonly_open_of_missing_store_explains(tmp_path: Path) -> None:
    """`status` before the first run says there is no state store yet."""
    with pytest.raises(StateStoreError, match="no state store yet"):
        statedb.StateDB(tmp_path / "state.db", readonly=True)
