"""Sender over loopback: batches, splits, backoff and configuration errors, in-process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from structlog.testing import capture_logs
from support import ACCOUNT, SECRET, queue_receipts

from receipt_agent import statedb
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig
from receipt_agent.sandbox import Sandbox
from receipt_agent.sender import Sender


def _sender(config: AgentConfig, db: statedb.StateDB) -> tuple[Sender, DinteroClient]:
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    return Sender(db, client, config), client


def test_flush_splits_by_max_receipts_and_max_bytes(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """250 receipts with max_receipts 100 go in 3 POSTs; a 4 KB cap makes every POST small."""
    sender, client = _sender(make_config(batch={"max_receipts": 100}), db)
    queue_receipts(db, 250)
    result = sender.flush(threading.Event())
    client.close()
    assert (result.sent, result.batches) == (250, 3)
    assert [r.receipts for r in sandbox.requests if r.path.endswith("/receipts")] == [100, 100, 50]

    small, client = _sender(make_config(batch={"max_receipts": 100, "max_bytes": "4KB"}), db)
    queue_receipts(db, 20, start=1000)
    small.flush(threading.Event())
    client.close()
    sizes = [r.receipts for r in sandbox.requests if r.path.endswith("/receipts")][3:]
    assert sum(sizes) == 20
    assert max(sizes) < 20


def test_flush_fills_a_batch_up_to_max_bytes_exactly(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """A batch takes receipts while 2 + the sum of (payload + 1) stays within max_bytes: ten
    receipts that add up to max_bytes exactly go in one POST; with one byte less, the
    tenth goes in a second POST."""
    for start, slack, expected in ((0, 0, [10]), (100, 1, [9, 1])):
        queue_receipts(db, 10, start=start)
        due = db.due(now=time.time() + 1, limit=100)
        size = 2 + sum(len(receipt.payload) + 1 for receipt in due)
        sender, client = _sender(make_config(batch={"max_bytes": size - slack}), db)
        before = len(sandbox.requests)
        sender.flush(threading.Event())
        client.close()
        sizes = [r.receipts for r in sandbox.requests[before:] if r.path.endswith("/receipts")]
        assert sizes == expected, (start, slack)


def test_flush_on_413_splits_until_batches_fit(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """An API that refuses batches over 10 receipts with 413 still gets all 40, in halves."""
    sandbox.set_faults(max_batch_receipts=10)
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 40)
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
    queue_receipts(db, 5)
    result = sender.flush(threading.Event())
    client.close()
    assert result.failed
    assert db.counts()["pending"] == 5
    assert sender.paused_for_s > 0
    assert "403" in db.meta()["last_error"]


def test_flush_after_give_up_after_rejects_receipts_older_than_the_limit(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """With give_up_after set, a receipt failing transiently past that age becomes a dead letter,
    logged as receipt.rejected with its store and receipt id."""
    sandbox.set_faults(error_rate=1.0)
    sender, client = _sender(
        make_config(retry={"initial": "0.1s", "max": "1s", "give_up_after": "1s"}), db
    )
    queue_receipts(db, 2)
    with db.transaction() as tx:
        tx.execute("UPDATE receipts SET created_at = created_at - 10")
    with capture_logs() as logs:
        sender.flush(threading.Event())
    client.close()
    rows = db.list_receipts(state="rejected")
    assert len(rows) == 2
    assert "gave up" in (rows[0].last_error or "")
    named = {
        (line["store_id"], line["receipt_id"], line["where"])
        for line in logs
        if line["event"] == "receipt.rejected"
    }
    assert named == {(row.store_id, row.receipt_id, "gave_up") for row in rows}


def test_flush_after_413_keeps_later_batches_under_the_learned_size(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """Once the API said 413, later batches start small enough: few refusals, not one per batch."""
    sandbox.set_faults(max_batch_receipts=10)
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 500)
    result = sender.flush(threading.Event())
    client.close()
    assert result.sent == 500
    refused = [r for r in sandbox.requests if r.status == 413]
    assert len(refused) <= 5  # 100 → 50 → 25 → 13, then every batch fits


class _Recorder:
    """A SendObserver (the protocol the agent's metrics implement) that keeps what it heard."""

    def __init__(self) -> None:
        self.receipt_counts: dict[tuple[str, str], int] = {}
        self.batches: list[tuple[str, int | None]] = []
        self.last_success_at: float | None = None

    def receipts(self, source: str, outcome: str, count: int) -> None:
        key = (source, outcome)
        self.receipt_counts[key] = self.receipt_counts.get(key, 0) + count

    def batch(self, outcome: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        self.batches.append((outcome, status))

    def last_success(self, unix_ts: float) -> None:
        self.last_success_at = unix_ts


def _posts(sandbox: Sandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.path.endswith("/receipts")]


def test_one_refused_receipt_is_isolated_and_the_rest_delivered(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """A batch of 16 with one receipt the API refuses (400): 15 sent, that one a dead letter.

    The observer hears 15 sent, 1 rejected and the last success; the rejected row keeps
    the API's message for `queue list`.
    """
    sandbox.set_faults(refuse_receipt_id="^R000005$")
    recorder = _Recorder()
    config = make_config()
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    sender = Sender(db, client, config, observer=recorder)
    queue_receipts(db, 16)
    result = sender.flush(threading.Event())
    client.close()
    assert (result.sent, result.rejected) == (15, 1)
    assert len(sandbox.receipt_ids(ACCOUNT)) == 15
    (row,) = db.list_receipts(state="rejected")
    assert row.receipt_id == "R000005"
    assert "refused this receipt (400)" in (row.last_error or "")
    assert recorder.receipt_counts == {("till-1", "sent"): 15, ("till-1", "rejected"): 1}
    assert recorder.last_success_at is not None
    assert ("rejected", 400) in recorder.batches


def test_retry_after_above_retry_max_is_honoured_and_nothing_is_posted_meanwhile(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """A 429 with Retry-After 3 s (retry.max 1 s) pauses the sender 3 s; no POST meanwhile.

    1. Every POST is answered 429, Retry-After: 3.
    2. The first flush fails: receipts pending, next attempt ~3 s on, the sender paused ~3 s.
    3. A second flush at once sends no request at all.
    """
    sandbox.set_faults(rate_limit_every=1, retry_after_s=3, endpoints=frozenset({"receipts"}))
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 5)
    before = time.time()
    first = sender.flush(threading.Event())
    assert first.failed
    assert 2.5 < sender.paused_for_s <= 3.0
    (row, *_) = db.list_receipts(state="pending")
    assert 2.5 < row.next_attempt_at - before < 4.0
    posts = len(_posts(sandbox))
    assert sender.flush(threading.Event()).failed
    client.close()
    assert len(_posts(sandbox)) == posts == 1
    assert db.counts()["pending"] == 5


def test_once_waits_out_a_short_backoff_and_delivers(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """`run --once` semantics: two 503s in a row are waited out and the batch still arrives."""
    sandbox.set_faults(fail_next=2, fail_next_status=503, endpoints=frozenset({"receipts"}))
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 5)
    result = sender.flush(threading.Event(), once=True)
    client.close()
    assert result.sent == 5
    assert [p.status for p in _posts(sandbox)] == [503, 503, 200]
    assert db.counts() == {"pending": 0, "sent": 5, "rejected": 0}


def test_receipts_the_api_already_holds_are_marked_sent_not_resent_forever(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """After a crash between Dintero storing a batch and our commit, the resend is a duplicate.

    1. Send R0..R9; then queue them again in a fresh state store (the lost commit).
    2. Flush: the API answers them as duplicates; all are `sent`, none rejected.
    """
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 10)
    sender.flush(threading.Event())
    client.close()
    fresh = statedb.StateDB(db.path.parent / "again.db")
    try:
        again, client = _sender(make_config(), fresh)
        queue_receipts(fresh, 10)
        result = again.flush(threading.Event())
        client.close()
        assert (result.sent, result.duplicates) == (10, 10)
        assert fresh.counts() == {"pending": 0, "sent": 10, "rejected": 0}
    finally:
        fresh.close()
    assert len(sandbox.receipt_ids(ACCOUNT)) == 10


def test_an_expired_token_is_renewed_and_the_batch_delivered(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """Tokens that live 1 s: a flush after expiry fetches a new token once and sends."""
    sandbox.set_faults(token_lifetime_s=1)
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 3)
    sender.flush(threading.Event())
    issued = sandbox.token_issues
    time.sleep(1.2)  # let the real token expire at the sandbox
    # The renewed token lives an hour: on a loaded machine a 1 s one has expired again
    # before its POST arrived, which renewed it twice.
    sandbox.set_faults(token_lifetime_s=3600)
    queue_receipts(db, 3, start=100)
    result = sender.flush(threading.Event())
    client.close()
    assert result.sent == 3
    assert sandbox.token_issues == issued + 1
    assert len(sandbox.receipt_ids(ACCOUNT)) == 6


def test_receipt_token_expire_days_is_sent_as_a_query_on_every_batch(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """With dintero.receipt_token_expire_days set, every POST asks for receipt tokens."""
    config = make_config(batch={"max_receipts": 2})
    dintero = config.dintero.model_copy(update={"receipt_token_expire_days": 30})
    client = DinteroClient(dintero, SecretStr(SECRET))
    queue_receipts(db, 5)
    result = Sender(db, client, config).flush(threading.Event())
    client.close()
    assert result.sent == 5
    queries = [r.query for r in sandbox.requests if r.path.endswith("/receipts")]
    assert queries == ["token_expire_days=30"] * 3


def test_a_set_stop_event_posts_nothing(
    make_config: Callable[..., AgentConfig], db: statedb.StateDB, sandbox: Sandbox
) -> None:
    """A flush asked to stop before it starts leaves every receipt pending and sends no request."""
    sender, client = _sender(make_config(), db)
    queue_receipts(db, 5)
    stop = threading.Event()
    stop.set()
    result = sender.flush(stop)
    client.close()
    assert (result.sent, result.batches) == (0, 0)
    assert _posts(sandbox) == []
    assert db.pending_count() == 5
