"""Cross-checks of a receipt's totals against its lines, for parsers that build receipts.

The SAF-T, POSLog and CSV parsers call `check_totals` on the Dintero-shaped dict they
built and turn its sentences into an `InvalidRecord`. The dintero-json pass-through does
not: a till's own JSON may legitimately carry discounts we cannot reconcile.

Lives in its own stdlib-only module, below both `formats` and `mapping`, so that parsers
can import it without importing `mapping` (the import-linter layers keep those two apart).
It reads the private keys `_rounding` and `_change` documented in `mapping`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_totals(data: Mapping[str, Any], *, tolerance_minor: int = 0) -> list[str]:
    """Given a raw receipt dict, return one sentence per total that its lines contradict.

    The rules (formats.md §1.3, §6.2), all in integer minor units:

    1. Σ `items[].gross_amount` = `gross_amount` (both before discounts).
    2. Σ `items[].net_amount` = `net_amount` (both after discounts).
    3. Σ `payments[].amount` − `_change` = `net_amount` (else `gross_amount`) + `_rounding`.
       `round_off_to_coin` is NOT a rounding amount (it is a granularity, e.g. 100); the
       rounding the till applied comes from the private `_rounding` key.

    Every line counts, voided ones too: a void is an offsetting line (formats.md §4.2).
    A rule is skipped when its lines are absent or any amount in it is missing or not an
    int (validation reports those). Formats whose tills may legitimately disagree (the
    dintero-json pass-through) do not call this.
    """
    problems: list[str] = []
    items = _dicts(data.get("items"))
    for key, label in (
        ("gross_amount", "items sum to"),
        ("net_amount", "items' net_amount sum to"),
    ):
        total = _int(data.get(key))
        lines = [_int(item.get(key)) for item in items or ()]
        if lines and total is not None and None not in lines:
            line_sum = sum(line for line in lines if line is not None)
            if abs(line_sum - total) > tolerance_minor:
                problems.append(f"{label} {line_sum} but {key} is {total}")
    payments = _dicts(data.get("payments"))
    paid = [_int(payment.get("amount")) for payment in payments or ()]
    basis_key = "net_amount" if _int(data.get("net_amount")) is not None else "gross_amount"
    basis = _int(data.get(basis_key))
    rounding = _int(data.get("_rounding")) or 0
    change = _int(data.get("_change")) or 0
    if paid and basis is not None and None not in paid:
        paid_sum = sum(amount for amount in paid if amount is not None)
        if abs(paid_sum - change - (basis + rounding)) > tolerance_minor:
            got = f"payments sum to {paid_sum}"
            if change:
                got += f" minus change {change} = {paid_sum - change}"
            want = f"{basis_key} is {basis}"
            if rounding:
                want = f"{basis_key} {basis} plus rounding {rounding} is {basis + rounding}"
            problems.append(f"{got} but {want}")
    return problems


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dicts(value: object) -> list[dict[str, Any]] | None:
    """The list's elements when all are dicts, else None (validation reports the rest)."""
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    return None
