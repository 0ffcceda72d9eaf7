"""The records a format parser yields (see `receipt_agent.formats` for the protocol).

Plain frozen dataclasses, stdlib only, so that both the parsers and `mapping` can use
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class RawReceipt:
    """A receipt in Dintero's shape, not yet validated; `location` is where it was read."""

    data: dict[str, Any]
    location: str


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A transaction that cannot become a valid receipt; stored as `rejected`."""

    location: str
    errors: list[str]
    store_id: str | None = None
    receipt_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


SkipReason = Literal["non_sale", "training", "voided"]


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """A transaction that is not a receipt; counted in `file.accepted` as skipped."""

    reason: SkipReason
    location: str


Record = RawReceipt | InvalidRecord | SkippedRecord
