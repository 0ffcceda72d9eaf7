"""A group's small files written at once (intake_record.GroupRows): the same rows, counts
and lines as one file at a time, written before the group's commit or not at all."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from support import ACCOUNT, SECRET, drop, make_receipt

from receipt_agent import ledger_store, statedb
from receipt_agent.agent import EXIT_OK, Agent
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.errors import StateStoreError
from receipt_agent.intake import take_in
from receipt_agent.intake_group import GroupCommit
from receipt_agent.intake_record import HELD_RECEIPTS
from receipt_agent.intake_worker import IntakeWorker
from receipt_agent.ledger import LedgerEntry
from receipt_agent.metrics import AgentMetrics
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB


@pytest.fixture
def config(offline_config: Callable[..., AgentConfig]) -> AgentConfig:
    return offline_config()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[StateDB, StateDB]]:
    """Two state stores holding the same earlier receipts (see _seed)."""
    stores = StateDB(tmp_path / "one-by-one.db"), StateDB(tmp_path / "grouped.db")
    for store in stores:
        _seed(store)
    yield stores
    for store in stores:
        store.close()


def _seed(db: StateDB) -> None:
    """R000005 pending and R000007 rejected at intake, from an earlier file."""
    with db.transaction() as tx:
        for number, error in ((5, None), (7, "bad")):
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc029", receipt_id=f"R{number:06d}",
                payload=b"{}" if error is None else b"", file="old.json", now=500.0,
                rejected_error=error,
            )  # fmt: skip


def _invalid(number: int) -> dict[str, Any]:
    receipt = make_receipt(number)
    receipt["items"][0]["gross_amount"] = "lots"
    return receipt


def _files() -> list[tuple[str, Any]]:
    """A pass's files: of one receipt mostly, with every case of a receipt already known."""
    files: list[tuple[str, Any]] = [
        ("a.json", make_receipt(1)),
        ("b.json", make_receipt(2)),
        ("c.json", [make_receipt(3), make_receipt(1)]),  # R1: queued by a.json in this pass
        ("d.json", make_receipt(1)),  # a.json's bytes: already seen
        ("e.json", make_receipt(7)),  # corrected: replaces its rejected predecessor
        ("f.json", make_receipt(5)),  # pending from an earlier file: a local duplicate
        ("g.json", [make_receipt(8, store_id="other"), make_receipt(9)]),  # two stores
        ("h.json", [make_receipt(11), make_receipt(11)]),  # twice in one file
        ("empty.json", []),
        # Over what a group holds back: written at once, after the files held before it.
        ("big.json", [make_receipt(n) for n in range(20, 20 + HELD_RECEIPTS)] + [make_receipt(2)]),
        ("i.json", make_receipt(30)),
        ("mixed.json", [make_receipt(31), _invalid(32)]),  # a savepoint of its own
        ("j.json", [make_receipt(31)]),  # queued by mixed.json
        ("k.json", make_receipt(32)),  # rejected by mixed.json, in this pass
    ]
    # Past a chunk of 64 rows: the group's statements are cut as one file's are.
    files += [(f"n{n}.json", make_receipt(n)) for n in range(100, 170)]
    return files


def _drop_all(spool_dir: Path) -> list[Path]:
    return [drop(spool_dir, name, receipts) for name, receipts in _files()]


def _without_time(db: StateDB, sql: str) -> list[tuple[object, ...]]:
    with db.reading() as conn:
        return conn.execute(sql).fetchall()


def _tables(db: StateDB) -> dict[str, list[tuple[object, ...]]]:
    """Every row intake writes, without the times the two runs took them in at."""
    return {
        "receipts": _without_time(
            db,
            "SELECT id, source, store_id, receipt_id, state, payload, size_bytes, attempts, "
            "next_attempt_at, last_error, file FROM receipts ORDER BY id",
        ),
        "ledger": _without_time(
            db,
            "SELECT rowid, source, store_id, register, number, numbered, business_day, "
            "outcome, receipt_id, amount_minor, figures, content, file FROM ledger "
            "ORDER BY rowid",
        ),
        "files": _without_time(
            db, "SELECT digest, source, name, receipts, rejected FROM files ORDER BY digest"
        ),
    }


def _lines(logged: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in line.items() if k != "size_bytes"} for line in logged]


def test_group_writes_the_rows_counts_and_lines_one_file_at_a_time_would(
    config: AgentConfig, two: tuple[StateDB, StateDB], spool_dir: Path
) -> None:
    """A pass of 84 files (of one receipt mostly; duplicates across its files, an identical
    file, a rejected predecessor replaced, a larger and an invalid file among them) taken
    in as one group leaves the same receipts, ledger and files rows, the same outcomes and
    the same log lines as taken in one file at a time.

    1. Both stores hold R5 pending and R7 rejected.
    2. One takes the files in one by one, each committed; the other in one group.
    Result: identical rows (times aside), outcomes and lines, in the same order.
    """
    one_by_one, grouped = two
    source = config.sources[0]
    with capture_logs() as logged_one:
        expected = [take_in(p, source, one_by_one, config) for p in _drop_all(spool_dir)]
    group = GroupCommit(grouped, max_files=200, max_s=60)
    with capture_logs() as logged_grouped:
        outcomes = [
            take_in(p, source, grouped, config, defer=group.defer_for(("till-1", p.name)))
            for p in _drop_all(spool_dir)
        ]
        for _, action in group.commit():
            action()
    assert outcomes == expected
    summary = [(o.file, o.outcome, o.receipts, o.rejected, o.duplicates) for o in outcomes]
    assert summary[:14] == [
        ("a.json", "accepted", 1, 0, 0),
        ("b.json", "accepted", 1, 0, 0),
        ("c.json", "accepted", 1, 0, 1),
        ("d.json", "already_seen", 0, 0, 0),
        ("e.json", "accepted", 1, 0, 0),
        ("f.json", "accepted", 0, 0, 1),
        ("g.json", "accepted", 2, 0, 0),
        ("h.json", "accepted", 1, 0, 1),
        ("empty.json", "accepted", 0, 0, 0),
        ("big.json", "accepted", HELD_RECEIPTS, 0, 1),
        ("i.json", "accepted", 1, 0, 0),
        ("mixed.json", "accepted", 1, 1, 0),
        ("j.json", "accepted", 0, 0, 1),
        ("k.json", "accepted", 1, 0, 0),  # a corrected R32 replaces mixed.json's rejection
    ]
    assert _tables(grouped) == _tables(one_by_one)
    assert _lines(logged_grouped) == _lines(logged_one)
    assert list(spool_dir.iterdir()) == []


def test_group_holds_identical_files_as_one_seen_twice(
    config: AgentConfig, db: StateDB, spool_dir: Path
) -> None:
    """Two files with the same bytes in one group: the second is already seen (archived,
    nothing queued), though the first's digest is not written until the group's commit."""
    first = drop(spool_dir, "a.json", make_receipt(1))
    second = drop(spool_dir, "b.json", make_receipt(1))
    group = GroupCommit(db, max_files=10, max_s=60)
    outcomes = [
        take_in(p, config.sources[0], db, config, defer=group.defer_for(("till-1", p.name)))
        for p in (first, second)
    ]
    with db.reading() as conn:  # held: nothing of them written yet
        assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    for _, action in group.commit():
        action()
    assert [(o.outcome, o.receipts) for o in outcomes] == [("accepted", 1), ("already_seen", 0)]
    assert db.counts()["pending"] == 1
    assert list(spool_dir.iterdir()) == []


def _worker(config: AgentConfig, db: StateDB) -> tuple[IntakeWorker, AgentMetrics]:
    metrics = AgentMetrics(sources=["till-1"])
    worker = IntakeWorker(config, db, metrics, request_flush=lambda: None)
    worker.once = True  # no hold: a file taken in leaves the spool at once
    return worker, metrics


def _counted(metrics: AgentMetrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "receipt_agent_receipts_total", {"source": "till-1", "outcome": outcome}
    )


def _pass(worker: IntakeWorker, db: StateDB) -> bool:
    """One intake pass as the daemon's loop takes it: every ready file in one group."""
    group = GroupCommit(db, max_files=100, max_s=60)
    ready, _ = worker.spool.scan(ignore_settle=True)
    for item in ready:
        worker.take(item, group)
    return worker.commit_group(group)


def test_group_write_refused_at_its_commit_records_nothing_and_leaves_every_file(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """The state store refusing the group's held rows (a write fault on one file's digest)
    commits nothing: every file stays in the spool, nothing is counted, intake pauses with
    the store's reason; once the store writes again each receipt is queued once.

    1. Five files of one receipt; the store refuses the digest row of the third.
    Result: intake.paused; no receipt, ledger or files row; five files in the spool;
    no file or receipt counted.
    2. The store writes again; the next pass.
    Result: five receipts queued and counted once; the spool is empty; intake.resumed.
    """
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(5)]
    worker, metrics = _worker(config, db)
    with db.transaction() as tx:
        tx.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON files WHEN NEW.name = 'f2.json' "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    with capture_logs() as logged:
        assert not _pass(worker, db)
    paused = [line for line in logged if line["event"] == "intake.paused"]
    assert len(paused) == 1
    reason = "write failed and was rolled back (disk I/O error); check free disk space"
    assert reason in paused[0]["error"]
    assert [line["event"] for line in logged] == ["intake.paused"]  # no file.accepted
    assert all(p.exists() for p in paths)
    for table in ("receipts", "ledger", "files"):
        conn = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
        try:
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0  # noqa: S608
        finally:
            conn.close()
    assert _counted(metrics, "queued") == 0
    assert worker.queued_since_flush == 0

    with db.transaction() as tx:
        tx.execute("DROP TRIGGER temp.refuse")
    with capture_logs() as logged:
        assert _pass(worker, db)
    assert [line["event"] for line in logged].count("file.accepted") == 5
    assert "intake.resumed" in [line["event"] for line in logged]
    assert db.counts()["pending"] == 5
    assert list(spool_dir.iterdir()) == []
    assert _counted(metrics, "queued") == 5
    assert worker.queued_since_flush == 5


def test_group_counts_its_files_metrics_once_its_rows_are_written(
    config: AgentConfig, db: StateDB, spool_dir: Path
) -> None:
    """The metrics of a pass of held files count each file's new and duplicate receipts,
    and the receipts queued since the last flush, as one file at a time would."""
    drop(spool_dir, "a.json", make_receipt(1))
    drop(spool_dir, "b.json", [make_receipt(2), make_receipt(1)])
    drop(spool_dir, "c.json", make_receipt(1))  # a.json's bytes
    drop(spool_dir, "d.json", b'[{"receipt_id": ')  # quarantined
    worker, metrics = _worker(config, db)
    assert _pass(worker, db)
    assert (_counted(metrics, "queued"), _counted(metrics, "duplicate")) == (2, 1)
    files = {
        outcome: metrics.registry.get_sample_value(
            "receipt_agent_files_total", {"source": "till-1", "outcome": outcome}
        )
        for outcome in ("accepted", "quarantined")
    }
    assert files == {"accepted": 3, "quarantined": 1}
    assert worker.queued_since_flush == 2


def test_run_once_summary_counts_the_held_files_of_its_groups(
    make_agent_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox
) -> None:
    """`run --once` over files of one receipt (one a duplicate of another's, one identical
    to another) prints the counts one file at a time gave: 7 taken in, 5 sent, 1 duplicate."""
    for number in range(5):
        drop(spool_dir, f"f{number}.json", make_receipt(number))
    drop(spool_dir, "again.json", [make_receipt(0)])  # R0 again: a local duplicate
    drop(spool_dir, "copy.json", orjson.dumps(make_receipt(1)))  # f1.json's bytes
    past = time.time() - 60
    for path in spool_dir.iterdir():
        os.utime(path, (past, past))
    agent = Agent(load_config(make_agent_config()), SecretStr(SECRET))
    assert agent.run_once() == EXIT_OK
    assert agent.once_summary is not None
    assert agent.once_summary.line() == (
        "files: 7 taken in, 0 quarantined, 0 left in the spool; "
        "receipts: 5 sent, 1 duplicate, 0 rejected, 0 pending"
    )
    assert len(sandbox.receipt_ids(ACCOUNT)) == 5


def test_group_write_refused_before_a_larger_file_fails_that_file_and_the_group(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """The held rows are written before a larger file's (file order): refused then, that
    file's take fails with the store's reason, and the group commits nothing."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(2)]
    paths.append(drop(spool_dir, "big.json", [make_receipt(n) for n in range(10, 20)]))
    with db.transaction() as tx:
        tx.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON files WHEN NEW.name = 'f1.json' "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    group = GroupCommit(db, max_files=10, max_s=60)
    source = config.sources[0]
    for path in paths[:2]:
        take_in(path, source, db, config, defer=group.defer_for(("till-1", path.name)))
    with pytest.raises(StateStoreError, match=r"rolled back \(disk I/O error\); check free disk"):
        take_in(paths[2], source, db, config, defer=group.defer_for(("till-1", "big.json")))
    with pytest.raises(StateStoreError):
        group.commit()
    assert all(p.exists() for p in paths)
    conn = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 0
    finally:
        conn.close()


def test_rows_of_several_files_are_the_rows_of_one_call_per_file(
    two: tuple[StateDB, StateDB],
) -> None:
    """statedb_rows' and ledger_store's writes of several files' rows (receipts, ledger rows
    of every form, digests) leave the rows, of the same types, and give the answers that one
    call per file in turn gives, across 64-row chunks.

    1. Both stores hold R000005 pending and R000007 rejected.
    2. 90 files of 1 to 3 receipts (repeats across files, R5 and R7 among them, another
       store; ledger rows with and without till numbers and registers, another day).
    Result: identical receipts, ledger and files tables; identical new/duplicate answers.
    """
    files = []
    for f in range(90):
        rows = []
        for i in range(1 + f % 3):
            n = (f * 3 + i) % 150
            entry = LedgerEntry(
                register="1" if n % 4 == 1 else "", number=str(n) if n % 5 == 2 else None,
                business_day="2026-11-20" if n != 77 else "2026-11-21", outcome="receipt",
                content=f"c{n}", amount_minor=None if n == 3 else n, vat_minor={"25": n},
                payments_minor={"CARD": n} if n % 2 else {},
            )  # fmt: skip
            store = "other" if n == 40 else "sc029"
            rows.append((store, f"R{n:06d}", f'{{"n": {n}}}'.encode(), entry))
        files.append((f"f{f}.json", f"digest-{f}", rows))
    one_by_one, grouped = two
    expected = []
    with one_by_one.transaction() as tx:
        for name, digest, rows in files:
            answers = statedb.insert_receipts(
                tx, [r[:3] for r in rows], source="till-1", file=name, now=1000.0
            )
            ledger_store.record_entries(
                tx, [(s, r, e) for s, r, _, e in rows], source="till-1", file=name, now=1000.0
            )
            statedb.record_file(
                tx, digest=digest, source="till-1", name=name, receipts=sum(answers),
                rejected=0, now=1000.0,
            )  # fmt: skip
            expected += answers
    with grouped.transaction() as tx:
        answers = statedb.insert_receipts_of_files(
            tx, [(*r[:3], name) for name, _, rows in files for r in rows],
            source="till-1", now=1000.0,
        )  # fmt: skip
        ledger_store.record_entries_of_files(
            tx, [(s, r, e, name) for name, _, rows in files for s, r, _, e in rows],
            source="till-1", now=1000.0,
        )  # fmt: skip
        counts, at = [], 0
        for _, _, rows in files:
            counts.append(sum(answers[at : at + len(rows)]))
            at += len(rows)
        seen = [(digest, name, n) for (name, digest, _), n in zip(files, counts, strict=True)]
        statedb.record_files(tx, seen, source="till-1", now=1000.0)
    assert answers == expected
    assert answers.count(False) > 2  # repeats across files, and R5
    for query in (
        "SELECT rowid, * FROM receipts ORDER BY rowid",
        "SELECT rowid, *, typeof(register), typeof(number), typeof(numbered), "
        "typeof(amount_minor), typeof(figures) FROM ledger ORDER BY rowid",
        "SELECT rowid, * FROM files ORDER BY rowid",
    ):
        assert _without_time(grouped, query) == _without_time(one_by_one, query)
