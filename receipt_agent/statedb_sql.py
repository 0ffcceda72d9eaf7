"""SQL text of the state store's multi-row statements, and how rows are cut into them.

Pure: counts in, strings out; `statedb` and `ledger_store` run the statements. One
multi-row statement per chunk instead of one execute per row is what makes intake's
write cheap (issue 17): the per-statement cost of Python's sqlite3 and of SQLite's VM is
paid once per chunk, and values shared by every row (source, time, and a store or day
shared by the chunk) are bound once as ?1, ?2, …

Chunks are powers of two up to 64 rows: a connection's statement cache then holds at
most 7 shapes per statement whatever the files' sizes, and 64 rows x 11 variables stays
under the 999 variables of SQLite before 3.32.
"""

from __future__ import annotations

import functools

CHUNK_ROWS = 64
ID_CHUNK = 512  # ids per UPDATE … WHERE id IN (…)


def chunks(count: int) -> list[tuple[int, int]]:
    """(start, size) of each chunk of `count` rows: 64s, then the binary digits of the rest."""
    result, start, size = [], 0, CHUNK_ROWS
    while start < count:
        while size > count - start:
            size //= 2
        result.append((start, size))
        start += size
    return result


@functools.lru_cache(maxsize=16)
def receipts_insert(rows: int, *, one_store: bool = False) -> str:
    """INSERT of `rows` pending receipts (of one file, or of a group's held files); ?1
    source, ?2 now, then per receipt store_id, receipt_id, payload, file, or with
    `one_store` ?3 the store_id of every receipt and per receipt receipt_id, payload, file.
    A known key is left as it is.

    size_bytes is the payload's length(), and a store shared by the whole chunk (the
    usual file: one till, one store) is bound once: sqlite3 binds each value through a
    locked call (~700 instructions).
    """
    if one_store:
        values = ",".join(
            f"(?1,?3,?{3 * i + 4},'pending',?{3 * i + 5},length(?{3 * i + 5}),NULL,?2,?2,"
            f"?{3 * i + 6})"
            for i in range(rows)
        )
    else:
        values = ",".join(
            f"(?1,?{4 * i + 3},?{4 * i + 4},'pending',?{4 * i + 5},length(?{4 * i + 5}),"
            f"NULL,?2,?2,?{4 * i + 6})"
            for i in range(rows)
        )
    return (
        "INSERT INTO receipts (source, store_id, receipt_id, state, payload, size_bytes, "  # noqa: S608 - placeholders only
        f"last_error, created_at, updated_at, file) VALUES {values} "
        "ON CONFLICT (store_id, receipt_id) DO NOTHING"
    )


def receipts_insert_for(
    chunk: list[tuple[str, str, bytes, str]], source: str, now: float
) -> tuple[str, list[object]]:
    """`receipts_insert` of a chunk of (store_id, receipt_id, payload, file) and its
    parameters."""
    shared = chunk[0][0]
    params: list[object] = [source, now, shared]
    for store_id, receipt_id, payload, file in chunk:  # the usual file: one store, bound once
        if store_id != shared:
            break
        # A bytearray binds as the same BLOB without sqlite3's adapter lookup for bytes
        # (an AttributeError raised and cleared inside: ~1,500 instructions).
        params += (receipt_id, bytearray(payload), file)
    else:
        return receipts_insert(len(chunk), one_store=True), params
    params = [source, now]
    for store_id, receipt_id, payload, file in chunk:
        params += (store_id, receipt_id, bytearray(payload), file)
    return receipts_insert(len(chunk)), params


@functools.lru_cache(maxsize=8)
def files_insert(rows: int) -> str:
    """INSERT OR IGNORE of `rows` files without a rejected receipt; ?1 source, ?2 now, then
    per file digest, name, receipts."""
    values = ",".join(f"(?{3 * i + 3},?1,?{3 * i + 4},?2,?{3 * i + 5},0)" for i in range(rows))
    return f"INSERT OR IGNORE INTO files VALUES {values}"  # noqa: S608 - placeholders only


LEDGER_VARIABLES = 10  # a ledger row's own columns, store_id to content (`ledger_store._row`)
RECEIPT_LEDGER_VARIABLES = 4  # per row of `ledger_receipts_insert`, before its file


@functools.lru_cache(maxsize=8)
def ledger_insert(rows: int) -> str:
    """INSERT OR IGNORE of `rows` ledger rows (the table's column order): ?1 source,
    ?2 recorded_at, then per row store_id … content (LEDGER_VARIABLES) and its file."""
    width = LEDGER_VARIABLES + 1
    values = ",".join(
        "(?1," + ",".join(f"?{width * i + 3 + j}" for j in range(width)) + ",?2)"
        for i in range(rows)
    )
    return f"INSERT OR IGNORE INTO ledger VALUES {values}"  # noqa: S608 - placeholders only


@functools.lru_cache(maxsize=8)
def ledger_receipts_insert(rows: int) -> str:
    """`ledger_insert` of `rows` rows of queued receipts of one store (?3) and business day
    (?4) without a till number or register (a dintero-json file's): per row receipt_id
    (also the number), amount_minor, figures, content and its file. The columns every such
    row holds alike are written in the statement (register '', numbered 0, outcome
    'receipt') or bound once: 5 values bound per row, not 11 (sqlite3 binds each through
    a locked call: ~700 instructions)."""
    width = RECEIPT_LEDGER_VARIABLES + 1
    values = ",".join(
        "(?1,?3,'',?{0},0,?4,'receipt',?{0},?{1},?{2},?{3},?{4},?2)".format(
            *(width * i + 5 + j for j in range(width))
        )
        for i in range(rows)
    )
    return f"INSERT OR IGNORE INTO ledger VALUES {values}"  # noqa: S608 - placeholders only


# The UPDATEs below say NOT INDEXED (rowid lookups stay allowed): with `id IN (…) AND
# state = 'pending'` and no statistics, SQLite picked receipts_state_updated (state=?) and
# read EVERY pending row per batch, O(backlog), instead of one rowid lookup per id.

# Receipts per state, each state counted along its partial index (migration 4): a GROUP BY
# state over the whole table reads every row.
COUNTS = (
    "SELECT 'pending', COUNT(*) FROM receipts WHERE state = 'pending' UNION ALL "
    "SELECT state, COUNT(*) FROM receipts WHERE state = 'sent' OR state = 'rejected' "
    "GROUP BY state"
)

RUN_MIN = 8  # consecutive ids written as one `id BETWEEN` range rather than in an IN list


def id_runs(ids: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """`ids` as (first, last) ranges of at least RUN_MIN consecutive ids, and the ids left.

    A batch is claimed in id order, so its ids are mostly one run: a range is one rowid
    search and a walk, where an IN list builds an ephemeral index of the ids first and
    searches once per id (callgrind, mark_sent of 100: ~1,800 instructions less per id).
    """
    ordered = sorted(set(ids))
    if ordered and ordered[-1] - ordered[0] + 1 == len(ordered) >= RUN_MIN:
        return [(ordered[0], ordered[-1])], []  # the usual batch, or group of batches
    ranges: list[tuple[int, int]] = []
    loose: list[int] = []
    start = 0
    for end in range(1, len(ordered) + 1):
        if end == len(ordered) or ordered[end] != ordered[end - 1] + 1:
            if end - start >= RUN_MIN:
                ranges.append((ordered[start], ordered[end - 1]))
            else:
                loose += ordered[start:end]
            start = end
    return ranges, loose


def id_chunks(ids: list[int]) -> list[list[int]]:
    """`ids` in chunks of up to ID_CHUNK, each padded to a power of two with its last id
    repeated (harmless in an IN list): a handful of statement shapes for any batch."""
    result = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        size = 1
        while size < len(chunk):
            size *= 2
        result.append(chunk + [chunk[-1]] * (size - len(chunk)))
    return result


_SENT = "state = 'sent', payload = x'', attempts = attempts + 1, last_error = NULL, updated_at = ?"


@functools.lru_cache(maxsize=16)
def mark_sent(count: int) -> str:
    """UPDATE to `sent` of `count` ids (an `id_chunks` chunk); ?1 is now."""
    return _pending_by_ids(_SENT, count)


# UPDATE to `sent` of the ids from ?2 to ?3 (an `id_runs` range); ?1 is now.
MARK_SENT_RANGE = (
    f"UPDATE receipts NOT INDEXED SET {_SENT} "  # noqa: S608 - placeholders only
    "WHERE id BETWEEN ? AND ? AND state = 'pending'"
)


def mark_sent_statements(ids: list[int], now: float) -> list[tuple[str, tuple[float, ...]]]:
    """(statement, parameters) that mark `ids` sent at `now`: a range per run, IN for the rest."""
    ranges, loose = id_runs(ids)
    statements: list[tuple[str, tuple[float, ...]]] = [
        (MARK_SENT_RANGE, (now, first, last)) for first, last in ranges
    ]
    statements += [(mark_sent(len(chunk)), (now, *chunk)) for chunk in id_chunks(loose)]
    return statements


@functools.lru_cache(maxsize=16)
def mark_retry(count: int) -> str:
    """UPDATE for a retry of `count` ids; ?1 next_attempt_at, ?2 error, ?3 now."""
    return _pending_by_ids(
        "attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ?", count
    )


def _pending_by_ids(assignments: str, count: int) -> str:
    """UPDATE of the still-pending receipts among `count` ids (NOT INDEXED: see above)."""
    return (
        f"UPDATE receipts NOT INDEXED SET {assignments} "  # noqa: S608 - placeholders only
        f"WHERE id IN ({_marks(count)}) AND state = 'pending'"
    )


def _marks(count: int) -> str:
    return ",".join("?" * count)


@functools.lru_cache(maxsize=16)
def created_at(count: int) -> str:
    """SELECT of (id, created_at) of `count` ids (an `id_chunks` chunk)."""
    return f"SELECT id, created_at FROM receipts WHERE id IN ({_marks(count)})"  # noqa: S608 - placeholders only
