"""The state store's schema: its migrations, in order (`statedb` applies them on open).

Migration N takes PRAGMA user_version from N-1 to N inside one transaction. A migration is
never edited once released: a change is a new migration appended at the end, and it must
keep every existing row (a store machine upgrades with receipts still pending). Data only:
no I/O here; `statedb` owns the connection and the upgrade.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE files (
        digest      TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        name        TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        receipts    INTEGER NOT NULL,
        rejected    INTEGER NOT NULL
    );
    CREATE TABLE receipts (
        id              INTEGER PRIMARY KEY,
        source          TEXT NOT NULL,
        store_id        TEXT NOT NULL,
        receipt_id      TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'rejected')),
        payload         BLOB NOT NULL,
        size_bytes      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        file            TEXT,
        UNIQUE (store_id, receipt_id)
    );
    CREATE INDEX receipts_pending ON receipts (id) WHERE state = 'pending';
    CREATE INDEX receipts_state_updated ON receipts (state, updated_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE reports (
        name         TEXT NOT NULL,
        period_start TEXT NOT NULL,
        file         TEXT NOT NULL,
        generated_at REAL NOT NULL,
        PRIMARY KEY (name, period_start)
    );
    """,
    # 2: reconciliation (CONTRACT §7). New tables only: every existing row stays as it is.
    # `ledger`: one row per transaction content seen (receipts, rejected and skipped ones);
    # the same number with two contents is two rows, which reconcile names.
    # `control_totals`: the till's own totals (SAF-T Z reports) per register and day.
    # `reconciliations`: the last result per source, store, register and day.
    """
    CREATE TABLE ledger (
        source       TEXT NOT NULL,
        store_id     TEXT NOT NULL,
        register     TEXT NOT NULL,
        number       TEXT NOT NULL,
        numbered     INTEGER NOT NULL,
        business_day TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        receipt_id   TEXT,
        amount_minor INTEGER,
        figures      TEXT NOT NULL,
        content      TEXT NOT NULL,
        file         TEXT NOT NULL,
        recorded_at  REAL NOT NULL,
        PRIMARY KEY (source, store_id, register, number, content)
    );
    CREATE INDEX ledger_day ON ledger (source, business_day);
    CREATE TABLE control_totals (
        source       TEXT NOT NULL,
        store_id     TEXT NOT NULL,
        register     TEXT NOT NULL,
        business_day TEXT NOT NULL,
        report_id    TEXT NOT NULL,
        totals       TEXT NOT NULL,
        file         TEXT NOT NULL,
        recorded_at  REAL NOT NULL,
        PRIMARY KEY (source, store_id, register, business_day, report_id)
    );
    CREATE TABLE reconciliations (
        source       TEXT NOT NULL,
        store_id     TEXT NOT NULL,
        register     TEXT NOT NULL,
        business_day TEXT NOT NULL,
        result       TEXT NOT NULL,
        gaps         INTEGER NOT NULL,
        mismatches   INTEGER NOT NULL,
        detail       TEXT NOT NULL,
        run_at       REAL NOT NULL,
        PRIMARY KEY (source, store_id, register, business_day)
    );
    """,
    # 3: receipts.state's CHECK written as ORs (the same three values): SQLite evaluates
    # `state IN ('pending', 'sent', 'rejected')` by building an ephemeral table of the
    # list for every row written (callgrind: ~10,000 instructions per INSERT or state
    # UPDATE, a sixth of the state store's work per receipt), the ORs in ~200. A CHECK
    # cannot be altered in SQLite, so the table is rebuilt (the documented way: new
    # table, copy, drop, rename; indexes again); ids and every row stay as they were.
    """
    CREATE TABLE receipts_new (
        id              INTEGER PRIMARY KEY,
        source          TEXT NOT NULL,
        store_id        TEXT NOT NULL,
        receipt_id      TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state = 'pending' OR state = 'sent' OR state = 'rejected'),
        payload         BLOB NOT NULL,
        size_bytes      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        file            TEXT,
        UNIQUE (store_id, receipt_id)
    );
    INSERT INTO receipts_new SELECT id, source, store_id, receipt_id, state, payload,
        size_bytes, attempts, next_attempt_at, last_error, created_at, updated_at, file
        FROM receipts ORDER BY id;
    DROP TABLE receipts;
    ALTER TABLE receipts_new RENAME TO receipts;
    CREATE INDEX receipts_pending ON receipts (id) WHERE state = 'pending';
    CREATE INDEX receipts_state_updated ON receipts (state, updated_at);
    """,
    # 4: the (state, updated_at) index holds sent and rejected receipts only (a partial
    # index). Its readers ask for those states alone (rejected_since, purge, the counts of
    # `status`); pending receipts are found through receipts_pending. Every receipt used
    # to be written into it three times: at intake, out again and back in when sent; now
    # once, when sent (callgrind, files of 100: ~8,000 instructions less per receipt).
    # The OR form, not `<> 'pending'`: SQLite uses a partial index when the query's own
    # term (`state = 'rejected'`, or `state = ?` bound) is one side of the index's OR.
    """
    DROP INDEX receipts_state_updated;
    CREATE INDEX receipts_done ON receipts (state, updated_at)
        WHERE state = 'sent' OR state = 'rejected';
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
