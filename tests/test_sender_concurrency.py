"""Batches in flight at once (`batch.concurrency`): overlap, and today's guarantees per batch.

The real sender on a real thread pool against the sandbox on loopback; its latency fault
(`delay_s`) stands in for an API 50-300 ms away. Overlap is read from the sandbox's own
request records (each POST's start and end), never from the sender's internals.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr
from support import ACCOUNT, SECRET, queue_receipts, wait_until

from receipt_agent import statedb
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig
from receipt_agent.sandbox import Sandbox
from receipt_agent.sandbox.state import RecordedRequest
from receipt_agent.sender import Sender


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="send")
    yield executor
    executor.shutdown(wait=True)


def _posts(sandbox: Sandbox) -> list[RecordedRequest]:
    return [r for r in sandbox.requests if r.path.endswith("/receipts") and r.method == "POST"]


def _most_at_once(posts: list[RecordedRequest]) -> int:
    """The largest number of POSTs the sandbox was serving at the same instant."""
    edges: list[tuple[float, int]] = []
    for post in posts:
        end = post.at.timestamp()
        edges += [(end - post.duration_ms / 1000, 1), (end, -1)]
    most = current = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same instant
        current += step
        most = max(most, current)
    return most


def _sender(
    config: AgentConfig, db: statedb.StateDB, pool: ThreadPoolExecutor
) -> tuple[Sender, DinteroClient]:
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    return Sender(db, client, config, executor=pool), client


@pytest.mark.parametrize(("concurrency", "most"), [(4, 4), (1, 1)])
def test_flush_with_concurrency_keeps_that_many_batches_in_flight(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
    concurrency: int,
    most: int,
) -> None:
    """Eight full batches to an API 0.2 s away: four at a time with concurrency 4, one with 1."""
    sandbox.set_faults(delay_s=0.2)
    config = make_config(batch={"max_receipts": 50, "concurrency": concurrency})
    sender, client = _sender(config, db, pool)
    queue_receipts(db, 400)
    result = sender.flush(threading.Event())
    client.close()
    posts = _posts(sandbox)
    assert (result.sent, len(posts)) == (400, 8)
    assert _most_at_once(posts) == most
    # Every receipt went in exactly one POST and is sent.
    assert sum(post.receipts or 0 for post in posts) == 400
    assert len(sandbox.receipt_ids(ACCOUNT)) == 400
    assert db.counts()["sent"] == 400


def test_flush_with_concurrency_never_sends_a_receipt_in_two_batches(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """Receipts queued while batches are in flight each go out once: the API sees no duplicate."""
    sandbox.set_faults(delay_s=0.05)
    sender, client = _sender(make_config(batch={"max_receipts": 20}), db, pool)
    queue_receipts(db, 100)
    feeding = threading.Thread(
        target=lambda: [queue_receipts(db, 20, start=1000 + 20 * n) for n in range(10)]
    )
    feeding.start()
    sender.flush(threading.Event())
    feeding.join()
    sender.flush(threading.Event())
    client.close()
    assert sum(post.receipts or 0 for post in _posts(sandbox)) == 300
    assert sandbox.stats()["duplicates"] == 0
    assert db.counts() == {"pending": 0, "sent": 300, "rejected": 0}


def test_flush_with_concurrency_pauses_once_for_an_outage(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """Four batches failing together cost one backoff step, and nothing is POSTed while paused."""
    sandbox.set_faults(delay_s=0.1, error_rate=1.0)
    config = make_config(
        batch={"max_receipts": 50, "concurrency": 4}, retry={"initial": "5s", "max": "60s"}
    )
    sender, client = _sender(config, db, pool)
    queue_receipts(db, 400)
    result = sender.flush(threading.Event())
    posted = len(_posts(sandbox))
    again = sender.flush(threading.Event())
    client.close()
    assert result.failed
    assert again.failed
    assert posted <= 4
    assert len(_posts(sandbox)) == posted
    # One step of the backoff (5 s + up to 5 s jitter), not four (5 · 2³ s).
    assert 4.0 < sender.paused_for_s <= 10.0
    assert db.counts()["pending"] == 400
    rows = db.list_receipts(state="pending", limit=400)
    assert {row.attempts for row in rows} <= {0, 1}


def test_flush_with_concurrency_honours_retry_after_of_any_batch(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """A 429 with Retry-After 30 on one of the batches in flight pauses the sender 30 s."""
    sandbox.set_faults(delay_s=0.1, rate_limit_every=3, retry_after_s=30)
    sender, client = _sender(make_config(batch={"max_receipts": 50}), db, pool)
    queue_receipts(db, 400)
    result = sender.flush(threading.Event())
    client.close()
    assert result.failed
    assert 25.0 < sender.paused_for_s <= 30.0
    # Whatever was answered 2xx is sent; the rest is pending, none lost.
    counts = db.counts()
    assert counts["sent"] + counts["pending"] == 400
    assert counts["sent"] == len(sandbox.receipt_ids(ACCOUNT))


def test_flush_with_concurrency_splits_the_batch_holding_a_bad_receipt(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """One refused receipt among four batches in flight is rejected alone; the rest is sent."""
    sandbox.set_faults(delay_s=0.05, refuse_receipt_id="^R000123$")
    sender, client = _sender(make_config(batch={"max_receipts": 50}), db, pool)
    queue_receipts(db, 200)
    result = sender.flush(threading.Event())
    client.close()
    assert (result.sent, result.rejected) == (199, 1)
    rejected = db.list_receipts(state="rejected")
    assert [row.receipt_id for row in rejected] == ["R000123"]
    assert len(sandbox.receipt_ids(ACCOUNT)) == 199


def test_flush_with_stop_waits_for_every_batch_in_flight(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """A stop during four POSTs returns only after all four were answered and recorded sent."""
    sandbox.set_faults(delay_s=0.5)
    sender, client = _sender(make_config(batch={"max_receipts": 50}), db, pool)
    queue_receipts(db, 400)
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    result = sender.flush(stop)
    timer.join()
    client.close()
    assert time.monotonic() - started >= 0.5
    assert result.sent == 200  # the four batches in flight, nothing started after the stop
    assert len(sandbox.receipt_ids(ACCOUNT)) == db.counts()["sent"] == 200
    assert db.counts()["pending"] == 200


def test_most_at_once_counts_overlapping_posts() -> None:
    """The overlap helper counts POSTs served at the same instant from start and end times."""
    now = time.time()

    def post(start: float, end: float) -> RecordedRequest:
        from datetime import UTC, datetime

        return RecordedRequest(
            method="POST", path="/v1/accounts/T1/receipts", query="", status=200, receipts=1,
            at=datetime.fromtimestamp(now + end, UTC), duration_ms=(end - start) * 1000,
            headers={}, account_id="T1",
        )  # fmt: skip

    assert _most_at_once([post(0, 1), post(0.5, 1.5), post(1.0, 2.0)]) == 2
    assert _most_at_once([post(0, 1), post(1, 2)]) == 1


@contextlib.contextmanager
def _flushing_while_the_store_is_held(
    db: statedb.StateDB, sender: Sender
) -> Iterator[threading.Thread]:
    """Hold the state store's write transaction in another thread (as an intake group
    does), start a flush; on exit release the transaction and wait for the flush."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with db.transaction():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    holding.wait(5)
    flushing = threading.Thread(target=lambda: sender.flush(threading.Event()))
    flushing.start()
    try:
        yield flushing
    finally:
        release.set()
        holder.join()
        flushing.join(30)


def test_batches_answered_while_the_store_is_busy_are_recorded_in_one_transaction(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """Four 2xx batches that wait for the write lock are recorded together, each sent once.

    1. Another thread holds the state store's write transaction (as an intake group does).
    2. Four batches are POSTed at once and all answered 2xx meanwhile.
    3. The transaction ends.
    Result: all 200 receipts are `sent` with one updated_at (one commit), nothing resent.
    """
    sandbox.set_faults(delay_s=0.05)
    config = make_config(batch={"max_receipts": 50, "concurrency": 4})
    sender, client = _sender(config, db, pool)
    queue_receipts(db, 200)
    with _flushing_while_the_store_is_held(db, sender) as flushing:
        # All four answered and waiting: the sandbox logs a POST before its client has
        # read the answer, so four POSTs seen there was not yet four marks waiting (once
        # in CI the fourth joined after the other three were recorded).
        wait_until(lambda: sender.marks_waiting == 4)
    client.close()
    assert not flushing.is_alive()
    sent = db.list_receipts(state="sent")
    assert len(sent) == 200
    assert len({row.updated_at for row in sent}) == 1
    assert sum(post.receipts or 0 for post in _posts(sandbox)) == 200
    assert sandbox.stats()["duplicates"] == 0


def test_batches_go_on_being_posted_while_answered_ones_wait_for_the_write_lock(
    make_config: Callable[..., AgentConfig],
    db: statedb.StateDB,
    sandbox: Sandbox,
    pool: ThreadPoolExecutor,
) -> None:
    """A 2xx batch frees its POST slot while its `sent` mark waits; at most 2 × concurrency wait.

    1. Another thread holds the state store's write transaction (as an intake group does).
    2. Sixteen batches are due, concurrency 4, the API 50 ms away.
    Result: the first four are answered and four more go out meanwhile (eight POSTs), then
    the sender waits; nothing is `sent` before the transaction ends, then all 800 are,
    each POSTed once.
    """
    sandbox.set_faults(delay_s=0.05)
    config = make_config(batch={"max_receipts": 50, "concurrency": 4})
    sender, client = _sender(config, db, pool)
    queue_receipts(db, 800)
    with _flushing_while_the_store_is_held(db, sender) as flushing:
        wait_until(lambda: len(_posts(sandbox)) == 8)
        time.sleep(0.5)  # ten round trips: room for more POSTs, were the waiting marks unbounded
        posted_while_held = len(_posts(sandbox))
        sent_while_held = db.counts()["sent"]
    client.close()
    assert not flushing.is_alive()
    assert (posted_while_held, sent_while_held) == (8, 0)
    assert db.counts() == {"pending": 0, "sent": 800, "rejected": 0}
    assert sum(post.receipts or 0 for post in _posts(sandbox)) == 800
    assert sandbox.stats()["duplicates"] == 0
