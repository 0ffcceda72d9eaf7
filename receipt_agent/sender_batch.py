"""How the sender cuts a batch out of the due receipts (CONTRACT §2 `batch:`, §5 splitting).

Pure: receipts and limits in, a batch out. The sender reads the due receipts and posts
what this returns; it owns the limits learned on the way (a 413's cap, a split's caps).
"""

from __future__ import annotations

from collections import Counter

from receipt_agent.statedb import QueuedReceipt


def cut(
    due: list[QueuedReceipt], *, cap: int, max_bytes: int, split_cap: dict[int, int]
) -> list[QueuedReceipt]:
    """The oldest of `due` (oldest first) that fit in one POST: at most `cap` receipts (and
    each receipt's `split_cap`, after a refused batch holding it was split), and a JSON
    array of at most `max_bytes` (the brackets, the payloads and their commas); at least
    one receipt whatever its size."""
    size = 2 + len(due) + sum(map(len, [receipt.payload for receipt in due]))
    if not split_cap and len(due) <= cap and size <= max_bytes:
        return due  # the usual batch: no limit bites, the loop below would take them all
    batch: list[QueuedReceipt] = []
    size = 2  # the brackets; then each receipt and its comma while it fits
    for receipt in due:
        if split_cap:  # empty unless a split is under way
            cap = min(cap, split_cap.get(receipt.id, cap))
        size += len(receipt.payload) + 1
        if batch and (size > max_bytes or len(batch) >= cap):
            break
        batch.append(receipt)
    return batch


def by_source(batch: list[QueuedReceipt]) -> dict[str, int]:
    """{source: receipts} of a non-empty batch, in order of first appearance; a batch is
    mostly of one source, counted without building a Counter."""
    first = batch[0].source
    if all(receipt.source == first for receipt in batch):
        return {first: len(batch)}
    return dict(Counter([receipt.source for receipt in batch]))
