"""api.py's retry rules, one home for sender, reports and reconcile: statuses, waits."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr
from support import SECRET

from receipt_agent.api import (
    MAX_RETRY_AFTER_S,
    TRANSIENT_ATTEMPTS,
    DinteroClient,
    is_transient,
    parse_retry_after,
    raise_if_transient,
    retry_transient,
    search_receipt,
)
from receipt_agent.config import AgentConfig, RetryConfig
from receipt_agent.errors import MisconfiguredError, TransientSendError
from receipt_agent.sandbox import Sandbox

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, False), (400, False), (401, False), (403, False), (404, False), (413, False),
     (422, False), (408, True), (429, True), (500, True), (502, True), (503, True), (504, True)],
)  # fmt: skip
def test_is_transient_is_408_429_and_5xx(status: int, expected: bool) -> None:
    """Only timeouts, rate limits and server errors are worth the same request again."""
    assert is_transient(status) is expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 120, usegmt=True), 120.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("86400", MAX_RETRY_AFTER_S),
        (email.utils.formatdate(NOW + 30 * 86400, usegmt=True), MAX_RETRY_AFTER_S),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_reads_seconds_or_a_date_and_caps_it(
    header: str | None, seconds: float | None
) -> None:
    """Seconds or an HTTP date, never negative, never above the cap; garbage is no hint."""
    assert parse_retry_after(header, now=NOW) == seconds


def test_raise_if_transient_carries_status_message_and_hint() -> None:
    """A 429 becomes TransientSendError with the API's message and the Retry-After hint."""
    response = httpx.Response(
        429, headers={"Retry-After": "4"}, json={"error": {"message": "slow down"}}
    )
    with pytest.raises(TransientSendError) as caught:
        raise_if_transient(response, "POST receipts")
    assert (caught.value.status, caught.value.retry_after) == (429, 4.0)
    assert str(caught.value) == "POST receipts answered 429: slow down"
    raise_if_transient(httpx.Response(400, json={}), "POST receipts")  # not transient: no raise


def _failing(*errors: Exception) -> Callable[[], None]:
    """Return a call that raises the given errors in turn, one per try."""
    remaining = iter(errors)

    def call() -> None:
        raise next(remaining)

    return call


def test_retry_transient_waits_the_backoff_or_a_longer_retry_after_then_gives_up() -> None:
    """Waits double from retry.initial up to retry.max, a longer Retry-After wins; 5 tries."""
    waits: list[float] = []
    retrying = retry_transient(RetryConfig(initial=0.5, max=2.0), waits.append, jitter=False)
    call = _failing(
        TransientSendError("first", status=503),
        TransientSendError("second", status=429, retry_after=3.0),
        TransientSendError("third", status=503),
        TransientSendError("fourth", status=503, retry_after=0.1),
        TransientSendError("fifth", status=502),
    )
    with pytest.raises(TransientSendError, match="fifth"):
        retrying(call)
    assert TRANSIENT_ATTEMPTS == 5
    assert waits == [0.5, 3.0, 2.0, 2.0]


def test_retry_transient_jitter_adds_at_most_retry_initial() -> None:
    """With jitter each wait lies between the plain backoff and the backoff plus retry.initial."""
    waits: list[float] = []
    retrying = retry_transient(RetryConfig(initial=0.5, max=2.0), waits.append)
    with pytest.raises(TransientSendError):
        retrying(_failing(*[TransientSendError("down", status=503)] * TRANSIENT_ATTEMPTS))
    assert all(base <= wait <= base + 0.5 for base, wait in zip([0.5, 1, 2, 2], waits, strict=True))


def test_retry_transient_does_not_retry_a_misconfiguration() -> None:
    """A 403-like refusal ends the tries at once: one try, no wait."""
    waits: list[float] = []
    retrying = retry_transient(RetryConfig(initial=0.5, max=2.0), waits.append)
    with pytest.raises(MisconfiguredError):
        retrying(_failing(MisconfiguredError("forbidden", status=403)))
    assert waits == []


def test_search_receipt_503_is_transient_with_the_api_message(
    sandbox: Sandbox, make_config: Callable[..., AgentConfig]
) -> None:
    """A 503 from the receipt search is a TransientSendError naming the call and the status."""
    sandbox.set_faults(fail_next=1, fail_next_status=503, endpoints="search")
    client = DinteroClient(make_config().dintero, SecretStr(SECRET))
    try:
        with pytest.raises(TransientSendError) as caught:
            search_receipt(client, "R-1")
        assert search_receipt(client, "R-1") is False  # the fault is used up: an answer
    finally:
        client.close()
    assert caught.value.status == 503
    assert str(caught.value).startswith("GET receipts/search answered 503: ")
