"""Intake's writes into the state store's `receipts` and `files` tables, inside a transaction.

Part of `statedb` (the owner of both tables), split out for its size cap; `statedb`
re-exports these functions and callers use them from there. The caller holds the
transaction (and the write lock); nothing here commits, reads a file or logs.

`insert_receipts` writes one file's valid receipts; `insert_receipts_of_files` and
`record_files` write the receipts and digests of several small files held by a group
(`intake_record.GroupRows`) with one statement per chunk, where a file at a time would
take four statements per file. Either answers, per receipt, what `insert_receipt` one by
one would have: new, or a local duplicate.
"""

from __future__ import annotations

import sqlite3

from receipt_agent import statedb_sql


def insert_receipt(
    tx: sqlite3.Connection,
    *,
    source: str,
    store_id: str,
    receipt_id: str,
    payload: bytes,
    file: str,
    now: float,
    rejected_error: str | None = None,
) -> bool:
    """Inside a transaction, queue a receipt; return False when (store, receipt) exists."""
    state = "pending" if rejected_error is None else "rejected"
    # A corrected receipt dropped again replaces its rejected predecessor; anything
    # pending or sent stays as it is (a local duplicate).
    cursor = tx.execute(
        "INSERT INTO receipts (source, store_id, receipt_id, state, payload, "
        "size_bytes, last_error, created_at, updated_at, file) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (store_id, receipt_id) DO UPDATE SET state = excluded.state, "
        "payload = excluded.payload, size_bytes = excluded.size_bytes, attempts = 0, "
        "next_attempt_at = 0, last_error = excluded.last_error, "
        "updated_at = excluded.updated_at, file = excluded.file "
        "WHERE receipts.state = 'rejected' AND excluded.state = 'pending'",
        (
            source,
            store_id,
            receipt_id,
            state,
            payload,
            len(payload) if rejected_error is None else 0,
            rejected_error,
            now,
            now,
            file,
        ),
    )
    return cursor.rowcount == 1


def insert_receipts(
    tx: sqlite3.Connection,
    receipts: list[tuple[str, str, bytes]],
    *,
    source: str,
    file: str,
    now: float,
) -> list[bool]:
    """Inside a transaction, queue valid receipts given as (store_id, receipt_id, payload).

    Return, in order, whether each is new: the outcome of `insert_receipt` on each in turn
    (a second one with the same key in `receipts` is a local duplicate), with one
    multi-row INSERT per chunk (`statedb_sql`) instead of one statement per receipt.
    """
    rows = [(store_id, receipt_id, payload, file) for store_id, receipt_id, payload in receipts]
    return insert_receipts_of_files(tx, rows, source=source, now=now)


def insert_receipts_of_files(
    tx: sqlite3.Connection,
    receipts: list[tuple[str, str, bytes, str]],
    *,
    source: str,
    now: float,
) -> list[bool]:
    """`insert_receipts` of receipts given as (store_id, receipt_id, payload, file), from
    several files in file order: the same rows and answers as one call per file in turn."""
    inserted = 0
    for start, size in statedb_sql.chunks(len(receipts)):
        sql, params = statedb_sql.receipts_insert_for(receipts[start : start + size], source, now)
        inserted += tx.execute(sql, params).rowcount
    if inserted == len(receipts):
        return [True] * len(receipts)
    return _known_keys(tx, receipts, inserted, source=source, now=now)


def _known_keys(
    tx: sqlite3.Connection,
    receipts: list[tuple[str, str, bytes, str]],
    inserted: int,
    *,
    source: str,
    now: float,
) -> list[bool]:
    """Whether each receipt is new, after chunks that inserted `inserted` of them and left
    the others (their key was there already, or earlier in `receipts`).

    The rows inserted just now are the `inserted` highest ids (a new row gets the highest
    id, and this transaction holds the write lock; no MAX(id) query before every insert
    for this rare case); every other receipt goes through insert_receipt, which replaces
    a rejected predecessor (new) or leaves a pending or sent one (a local duplicate).
    """
    fresh = set(
        tx.execute(
            "SELECT store_id, receipt_id FROM receipts ORDER BY id DESC LIMIT ?", (inserted,)
        )
    )
    result = []
    for store_id, receipt_id, payload, file in receipts:
        key = (store_id, receipt_id)
        if key in fresh:
            fresh.discard(key)  # its first occurrence; a second is a local duplicate
            result.append(True)
        else:
            is_new = insert_receipt(
                tx, source=source, store_id=store_id, receipt_id=receipt_id,
                payload=payload, file=file, now=now,
            )  # fmt: skip
            result.append(is_new)
    return result


def record_file(
    tx: sqlite3.Connection,
    *,
    digest: str,
    source: str,
    name: str,
    receipts: int,
    rejected: int,
    now: float,
) -> None:
    """Inside a transaction, remember that a file's content was taken in."""
    tx.execute(
        "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?, ?, ?)",
        (digest, source, name, now, receipts, rejected),
    )


def record_files(
    tx: sqlite3.Connection, files: list[tuple[str, str, int]], *, source: str, now: float
) -> None:
    """`record_file` of each (digest, name, receipts) of files without a rejected receipt."""
    for start, size in statedb_sql.chunks(len(files)):
        params: list[object] = [source, now]
        for row in files[start : start + size]:
            params += row
        tx.execute(statedb_sql.files_insert(size), params)
