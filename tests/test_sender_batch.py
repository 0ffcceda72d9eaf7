"""sender_batch.cut: the oldest due receipts that fit in one POST (count, bytes, split caps)."""

from __future__ import annotations

import pytest

from receipt_agent.sender_batch import by_source, cut
from receipt_agent.statedb import QueuedReceipt


def _due(*sizes: int) -> list[QueuedReceipt]:
    """Due receipts with ids 1, 2, … and payloads of these sizes."""
    return [QueuedReceipt(n, "till-1", b"x" * size, 0) for n, size in enumerate(sizes, start=1)]


def _ids(batch: list[QueuedReceipt]) -> list[int]:
    return [receipt.id for receipt in batch]


def test_cut_takes_every_due_receipt_when_no_limit_bites() -> None:
    """Within the count and the bytes (brackets, and a comma counted per receipt), the batch is
    all of them."""
    due = _due(10, 10, 10)
    assert cut(due, cap=3, max_bytes=2 + 3 * 11, split_cap={}) is due
    assert cut([], cap=3, max_bytes=100, split_cap={}) == []


@pytest.mark.parametrize(
    ("cap", "max_bytes", "expected"),
    [(2, 1000, [1, 2]), (5, 2 + 3 * 11, [1, 2, 3]), (5, 2 + 3 * 11 - 1, [1, 2])],
)
def test_cut_stops_at_the_count_or_the_bytes(cap: int, max_bytes: int, expected: list[int]) -> None:
    """The oldest receipts while both the count and the JSON array's bytes fit."""
    assert _ids(cut(_due(10, 10, 10, 10), cap=cap, max_bytes=max_bytes, split_cap={})) == expected


def test_cut_sends_one_receipt_larger_than_max_bytes_alone() -> None:
    """A receipt over max_bytes by itself still goes (alone): the API decides (413)."""
    assert _ids(cut(_due(500, 10), cap=10, max_bytes=100, split_cap={})) == [1]


def test_cut_honours_the_smallest_split_cap_met() -> None:
    """After a split, a receipt's cap bounds every batch holding it, from that receipt on."""
    due = _due(10, 10, 10, 10, 10)
    assert _ids(cut(due, cap=5, max_bytes=1000, split_cap={3: 2})) == [1, 2]
    assert _ids(cut(due[2:], cap=5, max_bytes=1000, split_cap={3: 2})) == [3, 4]
    assert _ids(cut(due, cap=5, max_bytes=1000, split_cap={99: 1})) == [1, 2, 3, 4, 5]


def test_by_source_counts_each_source_in_order_of_first_appearance() -> None:
    """One source: all the batch; several: each one's count, in the order first met."""
    one = _due(1, 1, 1)
    mixed = [QueuedReceipt(n, source, b"{}", 0) for n, source in enumerate("abacb")]
    assert by_source(one) == {"till-1": 3}
    assert list(by_source(mixed).items()) == [("a", 2), ("b", 2), ("c", 1)]
