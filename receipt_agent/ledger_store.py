"""The reconciliation tables of the state store: ledger, control totals, results (CONTRACT §7).

The schema lives with every other table in `statedb_schema`'s migrations (migration 2); the
statements that read and write these three tables live here, so `statedb` stays under its
size cap. Inside the intake's transaction `record_entry` and `record_control` add rows
(never update or delete one: a second content for a number is a second row, evidence for
reconcile); `record_result` keeps the last result per register and day. Never logs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from receipt_agent import statedb, statedb_sql
from receipt_agent.ledger import RECEIPT, LedgerEntry


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A ledger row joined with its receipt's state (None when not a queued receipt)."""

    store_id: str
    register: str
    number: str
    numbered: bool
    business_day: str
    outcome: str
    receipt_id: str | None
    amount_minor: int | None
    figures: dict[str, Any]
    content: str
    file: str
    state: str | None


def record_entry(
    tx: sqlite3.Connection,
    *,
    source: str,
    store_id: str,
    receipt_id: str | None,
    entry: LedgerEntry,
    file: str,
    now: float,
    location: str = "",
) -> None:
    """Inside a transaction, remember one transaction (idempotent for the same content).

    Without a till number the row is keyed by its receipt_id, else by `location` in the
    file, so unnumbered transactions are each counted once.
    """
    tx.execute(
        "INSERT OR IGNORE INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (source, *_row(store_id, receipt_id, entry, location), file, now),
    )


def _row(
    store_id: str, receipt_id: str | None, entry: LedgerEntry, location: str = ""
) -> tuple[object, ...]:
    """A ledger row's own columns, store_id to content (source, file and time are shared)."""
    number = entry.number
    return (
        store_id,
        entry.register,
        (receipt_id or location) if number is None else number,
        int(number is not None),
        entry.business_day,
        entry.outcome,
        receipt_id,
        entry.amount_minor,
        orjson.dumps({"vat": entry.vat_minor, "payments": entry.payments_minor}).decode(),
        entry.content,
    )


def record_entries(
    tx: sqlite3.Connection,
    entries: list[tuple[str, str, LedgerEntry]],
    *,
    source: str,
    file: str,
    now: float,
) -> None:
    """Inside a transaction, `record_entry` for each (store_id, receipt_id, entry), in order,
    with one multi-row statement per chunk (`statedb_sql`)."""
    rows = [(store_id, receipt_id, entry, file) for store_id, receipt_id, entry in entries]
    record_entries_of_files(tx, rows, source=source, now=now)


def record_entries_of_files(
    tx: sqlite3.Connection,
    entries: list[tuple[str, str, LedgerEntry, str]],
    *,
    source: str,
    now: float,
) -> None:
    """`record_entries` of (store_id, receipt_id, entry, file) of several files, in order:
    the same rows as one call per file in turn (a group's held rows, `intake_record`)."""
    for start, size in statedb_sql.chunks(len(entries)):
        chunk = entries[start : start + size]
        shared, day = chunk[0][0], chunk[0][2].business_day
        params: list[object] = [source, now, shared, day]
        for store_id, receipt_id, entry, file in chunk:
            # The usual rows (a dintero-json file's: one store and day, no till numbers)
            # in the short form; any other row sends its chunk to the full form. The same
            # rows either way.
            if entry.number is not None or entry.register or not receipt_id:
                break
            if entry.outcome != RECEIPT or store_id != shared or entry.business_day != day:
                break
            figures = orjson.dumps({"vat": entry.vat_minor, "payments": entry.payments_minor})
            params += (receipt_id, entry.amount_minor, figures.decode(), entry.content, file)
        else:
            tx.execute(statedb_sql.ledger_receipts_insert(size), params)
            continue
        params = [source, now]
        for store_id, receipt_id, entry, file in chunk:
            params += (*_row(store_id, receipt_id, entry), file)
        tx.execute(statedb_sql.ledger_insert(size), params)


def record_control(
    tx: sqlite3.Connection,
    *,
    source: str,
    store_id: str,
    register: str,
    business_day: str,
    report_id: str,
    totals: dict[str, Any],
    file: str,
    now: float,
) -> None:
    """Inside a transaction, remember a till's control totals (a Z report) for a day."""
    tx.execute(
        "INSERT OR REPLACE INTO control_totals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            source,
            store_id,
            register,
            business_day,
            report_id,
            orjson.dumps(totals).decode(),
            file,
            now,
        ),
    )


def day_rows(db: statedb.StateDB, source: str, day: str) -> list[LedgerRow]:
    """Return the ledger rows of one source and business day, with their receipts' states."""
    rows = _rows(
        db,
        "SELECT l.store_id, l.register, l.number, l.numbered, l.business_day, l.outcome, "
        "l.receipt_id, l.amount_minor, l.figures, l.content, l.file, r.state "
        "FROM ledger l LEFT JOIN receipts r "
        "ON r.store_id = l.store_id AND r.receipt_id = l.receipt_id "
        "WHERE l.source = ? AND l.business_day = ? ORDER BY l.rowid",
        (source, day),
    )
    return [
        LedgerRow(
            store_id=row[0],
            register=row[1],
            number=row[2],
            numbered=bool(row[3]),
            business_day=row[4],
            outcome=row[5],
            receipt_id=row[6],
            amount_minor=row[7],
            figures=orjson.loads(row[8]),
            content=row[9],
            file=row[10],
            state=row[11],
        )
        for row in rows
    ]


def days(db: statedb.StateDB, source: str) -> list[str]:
    """Return the business days a source has ledger rows or control totals for, in order."""
    rows = _rows(
        db,
        "SELECT business_day FROM ledger WHERE source = ? UNION "
        "SELECT business_day FROM control_totals WHERE source = ? ORDER BY 1",
        (source, source),
    )
    return [str(row[0]) for row in rows]


def register_numbers(
    db: statedb.StateDB, source: str, store_id: str, register: str
) -> list[tuple[str, str]]:
    """Return (number, business_day) of every numbered transaction of one register."""
    rows = _rows(
        db,
        "SELECT DISTINCT number, business_day FROM ledger "
        "WHERE source = ? AND store_id = ? AND register = ? AND numbered = 1",
        (source, store_id, register),
    )
    return [(str(number), str(day)) for number, day in rows]


def controls(db: statedb.StateDB, source: str, day: str) -> list[dict[str, Any]]:
    """Return the control totals of one source and day: store_id, register, report_id, totals."""
    rows = _rows(
        db,
        "SELECT store_id, register, report_id, totals, file FROM control_totals "
        "WHERE source = ? AND business_day = ? ORDER BY store_id, register, report_id",
        (source, day),
    )
    return [
        {
            "store_id": store_id,
            "register": register,
            "report_id": report_id,
            "totals": orjson.loads(totals),
            "file": file,
        }
        for store_id, register, report_id, totals, file in rows
    ]


def previous_control(
    db: statedb.StateDB, source: str, store_id: str, register: str, day: str
) -> dict[str, Any] | None:
    """Return the totals of the register's last Z report before `day`, or None."""
    rows = _rows(
        db,
        "SELECT totals FROM control_totals WHERE source = ? AND store_id = ? "
        "AND register = ? AND business_day < ? AND report_id LIKE 'Z:%' "
        "ORDER BY business_day DESC, recorded_at DESC LIMIT 1",
        (source, store_id, register, day),
    )
    return dict(orjson.loads(rows[0][0])) if rows else None


def record_result(
    db: statedb.StateDB,
    results: list[dict[str, Any]],
    *,
    now: float,
) -> None:
    """Remember reconciliation results, and the overall verdict `status` reads (meta).

    The verdict is kept per source (`reconcile_result:<source>`): a run that checks only
    one source (`reconcile --source`) clears that source's mismatch, never another's.
    """
    verdicts: dict[str, str] = {}
    for result in results:
        if result["result"] != "complete":
            verdicts[result["source"]] = "mismatch"
        else:
            verdicts.setdefault(result["source"], "complete")
    with db.transaction() as tx:
        for result in results:
            tx.execute(
                "INSERT OR REPLACE INTO reconciliations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result["source"],
                    result["store_id"],
                    result["register"],
                    result["date"],
                    result["result"],
                    result["gaps"],
                    result["mismatches"],
                    orjson.dumps(result).decode(),
                    now,
                ),
            )
        for source, verdict in verdicts.items():
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"reconcile_result:{source}", verdict),
            )
        still = tx.execute(
            "SELECT COUNT(*) FROM meta WHERE key LIKE 'reconcile_result:%' AND value = 'mismatch'"
        ).fetchone()[0]
        overall = "mismatch" if still else "complete"
        for key, value in (
            ("reconcile_result", overall),
            ("reconcile_at", str(now)),
            ("reconcile_dates", ",".join(sorted({str(r["date"]) for r in results}))),
        ):
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _rows(db: statedb.StateDB, sql: str, params: tuple[object, ...]) -> list[Any]:
    """Every row of one read query (SQLite errors → StateStoreError, by `db.reading`)."""
    with db.reading() as conn:
        return conn.execute(sql, params).fetchall()
