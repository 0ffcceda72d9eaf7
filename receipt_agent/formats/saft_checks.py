"""SAF-T totals: how a vendor's amounts add up, and why a transaction does not.

Helper of `saft_receipt` (split out for size). Pure: values in, sentences out; no I/O, no
logging. `reading` decides, by the one reading that reaches transAmntIn, whether this
vendor writes lineAmntIn before or after its line discount and which raises are outside the
lines (`saft_adjust`); `totals` cross-checks lines, payments and rounding in kroner with the
SAF-T element names; `why` names the amount the parser did not read when one explains a
difference, or the raises it counted.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from receipt_agent.formats.saft_adjust import Raise, choose_raises, unread_hint
from receipt_agent.money import minor_to_major


def reading(
    total: int,
    lines_net: int,
    item_discount: int,
    trans_discount: int,
    trans_raises: list[Raise],
    line_raises: list[Raise],
) -> tuple[bool, list[Raise], list[Raise]]:
    """How this vendor writes its amounts, decided by the one reading that reaches
    transAmntIn (saft_adjust docstring): lineAmntIn after its line discount (the usual
    reading) or before it, and which raises are outside the lines. Returns
    (lineAmntIn is before its discount, raises outside the lines, raises inside them)."""
    readings = [False, True] if item_discount else [False]
    for before in readings:
        base = lines_net - trans_discount - (item_discount if before else 0)
        choice = choose_raises(total, base, trans_raises, line_raises)
        if choice is not None:
            return before, *choice
    return False, trans_raises + line_raises, []


def totals(data: dict[str, Any], rounding: int, currency: str) -> list[str]:
    """The cross-checks of the module docstring; one sentence per contradiction, in kroner."""

    def major(minor: int) -> str:
        return f"{minor_to_major(minor, currency)} {currency}"

    problems: list[str] = []
    items = data["items"]
    net_amount = data["net_amount"]
    if items:
        line_net = sum(item["net_amount"] for item in items)
        if line_net != net_amount:
            problems.append(
                f"the lines add up to {major(line_net)} but "
                f"transAmntIn is {major(net_amount)}; the export does not add up"
            )
    payments = data.get("payments")
    if payments:
        paid = sum(payment["amount"] for payment in payments)
        if paid != net_amount + rounding:
            hint = ""
            if not rounding and abs(paid) > abs(net_amount):
                hint = " (the till may record the cash handed over rather than the amount paid)"
            problems.append(
                f"the payments add up to {major(paid)} but transAmntIn {major(net_amount)} "
                f"plus rounding {major(rounding)} is {major(net_amount + rounding)}{hint}"
            )
    return problems


def why(
    element: Element, data: dict[str, Any], outside: list[Raise], rounding: int, currency: str
) -> list[str]:
    """When the lines do not reach transAmntIn (or the payments it): an element not read
    whose amount is the difference, or the raises that were counted."""
    hints: list[str] = []
    if data["items"]:
        difference = data["net_amount"] - sum(item["net_amount"] for item in data["items"])
        hint = unread_hint(element, difference, currency)
        if hint:
            hints.append(hint)
        elif difference and outside:
            named = ", ".join(
                f"{entry.where} {minor_to_major(entry.amount, currency)}" for entry in outside
            )
            hints.append(
                f"the raise elements ({named}) were counted as tips outside the lines; with or "
                "without them the lines do not reach transAmntIn"
            )
    payments = data.get("payments")
    if payments:
        paid = sum(payment["amount"] for payment in payments)
        hint = unread_hint(element, paid - data["net_amount"] - rounding, currency)
        if hint and hint not in hints:
            hints.append(hint)
    return hints
