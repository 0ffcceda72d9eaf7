"""One spool file's records into the state store (CONTRACT §3 steps 2-4, §7's ledger).

`write_records` parses and maps a file opened by `intake.take_in` and writes, in ONE
state-store transaction (or a group's: `intake_group`), its receipts (valid → pending,
invalid → rejected with field errors, already known → local duplicate), their ledger rows
and the file's digest; a file that cannot be parsed writes nothing (ParseError). Returns
the file's `FileOutcome` and the receipt lines `intake` logs after the commit. Never
touches a spool file and never logs.
"""

from __future__ import annotations

import io
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast, get_args

import orjson

from receipt_agent import ledger, ledger_store, statedb
from receipt_agent.config import SourceBase
from receipt_agent.errors import ParseError, ReceiptAgentError
from receipt_agent.formats import InvalidRecord, RawReceipt, SkippedRecord, get_parser
from receipt_agent.mapping import ValidReceipt, finish_receipt
from receipt_agent.records import SkipReason


@dataclass
class FileOutcome:
    """What happened to one spool file."""

    source: str
    file: str
    # accepted | already_seen | archived (after a hold) | quarantined | changed | held
    outcome: str
    receipts: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    recorded: bool = False  # its receipts and digest were written (committed, or in a group)


def write_records(
    stream: IO[bytes], path: Path, source: SourceBase, db: statedb.StateDB, digest: str
) -> tuple[FileOutcome, list[tuple[str, str, str]], list[tuple[str, str]]]:
    name = path.name  # a Path computes it on every use
    outcome = FileOutcome(source.name, name, "accepted")
    rejections: list[tuple[str, str, str]] = []
    duplicates: list[tuple[str, str]] = []
    now = time.time()
    format_name = source.format_name  # a property
    records: Iterable[ValidReceipt | InvalidRecord | SkippedRecord] = (
        finish_receipt(record, source) if isinstance(record, RawReceipt) else record
        for record in get_parser(format_name)(stream, source)
    )
    if (
        isinstance(stream, io.BytesIO)  # read whole (the usual small file)
        and format_name != "saft-cashregister"  # no second pass (control totals)
        and (held := db.group_held(GroupRows)) is not None
    ):
        # In a group, such a file is parsed and mapped whole before its first write, so
        # nothing but SQLite can fail between its writes: no savepoint of its own (two
        # statements and two context managers per file). A failed write breaks the whole
        # group instead (nothing of it is committed; every file stays in the spool).
        records = _parse_whole(records, source)
        if all(isinstance(record, ValidReceipt) for record in records):
            valid = cast(list[ValidReceipt], records)
            if len(valid) <= HELD_RECEIPTS:
                # Its rows wait for the group's other files (GroupRows); its counts and
                # `duplicates` are filled when they are written, before the commit.
                held.add(outcome, duplicates, valid, digest, now)
                outcome.skipped = dict(NO_SKIPS)
                outcome.recorded = True
                return outcome, rejections, duplicates
            conn = db.group_writer()  # the rows held so far are written first
            try:
                _record_valid(conn, valid, outcome, duplicates, source, now)
                statedb.record_file(
                    conn, digest=digest, source=source.name, name=name,
                    receipts=outcome.receipts, rejected=0, now=now,
                )  # fmt: skip
            except sqlite3.Error as error:
                raise db.break_group(error) from None
            except BaseException as error:
                db.break_group(error)  # half of this file may be written: never commit it
                raise
            outcome.skipped = dict(NO_SKIPS)
            outcome.recorded = True
            return outcome, rejections, duplicates
    valid = []  # written in chunks; flushed before any other row
    skipped: Counter[str] = Counter()
    with db.transaction() as tx:
        try:
            for finished in records:
                if isinstance(finished, ValidReceipt):
                    valid.append(finished)
                    if len(valid) >= _VALID_CHUNK:
                        _record_valid(tx, valid, outcome, duplicates, source, now)
                    continue
                # Rows stay in the file's order (the ledger's rowid order is reconcile's).
                _record_valid(tx, valid, outcome, duplicates, source, now)
                if isinstance(finished, SkippedRecord):
                    skipped[finished.reason] += 1
                    _record_skipped(tx, finished, source, name, now)
                    continue
                store_id, receipt_id, message = _describe_invalid(finished, source, path)
                statedb.insert_receipt(
                    tx, source=source.name, store_id=store_id, receipt_id=receipt_id,
                    payload=orjson.dumps(finished.data, default=str), file=name, now=now,
                    rejected_error=message,
                )  # fmt: skip
                outcome.rejected += 1
                rejections.append((store_id, receipt_id, message))
                _record_rejected(tx, finished, store_id, receipt_id, source, name, now)
            _record_valid(tx, valid, outcome, duplicates, source, now)
            _record_controls(tx, stream, source, name, now)
        except (OSError, sqlite3.Error, ReceiptAgentError):
            raise  # the file system, the state store, or an InputFileError: handled above
        except Exception as error:  # noqa: BLE001 - the per-file boundary: a parser or mapper bug
            # Rolled back with the transaction (see _reader_failure).
            raise _reader_failure(error, source) from None
        statedb.record_file(
            tx, digest=digest, source=source.name, name=name,
            receipts=outcome.receipts, rejected=outcome.rejected, now=now,
        )  # fmt: skip
    outcome.skipped = _skip_counts(skipped)
    outcome.recorded = True
    return outcome, rejections, duplicates


HELD_RECEIPTS = 8  # a group holds a file of up to this many valid receipts (GroupRows)


class GroupRows:
    """The rows of a group's small files (read whole, every receipt valid, at most
    HELD_RECEIPTS), held to be written at once: one multi-row statement per table (and
    chunk of 64 rows) for the whole group, where a file at a time takes three per file
    (has_file's SELECT stays one per file). `statedb.StateDB.group_held` keeps one per
    open group and writes it before any other write of the group and before its commit,
    so rows go in in file order, and each file's counts (new receipts, local duplicates)
    come out as they would have one file at a time. Their times are the first held file's.
    """

    __slots__ = ("_files", "_now", "digests")

    def __init__(self) -> None:
        self._files: list[tuple[FileOutcome, list[tuple[str, str]], list[ValidReceipt], str]] = []
        self.digests: set[str] = set()  # of the files held (StateDB.has_file reads them)
        self._now = 0.0

    def add(
        self,
        outcome: FileOutcome,
        duplicates: list[tuple[str, str]],
        valid: list[ValidReceipt],
        digest: str,
        now: float,
    ) -> None:
        """Hold one file's receipts; `outcome` and `duplicates` are filled by `write`."""
        if not self._files:
            self._now = now
        self._files.append((outcome, duplicates, valid, digest))
        self.digests.add(digest)

    def write(self, conn: sqlite3.Connection) -> None:
        """Write every held row (a run of files of one source at a time), fill the counts."""
        files, self._files = self._files, []
        start = 0
        while start < len(files):
            source = files[start][0].source
            end = start + 1
            while end < len(files) and files[end][0].source == source:
                end += 1
            self._write_run(conn, files[start:end], source)
            start = end

    def _write_run(
        self,
        conn: sqlite3.Connection,
        files: list[tuple[FileOutcome, list[tuple[str, str]], list[ValidReceipt], str]],
        source: str,
    ) -> None:
        now = self._now
        _write_valid(conn, [(o, d, valid) for o, d, valid, _ in files], source, now)
        statedb.record_files(
            conn, [(digest, o.file, o.receipts) for o, _, _, digest in files],
            source=source, now=now,
        )  # fmt: skip


def _parse_whole(
    records: Iterable[ValidReceipt | InvalidRecord | SkippedRecord], source: SourceBase
) -> list[ValidReceipt | InvalidRecord | SkippedRecord]:
    """Every finished record of a file read whole, before anything of it is written."""
    try:
        return list(records)
    except (OSError, sqlite3.Error, ReceiptAgentError):
        raise  # as in write_records
    except Exception as error:  # noqa: BLE001 - the per-file boundary: a parser or mapper bug
        raise _reader_failure(error, source) from None


def _reader_failure(error: Exception, source: SourceBase) -> ParseError:
    """The ParseError for an exception out of a parser or mapper.

    The file goes to quarantine instead of failing again on every pass. A reader bug is
    named by its type and code line only: an exception's message may quote a value from
    the export.
    """
    if isinstance(error, UnicodeDecodeError | RecursionError):
        return ParseError(f"cannot be parsed ({type(error).__name__}: {error})")
    return ParseError(
        f"the {source.format_name} reader failed on this file "
        f"({type(error).__name__}, a bug in receipt-agent); please report it",
        detail=_crash_site(error),
    )


_VALID_CHUNK = 512  # valid receipts held before they are written (memory stays flat)


def _record_valid(
    tx: Any,
    valid: list[ValidReceipt],
    outcome: FileOutcome,
    duplicates: list[tuple[str, str]],
    source: SourceBase,
    now: float,
) -> None:
    """Write the valid receipts held so far and their ledger rows, count them, empty `valid`."""
    if not valid:
        return
    _write_valid(tx, [(outcome, duplicates, valid)], source.name, now)
    valid.clear()


def _write_valid(
    conn: sqlite3.Connection,
    files: list[tuple[FileOutcome, list[tuple[str, str]], list[ValidReceipt]]],
    source: str,
    now: float,
) -> None:
    """Queue the valid receipts of `files` (each: its outcome, its local duplicates, its
    receipts; in file order) and their ledger rows; count each file's new receipts and
    local duplicates."""
    is_new = statedb.insert_receipts_of_files(
        conn,
        [(r.store_id, r.receipt_id, r.payload, o.file) for o, _, valid in files for r in valid],
        source=source, now=now,
    )  # fmt: skip
    ledger_store.record_entries_of_files(
        conn,
        [
            (r.store_id, r.receipt_id, r.entry, o.file)
            for o, _, valid in files
            for r in valid
            if r.entry is not None
        ],
        source=source, now=now,
    )  # fmt: skip
    start = 0
    for outcome, duplicates, valid in files:
        end = start + len(valid)
        answers = is_new[start:end]
        start = end
        if all(answers):  # the usual file: every receipt new, counted at once
            outcome.receipts += len(valid)
            continue
        for receipt, new in zip(valid, answers, strict=True):
            if new:
                outcome.receipts += 1
            else:
                outcome.duplicates += 1
                duplicates.append((receipt.store_id, receipt.receipt_id))


_SKIP_REASONS: tuple[str, ...] = get_args(SkipReason)


NO_SKIPS = dict.fromkeys(_SKIP_REASONS, 0)


def _skip_counts(skipped: Counter[str]) -> dict[str, int]:
    """`file.accepted`'s skipped: every reason of CONTRACT §2 (non_sale, training, voided)."""
    if not skipped:  # the usual file: a copy, not three lookups of missing keys
        return dict(NO_SKIPS)
    return {reason: skipped[reason] for reason in _SKIP_REASONS}


def _crash_site(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "nothing from this file was queued"
    last = frames[-1]
    return (
        f"raised at {Path(last.filename).name}:{last.lineno} in {last.name}; nothing from "
        "this file was queued; move it back into the source folder after an upgrade"
    )


def _record_controls(tx: Any, stream: IO[bytes], source: SourceBase, file: str, now: float) -> None:
    """The till's own control totals (SAF-T Z reports), a second streamed pass (CONTRACT §7)."""
    if source.format_name != "saft-cashregister":
        return
    from receipt_agent.formats.saft_events import read_controls  # XML stack: only for SAF-T

    for report in read_controls(stream, source):
        ledger_store.record_control(
            tx, source=source.name, store_id=report.store_id, register=report.register,
            business_day=report.business_day, report_id=report.report_id,
            totals=report.totals, file=file, now=now,
        )  # fmt: skip


def _record_skipped(
    tx: Any, record: SkippedRecord, source: SourceBase, file: str, now: float
) -> None:
    """A skipped transaction's ledger row (CONTRACT §7: a skipped training receipt is no gap)."""
    day = ledger.valid_day(record.business_day)
    if day is None:
        return  # no day to put it on; it is still counted in file.accepted
    content = f"{record.reason}|{record.content or ''}|{day}"
    entry = ledger.LedgerEntry(
        register=record.register_id or "", number=record.number, business_day=day,
        outcome=record.reason, content=ledger.digest(content.encode()),
    )  # fmt: skip
    ledger_store.record_entry(
        tx, source=source.name, store_id=record.store_id or source.store.id, receipt_id=None,
        entry=entry, file=file, now=now, location=record.location,
    )  # fmt: skip


def _record_rejected(
    tx: Any,
    record: InvalidRecord,
    store_id: str,
    receipt_id: str,
    source: SourceBase,
    file: str,
    now: float,
) -> None:
    """A rejected transaction's ledger row, on the day of its purchase_at when readable."""
    purchase_at = record.data.get("purchase_at")
    day = ledger.valid_day(record.business_day)
    try:
        if day is None and purchase_at:
            day = ledger.business_day(str(purchase_at), source.tz)
    except (ValueError, TypeError):
        day = None
    if day is None:
        return  # no day to put it on; `status` and `queue list` still show it
    entry = ledger.LedgerEntry(
        register=record.register_id or "", number=record.number, business_day=day,
        outcome=ledger.REJECTED, content=ledger.digest(orjson.dumps(record.data, default=str)),
    )  # fmt: skip
    ledger_store.record_entry(
        tx, source=source.name, store_id=store_id, receipt_id=receipt_id, entry=entry,
        file=file, now=now,
    )  # fmt: skip


def _describe_invalid(
    record: InvalidRecord, source: SourceBase, path: Path
) -> tuple[str, str, str]:
    store_id = record.store_id or source.store.id
    receipt_id = (
        record.receipt_id or f"{path.name}{'@' + record.location if record.location else ''}"
    )
    where = f"{path.name}: {record.location}: " if record.location else f"{path.name}: "
    return store_id, receipt_id, where + "; ".join(record.errors)
