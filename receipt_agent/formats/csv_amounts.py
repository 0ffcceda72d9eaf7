"""The money of one CSV receipt after its rows are read: return signs, discounts, VAT, payments.

Helper of `formats.csv_export` (split out for size). Pure, stdlib only; works on the
Dintero-shaped item and payment dicts in integer minor units. The rules (CONTRACT §2
`format: csv`, issue 13):

- **Returns** (`mapping.sign_convention`). `auto` (the default): a minus sign on a line's
  quantity *or* its amount makes it a return, and then quantity, amounts and discounts are
  all negative (`is_return_item: true`). Tills write a return as `-1;89,90`, `1;-89,90`,
  `-1;-89,90`, `1;89,90-` or `1;(89,90)`; each is the same -89.90 return, never a +89.90
  sale. `signed`: the signs are taken as written, and a line whose quantity and amount
  disagree rejects its receipt.
- **Refunds.** Under `auto`, a receipt whose lines add up to a negative net and whose
  payments are all written without a sign is paid back: its payments are negated. Under
  `signed` they stay as written (and a mismatch rejects the receipt).
- **Line discount** (`item_discount_amount`): `item_gross_amount` is the line before its
  discount; the discount (written with or without a minus) reduces the line's magnitude:
  net = gross − discount, as a `discount_lines` entry (`discount_type: manual`).
- **Receipt discount** (`receipt_discount_amount`, written on one row or repeated the same
  on each): spread over the sold lines (net > 0; a return-only receipt: over its lines;
  lines without a VAT rate, such as a tip, only when no line has one) pro rata to their net,
  each share rounded toward zero and the øre left over on the largest line, as
  `discount_lines` entries (`discount_type: total`). A discount larger than those lines
  rejects the receipt.
- **VAT** is derived after the discounts, from each line's final net and rate with
  `money.split_vat`, so tax + basis = net for every line; the receipt's tax lines are their
  sums per rate. `total_discount` = Σ discount lines = gross − net.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from receipt_agent.money import allocate, split_vat


def spread_receipt_discount(items: list[dict[str, Any]], amount: int) -> str | None:
    """Put a receipt-level discount (a magnitude) on the items; return a problem or None."""
    if amount == 0:
        return None
    targets = [item for item in items if item["net_amount"] > 0]
    sign = 1
    if not targets:
        targets = [item for item in items if item["net_amount"] < 0]
        sign = -1
    # Not over lines without a VAT rate (a tip, a deposit) when the others have one.
    targets = [item for item in targets if "tax_percent" in item] or targets
    available = sum(abs(item["net_amount"]) for item in targets)
    if amount > available:
        return (
            f"the receipt-level discount {amount} is larger than the lines it applies to "
            f"({available}, in minor units)"
        )
    for item, share in zip(
        targets, allocate(amount, [abs(item["net_amount"]) for item in targets]), strict=True
    ):
        if share:
            item.setdefault("discount_lines", []).append(
                {"amount": sign * share, "discount_type": "total"}
            )
            item["net_amount"] -= sign * share
    return None


def add_tax_lines(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every item with a `tax_percent` its tax line; return the receipt's per rate."""
    by_rate: dict[Decimal, dict[str, Any]] = {}
    for item in items:
        if "tax_percent" not in item:
            continue
        percent = item["tax_percent"]
        basis, vat = split_vat(item["net_amount"], percent)
        line = {"percentage": percent, "amount": vat, "tax_basis": basis, "included_in_price": True}
        item["tax_lines"] = [line]
        total = by_rate.setdefault(
            Decimal(percent),
            {"percentage": percent, "amount": 0, "tax_basis": 0, "included_in_price": True},
        )
        total["amount"] += vat
        total["tax_basis"] += basis
    return list(by_rate.values())


def orient_payments(payments: list[dict[str, Any]], net: int) -> None:
    """A refund written unsigned (negative net, no payment negative) is negated in place."""
    amounts = [payment["amount"] for payment in payments]
    if net < 0 and amounts and all(amount >= 0 for amount in amounts) and any(amounts):
        for payment in payments:
            payment["amount"] = -payment["amount"]
