"""The records a format parser yields (see `receipt_agent.formats` for the protocol).

Plain dataclasses (frozen, but for the per-receipt `RawReceipt`), stdlib only, so that
both the parsers and `mapping` can use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class RawReceipt:
    """A receipt in Dintero's shape, not yet validated; `location` is where it was read.

    Read-only by convention, not frozen: one is built for every receipt read, and a frozen
    dataclass's `__init__` sets each field through `object.__setattr__` (callgrind: ~1,300
    instructions a field; a plain slot store is a few dozen), as `mapping.ValidReceipt`.
    """

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
    # For reconciliation (CONTRACT §7): the till's register, number and business day when
    # known, so a rejected transaction is never mistaken for a gap in the numbering.
    # Not part of equality: two records are the same record whatever reconcile knows.
    register_id: str | None = field(default=None, compare=False)
    number: str | None = field(default=None, compare=False)
    business_day: str | None = field(default=None, compare=False)


SkipReason = Literal["non_sale", "training", "voided"]


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """A transaction that is not a receipt; counted in `file.accepted` as skipped."""

    reason: SkipReason
    location: str
    # For reconciliation (CONTRACT §7), optional: a skipped training receipt is not a gap.
    # `business_day` is YYYY-MM-DD in the source's timezone; `content` a short summary of
    # the transaction (e.g. its amount) to tell a re-export from a different transaction.
    store_id: str | None = field(default=None, compare=False)
    register_id: str | None = field(default=None, compare=False)
    number: str | None = field(default=None, compare=False)
    business_day: str | None = field(default=None, compare=False)
    content: str | None = field(default=None, compare=False)


Record = RawReceipt | InvalidRecord | SkippedRecord
