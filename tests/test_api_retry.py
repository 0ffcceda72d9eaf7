"""api.py's retry rules, one home for the sender and reports: transient statuses, Retry-After."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from receipt_agent.api import (
    MAX_RETRY_AFTER_S,
    is_transient,
    parse_retry_after,
    raise_if_transient,
)
from receipt_agent.errors import TransientSendError

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
