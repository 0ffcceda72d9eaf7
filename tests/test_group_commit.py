"""Group commit at intake: many small files, one transaction, moves only after its commit."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs
from support import drop, make_receipt

from receipt_agent.config import AgentConfig
from receipt_agent.errors import StateStoreError
from receipt_agent.intake import take_in
from receipt_agent.intake_group import GroupCommit
from receipt_agent.statedb import StateDB


@pytest.fixture
def config(offline_config: Callable[..., AgentConfig]) -> AgentConfig:
    return offline_config()


def _committed_receipts(state_dir: Path) -> int:
    """Receipts another process sees (what survived a crash now)."""
    conn = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0])
    finally:
        conn.close()


def _take_group(
    paths: list[Path], config: AgentConfig, db: StateDB
) -> tuple[GroupCommit, list[Any]]:
    group = GroupCommit(db, max_files=100, max_s=60)
    outcomes = [
        take_in(p, config.sources[0], db, config, defer=group.defer_for(("till-1", p.name)))
        for p in paths
    ]
    return group, outcomes


def test_group_commit_moves_files_only_after_the_one_commit(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """Ten files taken in as a group stay in the spool, unrecorded elsewhere, until its commit."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(10)]
    group, outcomes = _take_group(paths, config, db)
    # Before the commit a crash would find every file in the spool and nothing recorded.
    assert all(p.exists() for p in paths)
    assert _committed_receipts(state_dir) == 0
    for _, action in group.commit():
        action()
    assert [o.receipts for o in outcomes] == [1] * 10
    assert _committed_receipts(state_dir) == 10
    assert not any(p.exists() for p in paths)
    assert len(list((state_dir / "archive/till-1").iterdir())) == 10


def test_group_commit_with_a_bad_file_quarantines_it_and_keeps_the_others(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A file that cannot be parsed in the middle of a group fails alone; the rest is queued."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(3)]
    paths.insert(1, drop(spool_dir, "bad.json", b'[{"receipt_id": '))
    group, outcomes = _take_group(paths, config, db)
    for _, action in group.commit():
        action()
    assert [o.outcome for o in outcomes] == ["accepted", "quarantined", "accepted", "accepted"]
    assert db.counts()["pending"] == 3
    assert (state_dir / "quarantine/till-1/bad.json.error.json").exists()
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == [
        "f0.json", "f1.json", "f2.json",
    ]  # fmt: skip


def test_group_commit_with_rejected_and_duplicate_receipts_records_each_as_one_file_would(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """In a group, a file with an invalid receipt among valid ones queues the valid one and
    rejects the other, and a receipt a file of the same group queued is a local duplicate."""
    bad = make_receipt(2)
    bad["items"][0]["gross_amount"] = "lots"
    paths = [
        drop(spool_dir, "f0.json", make_receipt(0)),
        drop(spool_dir, "mixed.json", [make_receipt(1), bad]),
        drop(spool_dir, "again.json", [make_receipt(3), make_receipt(0)]),
    ]
    group, outcomes = _take_group(paths, config, db)
    for _, action in group.commit():
        action()
    assert [(o.receipts, o.rejected, o.duplicates) for o in outcomes] == [
        (1, 0, 0), (1, 1, 0), (1, 0, 1),
    ]  # fmt: skip
    assert (db.counts()["pending"], db.counts()["rejected"]) == (3, 1)
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == [
        "again.json", "f0.json", "mixed.json",
    ]  # fmt: skip


def test_group_commit_abandoned_leaves_every_file_and_records_nothing(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A group that ends without its commit (a stop, a crash) leaves its files to be read again."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(5)]
    group, _ = _take_group(paths, config, db)
    group.abandon()
    assert all(p.exists() for p in paths)
    assert db.counts()["pending"] == 0
    # Read again later: queued once.
    again, _ = _take_group(paths, config, db)
    for _, action in again.commit():
        action()
    assert db.counts()["pending"] == 5


def test_group_commit_keeps_a_file_appended_to_before_the_commit_in_the_spool(
    config: AgentConfig, db: StateDB, spool_dir: Path
) -> None:
    """A till appending while the group is open: the file is not archived with unread rows."""
    path = drop(spool_dir, "grow.json", [make_receipt(1)])
    group, _ = _take_group([path], config, db)
    with path.open("ab") as handle:
        handle.write(b"\n")
    for _, action in group.commit():
        action()
    assert path.exists()


def test_group_commit_a_file_appended_to_before_the_commit_is_logged_changed_then_read_again(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A file that grows between its read and the group's commit is checked once, after the
    commit: `file.changed`, then `file.accepted` with archived false; it stays in the spool
    beside its archived neighbours, and read again it archives with its first receipt a
    local duplicate and its new one queued."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(3)]
    with capture_logs() as logged:
        group, outcomes = _take_group(paths, config, db)
        paths[1].write_bytes(orjson.dumps([make_receipt(1), make_receipt(7)]))
        for _, action in group.commit():
            action()
    lines = [(line["event"], line.get("file")) for line in logged]
    assert lines == [
        ("file.accepted", "f0.json"), ("file.changed", "f1.json"),
        ("file.accepted", "f1.json"), ("file.accepted", "f2.json"),
    ]  # fmt: skip
    assert logged[2].get("archived") is False
    assert [o.outcome for o in outcomes] == ["accepted", "changed", "accepted"]
    assert [p.exists() for p in paths] == [False, True, False]
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == [
        "f0.json", "f2.json",
    ]  # fmt: skip
    again, outcomes = _take_group([paths[1]], config, db)
    for _, action in again.commit():
        action()
    assert (outcomes[0].receipts, outcomes[0].duplicates) == (1, 1)
    assert db.counts()["pending"] == 4
    assert not paths[1].exists()


def test_group_commit_a_seen_file_replaced_before_the_commit_stays_in_the_spool(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A file whose content was recorded before, replaced by another file of the same name
    while its group is open, is not archived unread: `file.changed`, read again next."""
    first = drop(spool_dir, "z.json", make_receipt(1))
    for _, action in _take_group([first], config, db)[0].commit():
        action()
    again = drop(spool_dir, "z.json", make_receipt(1))  # the same content: already seen
    with capture_logs() as logged:
        group, outcomes = _take_group([again], config, db)
        replacement = spool_dir / "z.json.new"
        replacement.write_bytes(orjson.dumps(make_receipt(2)))
        replacement.replace(again)
        for _, action in group.commit():
            action()
    assert outcomes[0].outcome == "already_seen"
    assert [line["event"] for line in logged] == ["file.changed"]
    assert again.exists()
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == ["z.json"]


def test_group_commit_with_a_write_failing_mid_file_records_nothing_of_the_group(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A state store that fails between a file's receipts and its digest commits no part
    of the group: every file stays in the spool and is queued exactly once later.

    The files are of 9 receipts (over what a group holds back: intake_record.GroupRows),
    each written when it is taken in; the group's failing write of held files of one
    receipt is tests/test_group_rows.py's."""
    paths = [
        drop(spool_dir, f"f{n}.json", [make_receipt(n * 10 + i) for i in range(9)])
        for n in range(3)
    ]
    with db.transaction() as tx:  # a write fault after f1.json's receipts went in
        tx.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON files WHEN NEW.name = 'f1.json' "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    group = GroupCommit(db, max_files=100, max_s=60)
    outcomes = []
    for path in paths:
        try:
            outcomes.append(
                take_in(
                    path,
                    config.sources[0],
                    db,
                    config,
                    defer=group.defer_for(("till-1", path.name)),
                )
            )
        except StateStoreError as error:
            outcomes.append(str(error).rsplit(": ", 1)[-1])
    # f1.json refused (what the operator reads in intake.paused), then the group is broken
    assert outcomes[1:] == [
        "write failed and was rolled back (disk I/O error); check free disk space",
        "an earlier write of this group failed",
    ]
    with pytest.raises(StateStoreError):
        group.commit()
    assert all(p.exists() for p in paths)
    assert _committed_receipts(state_dir) == 0
    with db.transaction() as tx:
        tx.execute("DROP TRIGGER temp.refuse")
    again, _ = _take_group(paths, config, db)
    for _, action in again.commit():
        action()
    assert _committed_receipts(state_dir) == 27
    assert not any(p.exists() for p in paths)


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_group_commit_archives_a_file_open_to_others_closed_to_them(
    config: AgentConfig, db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A till file readable by everyone (0664) is archived 0660, and no descriptor stays open."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(3)]
    for path in paths:
        path.chmod(0o664)
    before = _open_descriptors()
    group, _ = _take_group(paths, config, db)
    for _, action in group.commit():
        action()
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in (state_dir / "archive/till-1").iterdir()
    }
    assert modes == {"f0.json": 0o660, "f1.json": 0o660, "f2.json": 0o660}
    assert _open_descriptors() == before


def test_group_commit_abandoned_closes_the_descriptors_it_kept_for_the_moves(
    config: AgentConfig, db: StateDB, spool_dir: Path
) -> None:
    """A group abandoned with files open to others leaves them in the spool, unchanged, and
    holds no descriptor of them (a store outage retried for hours must not run out of them)."""
    paths = [drop(spool_dir, f"f{n}.json", make_receipt(n)) for n in range(5)]
    for path in paths:
        path.chmod(0o644)
    before = _open_descriptors()
    group, _ = _take_group(paths, config, db)
    assert _open_descriptors() == before + 5  # kept for the moves after the commit
    group.abandon()
    assert _open_descriptors() == before
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o644}
