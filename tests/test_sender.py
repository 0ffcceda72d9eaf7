"""Sender over loopback: batches, splits, backoff and configuration errors, in-process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr
from support import ACCOUNT, SECRET, make_receipt

from receipt_agent import statedb
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.sandbox import Sandbox
from receipt_agent.sender import Sender


@pytest.fixture
def make_config(make_agent_config: Callable[..., Path]) -> Callable[..., AgentConfig]:
    return lambda **overrides: load_config(make_agent_config(**overrides))


@pytest.fixture
def db(state_dir: Path) -> Iterator[statedb.StateDB]:
    database = statedb.StateDB(state_dir / "state.db")
    yield database
    database.close()


def _queue(db: statedb.StateDB, count: int, *, start: int = 0) -> None:
    with db.transaction() as tx:
        for number in range(start, start + count):
            receipt = make_receipt(number)
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc029", receipt_id=receipt["receipt_id"],
                payload=orjson.dumps(receipt), file="f.json", now=time.time(),
            )  # fmt: skip


def _sender(config: AgentConfig, db: statedb.StateDB) -> tuple[Sender, DinteroClient]:
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    return Sender(db, client, config), client


def test_flush_splits_by_max_receipts_and_max_bytes(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """250 receipts with max_receipts 100 go in 3 POSTs; a 4 KB cap makes every POST small."""
    sender, client = _sender(make_config(batch={"max_receipts": 100}), db)
    _queue(db, 250)
    result = sender.flush(threading.Event())
    client.close()
    assert (result.sent, result.batches) == (250, 3)
    assert [r.receipts for r in sandbox.requests if r.path.endswith("/receipts")] == [100, 100, 50]

    small, client = _sender(make_config(batch={"max_receipts": 100, "max_bytes": "4KB"}), db)
    _queue(db, 20, start=1000)
    small.flush(threading.Event())
    client.close()
    sizes = [r.receipts for r in sandbox.requests if r.path.endswith("/receipts")][3:]
    assert sum(sizes) == 20
    assert max(sizes) < 20


def test_flush_on_413_splits_until_batches_fit(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """An API that refuses batches over 10 receipts with 413 still gets all 40, in halves."""
    sandbox.set_faults(max_batch_receipts=10)
    sender, client = _sender(make_config(), db)
    _queue(db, 40)
    result = sender.flush(threading.Event())
    client.close()
    assert result.sent == 40
    assert len(sandbox.receipt_ids(ACCOUNT)) == 40
    assert db.counts()["rejected"] == 0


def test_flush_on_403_keeps_everything_pending_and_backs_off(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """A 403 (wrong scopes) keeps every receipt pending and pauses the sender."""
    sandbox.set_faults(forbidden=True, endpoints=frozenset({"receipts"}))
    sender, client = _sender(make_config(), db)
    _queue(db, 5)
    result = sender.flush(threading.Event())
    client.close()
    assert result.failed
    assert db.counts()["pending"] == 5
    assert sender.paused_for_s > 0
    assert "403" in db.meta()["last_error"]


def test_flush_after_give_up_after_rejects_receipts_older_than_the_limit(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """With give_up_after set, a receipt failing transiently past that age becomes a dead letter."""
    sandbox.set_faults(error_rate=1.0)
    sender, client = _sender(
        make_config(retry={"initial": "0.1s", "max": "1s", "give_up_after": "1s"}), db
    )
    _queue(db, 2)
    with db.transaction() as tx:
        tx.execute("UPDATE receipts SET created_at = created_at - 10")
    sender.flush(threading.Event())
    client.close()
    rows = db.list_receipts(state="rejected")
    assert len(rows) == 2
    assert "gave up" in (rows[0].last_error or "")


def test_flush_after_413_keeps_later_batches_under_the_learned_size(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """Once the API said 413, later batches start small enough: few refusals, not one per batch."""
    sandbox.set_faults(max_batch_receipts=10)
    sender, client = _sender(make_config(), db)
    _queue(db, 500)
    result = sender.flush(threading.Event())
    client.close()
    assert result.sent == 500
    refused = [r for r in sandbox.requests if r.status == 413]
    assert len(refused) <= 5  # 100 → 50 → 25 → 13, then every batch fits
