"""Intake: one spool file → one state-store transaction → archive, or quarantine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import drop, make_receipt

from receipt_agent.config import AgentConfig
from receipt_agent.errors import StateStoreError
from receipt_agent.intake import take_in
from receipt_agent.statedb import StateDB


@pytest.fixture
def config(offline_config: Callable[..., AgentConfig]) -> Callable[..., AgentConfig]:
    return offline_config


def _sidecar(state_dir: Path, name: str) -> dict[str, Any]:
    return orjson.loads((state_dir / "quarantine/till-1" / f"{name}.error.json").read_bytes())


def test_take_in_good_file_records_receipts_then_archives(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A good file's receipts are pending and the file is in the archive, not the spool."""
    cfg = config()
    path = drop(spool_dir, "a.json", [make_receipt(i) for i in range(3)])
    outcome = take_in(path, cfg.sources[0], db, cfg)
    assert (outcome.outcome, outcome.receipts) == ("accepted", 3)
    assert db.counts()["pending"] == 3
    assert not path.exists()
    assert (state_dir / "archive/till-1/a.json").exists()


def test_take_in_with_after_delete_removes_file_after_commit(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """`after: delete` removes the file once its receipts are recorded; no archive."""
    cfg = config(after="delete")
    path = drop(spool_dir, "a.json", [make_receipt(1)])
    take_in(path, cfg.sources[0], db, cfg)
    assert not path.exists()
    assert not (state_dir / "archive").exists()
    assert db.counts()["pending"] == 1


def test_take_in_same_name_twice_keeps_both_in_archive(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A till that reuses a file name never overwrites the archived earlier file."""
    cfg = config()
    take_in(drop(spool_dir, "z.json", [make_receipt(1)]), cfg.sources[0], db, cfg)
    take_in(drop(spool_dir, "z.json", [make_receipt(2)]), cfg.sources[0], db, cfg)
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == [
        "z.json",
        "z.json.1",
    ]


def test_take_in_symlink_is_quarantined_and_target_untouched(
    config: Callable[..., AgentConfig],
    db: StateDB,
    spool_dir: Path,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    """A symlink in the spool is never followed: the link is quarantined, its target intact."""
    cfg = config()
    target = tmp_path / "secret.json"
    target.write_bytes(orjson.dumps([make_receipt(1)]))
    (spool_dir / "link.json").symlink_to(target)
    outcome = take_in(spool_dir / "link.json", cfg.sources[0], db, cfg)
    assert outcome.outcome == "quarantined"
    assert target.read_bytes() == orjson.dumps([make_receipt(1)])
    assert (state_dir / "quarantine/till-1/link.json").is_symlink()
    assert _sidecar(state_dir, "link.json")["kind"] == "unsafe_file"
    assert db.counts()["pending"] == 0


def test_take_in_fifo_is_quarantined_without_blocking(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A named pipe matching the pattern is refused at once (never blocks on open)."""
    cfg = config()
    os.mkfifo(spool_dir / "pipe.json")
    outcome = take_in(spool_dir / "pipe.json", cfg.sources[0], db, cfg)
    assert outcome.outcome == "quarantined"
    assert "not a regular file" in _sidecar(state_dir, "pipe.json")["error"]


def test_take_in_file_over_max_size_is_quarantined_unread(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A sparse file over max_file_size is quarantined with its size named, not read."""
    cfg = config(max_file_size="1MB")
    path = spool_dir / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(60 << 20)
    outcome = take_in(path, cfg.sources[0], db, cfg)
    assert outcome.outcome == "quarantined"
    sidecar = _sidecar(state_dir, "huge.json")
    assert "62914560 bytes" in sidecar["error"]
    assert "max_file_size" in sidecar["error"]


def test_take_in_truncated_json_quarantines_with_located_error(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path, state_dir: Path
) -> None:
    """A file that is not JSON goes to quarantine with an .error.json an operator can act on."""
    cfg = config()
    path = drop(spool_dir, "cut.json", b'[{"receipt_id": "1", ')
    outcome = take_in(path, cfg.sources[0], db, cfg)
    assert outcome.outcome == "quarantined"
    sidecar = _sidecar(state_dir, "cut.json")
    assert sidecar["kind"] == "parse_error"
    assert sidecar["error"]
    assert sidecar["detail"]
    assert db.counts() == {"pending": 0, "sent": 0, "rejected": 0}


def test_take_in_corrected_receipt_replaces_its_rejected_predecessor(
    config: Callable[..., AgentConfig], db: StateDB, spool_dir: Path
) -> None:
    """Fixing a rejected receipt in the export and dropping it again queues the fix."""
    cfg = config()
    bad = make_receipt(1, currency="kroner")
    take_in(drop(spool_dir, "a.json", [bad]), cfg.sources[0], db, cfg)
    assert db.counts()["rejected"] == 1
    outcome = take_in(drop(spool_dir, "b.json", [make_receipt(1)]), cfg.sources[0], db, cfg)
    assert outcome.receipts == 1
    assert db.counts() == {"pending": 1, "sent": 0, "rejected": 0}


def test_take_in_when_state_store_refuses_leaves_file_in_spool(
    config: Callable[..., AgentConfig],
    db: StateDB,
    spool_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A state store that cannot write (simulated: ENOSPC cannot be produced here) keeps the file.

    The fault is injected at the statedb layer because a full disk cannot be made on
    demand in every test environment; the reliability suite does it for real.
    """
    cfg = config()
    path = drop(spool_dir, "a.json", [make_receipt(1)])

    def refuse(*_: object, **__: object) -> None:
        raise StateStoreError("state.db: database or disk is full")

    monkeypatch.setattr("receipt_agent.statedb.record_file", refuse)
    with pytest.raises(StateStoreError):
        take_in(path, cfg.sources[0], db, cfg)
    assert path.exists()
    assert db.counts()["pending"] == 0


@pytest.mark.parametrize("whole_bytes", [1 << 20, 64], ids=["read-whole", "streamed"])
def test_take_in_same_content_again_is_archived_without_queueing(
    config: Callable[..., AgentConfig],
    db: StateDB,
    spool_dir: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    whole_bytes: int,
) -> None:
    """The same export dropped twice is queued once and both files end in the archive.

    Run with the real read-whole size and with one smaller than the file (so this file
    takes the streamed path of large exports): both record the same digest rule.
    """
    monkeypatch.setattr("receipt_agent.intake._READ_WHOLE_BYTES", whole_bytes)
    cfg = config()
    body = orjson.dumps([make_receipt(i) for i in range(3)])
    assert len(body) > 64
    first = take_in(drop(spool_dir, "a.json", body), cfg.sources[0], db, cfg)
    again = take_in(drop(spool_dir, "b.json", body), cfg.sources[0], db, cfg)
    assert (first.outcome, first.receipts) == ("accepted", 3)
    assert (again.outcome, again.receipts) == ("already_seen", 0)
    assert db.counts()["pending"] == 3
    assert sorted(p.name for p in (state_dir / "archive/till-1").iterdir()) == ["a.json", "b.json"]
    assert not list(spool_dir.iterdir())
