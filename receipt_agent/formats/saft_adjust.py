"""What a SAF-T transaction holds beside its lines: receipt discounts, raises (tips), pant.

Helper of `saft_receipt` (split out for size). Pure: values in, values out; no I/O, no
logging. Decided here (issue 13; formats.md §1.1, §1.3; README "SAF-T: discounts, tips"):

- **Receipt-level discount** (`cashtransaction/discount`, e.g. a member or coupon discount):
  Dintero has no receipt-level discount line and Σ items.net must equal the receipt's net,
  so each one is spread over the goods lines pro rata to their net (`money.allocate`: exact
  to the øre, the remainder on the largest line) and added to each line's `discount_lines`
  (`discount_type` "total", `discount_id` = dscTp); the line's net falls by its share and
  its VAT (amount and basis) is recomputed from the new net at its own rate. Deposit and
  gift-card lines get no share (a member discount does not apply to pant or gift cards)
  unless they are all there is.
- **Raise** (basics type 10: 10001 tip, 10999 other; `cashtransaction/raise` and
  `ctLine/raise`): a tip is not revenue of the goods and carries no VAT. Whether
  `lineAmntIn`/`transAmntIn` include a raise is not stated by the standard, so the amounts
  decide, per transaction, in this order: (1) transAmntIn = lines − discounts + the
  transaction's raises (line raises are inside their lines); (2) = lines − discounts + all
  raises; (3) = lines − discounts (every raise is already inside a line). A raise outside the
  lines becomes its own item: description = its basic's `basicDesc` (else "Tips" for 10001,
  "Surcharge" otherwise), quantity ±1, gross = net = the raise, `tax_percent` 0, no tax
  lines, `salesperson_id` = its empID, `extra_info` `saft.raise_type` (and
  `saft.raise_predefined`). A raise inside a line is kept as `extra_info` `saft.raise` on
  that line (or the receipt) so nothing is dropped silently.
- **Deposit (pant) and gift-card lines**: a ctLine whose ticket-line code (basics 05) or
  text names pant/deposit or a gift card stays an item (its money is real, and Σ items
  must add up), described by its basic when it has no text of its own, and tagged
  `extra_info` `saft.line_kind` = `deposit` | `gift_card`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element

from receipt_agent.formats.saft_lines import Amounts, numbered, signed
from receipt_agent.formats.saft_master import MasterData, value
from receipt_agent.formats.xml_stream import children, local_name
from receipt_agent.money import allocate, minor_to_major, split_vat

TIP = "10001"
_TIP_WORDS = re.compile(r"(?i)\b(tips?|driks|drikkepenger|gratuity|dricks|drikkepenge)\b")
_KINDS = (
    ("deposit", re.compile(r"(?i)\b(pant|panter|pantelapp|flaskepant|boxpant|deposit|pfand)\b")),
    (
        "gift_card",
        re.compile(
            r"(?i)\b(gave ?kort|gift ?card|gift ?token|gift voucher|presentkort|gavebevis)\b"
        ),
    ),
)
# Every element name the standards (NO v1.00, DK v1.0.3) allow inside a cashtransaction.
_KNOWN = frozenset(
    [
        "nr",
        "transID",
        "transType",
        "transAmntIn",
        "transAmntEx",
        "amntTp",
        "empID",
        "custSupID",
        "periodNumber",
        "transDate",
        "transTime",
        "bookDate",
        "bookTime",
        "invoiceID",
        "refID",
        "desc",
        "ctLine",
        "lineID",
        "lineType",
        "artGroupID",
        "artID",
        "qnt",
        "lineAmntIn",
        "lineAmntEx",
        "ppu",
        "costPrice",
        "costID",
        "costObjID",
        "projID",
        "lineAmntInAccID",
        "cashTransLineDescr",
        "lineDate",
        "lineTime",
        "vat",
        "vatCode",
        "vatPerc",
        "vatAmnt",
        "vatAmntTp",
        "vatBasAmnt",
        "accID",
        "savings",
        "savingsType",
        "savingsUnits",
        "discount",
        "dscTp",
        "dscAmnt",
        "raise",
        "raiseType",
        "raiseAmnt",
        "rounding",
        "roundingAmnt",
        "payment",
        "paymentType",
        "paidAmnt",
        "curCode",
        "exchRt",
        "paymentRefID",
        "signature",
        "keyVersion",
        "receiptNum",
        "receiptCopyNum",
        "receiptProformaNum",
        "receiptDeliveryNum",
        "voidTransaction",
        "trainingID",
        "certificateData",
    ]
)


@dataclass(frozen=True, slots=True)
class Raise:
    """One `raise` element, its amount signed like its owner."""

    where: str
    amount: int
    raise_type: str | None
    predefined: str | None
    description: str | None
    emp_id: str | None
    line: int | None  # the ctLine position of a line raise; None at transaction level


def read_raises(
    owner: Element,
    factor: int | None,
    amounts: Amounts,
    master: MasterData,
    where: str,
    line: int | None = None,
) -> list[Raise]:
    """Given a cashtransaction or ctLine, return its `raise` elements."""
    out: list[Raise] = []
    for i, element in numbered(children(owner, "raise")):
        label = f"{where}/raise[{i}]"
        amount = signed(amounts.read(element, "raiseAmnt", label), factor)
        kind = value(element, "raiseType")
        basic = master.basic("10", kind)
        out.append(
            Raise(
                where=label,
                amount=amounts.minor(amount, f"{label}/raiseAmnt"),
                raise_type=kind,
                predefined=basic.predefined if basic else None,
                description=basic.description if basic else None,
                emp_id=value(element, "empID"),
                line=line,
            )
        )
    return out


def choose_raises(
    total: int, base: int, on_transaction: list[Raise], on_lines: list[Raise]
) -> tuple[list[Raise], list[Raise]] | None:
    """Return (raises that become items, raises already inside the lines), by the amounts,
    or None when no reading reaches the total.

    `base` is Σ lines − discounts; `total` the transAmntIn (module docstring order).
    """
    outside_transaction = sum(r.amount for r in on_transaction)
    outside_all = outside_transaction + sum(r.amount for r in on_lines)
    if base + outside_transaction == total:
        return on_transaction, on_lines
    if base + outside_all == total:
        return on_transaction + on_lines, []
    if base == total:
        return [], on_transaction + on_lines
    return None


def oriented(entry: Raise, sign: int) -> Raise:
    """A raise adds to its owner: on a return line or transaction it is negative."""
    amount = abs(entry.amount) * (sign or 1)
    return entry if amount == entry.amount else replace(entry, amount=amount)


def orient_discounts(item: dict[str, Any]) -> None:
    """A line discount takes from its line: negative on a return, whatever sign was written."""
    discounts = item.get("discount_lines")
    if not discounts:
        return
    negative = item["net_amount"] < 0 or item.get("is_return_item") is True
    sign = -1 if negative else 1
    for discount in discounts:
        discount["amount"] = abs(discount["amount"]) * sign
    item["gross_amount"] = item["net_amount"] + sum(d["amount"] for d in discounts)


def discount_before(item: dict[str, Any]) -> None:
    """A vendor whose lineAmntIn is before the line's discount: net = lineAmntIn − discount."""
    discount = sum(d["amount"] for d in item.get("discount_lines", ()))
    if discount:
        item["gross_amount"] = item["net_amount"]
        item["net_amount"] -= discount
        recompute_tax(item)


def raise_item(entry: Raise, line_id: int) -> dict[str, Any]:
    """A raise outside the lines → its own 0 % item (module docstring)."""
    tip = entry.predefined == TIP or any(
        _TIP_WORDS.search(word) for word in (entry.raise_type, entry.description) if word
    )
    description = entry.description or ("Tips" if tip else "Surcharge")
    item: dict[str, Any] = {
        "line_id": line_id,
        "description": description,
        "quantity": -1 if entry.amount < 0 else 1,
        "gross_amount": entry.amount,
        "net_amount": entry.amount,
        "tax_percent": 0,
    }
    if entry.emp_id is not None:
        item["salesperson_id"] = entry.emp_id
    extra = [{"key": "saft.raise_type", "value": entry.raise_type or "", "value_type": "string"}]
    if entry.predefined:
        extra.append(
            {"key": "saft.raise_predefined", "value": entry.predefined, "value_type": "string"}
        )
    if entry.line is not None:
        extra.append({"key": "saft.raise_line", "value": str(entry.line), "value_type": "string"})
    item["extra_info"] = extra
    if entry.amount < 0:
        item["is_return_item"] = True
    return item


def note_inside(entry: Raise, owner: dict[str, Any], currency: str) -> None:
    """A raise already inside a line (or the transaction's lines): keep it as extra_info."""
    text = f"{entry.raise_type or ''} {minor_to_major(entry.amount, currency)}".strip()
    owner.setdefault("extra_info", []).append(
        {"key": "saft.raise", "value": text, "value_type": "string"}
    )


def line_kind(line: Element, master: MasterData) -> str | None:
    """`deposit` or `gift_card` when the line's code, its basic or its text says so."""
    line_type = value(line, "lineType")
    basic = master.basic("05", line_type)
    words = " ".join(
        word
        for word in (
            line_type,
            basic.description if basic else None,
            value(line, "cashTransLineDescr"),
        )
        if word
    )
    for kind, pattern in _KINDS:
        if pattern.search(words):
            return kind
    return None


def spread_discounts(
    items: list[dict[str, Any]], discounts: list[dict[str, Any]], kinds: list[str | None]
) -> list[str]:
    """Put each transaction-level discount on the goods lines (module docstring).

    `kinds` is each item's line kind. Return sentences for discounts that cannot be placed.
    """
    problems: list[str] = []
    changed: set[int] = set()
    for number, discount in enumerate(discounts, start=1):
        amount = discount["amount"]
        if not amount:
            continue
        sign = 1 if amount > 0 else -1
        same = [i for i, item in enumerate(items) if item["net_amount"] * sign > 0]
        goods = [i for i in same if kinds[i] is None] or same
        weights = [abs(items[i]["net_amount"]) for i in goods]
        if not goods or abs(amount) > sum(weights):
            problems.append(
                f"cashtransaction/discount[{number}]: a receipt discount of {abs(amount)} "
                "minor units is larger than the lines it could apply to"
            )
            continue
        for index, share in zip(goods, allocate(amount, weights), strict=True):
            if not share:
                continue
            item = items[index]
            lines = item.setdefault("discount_lines", [])
            lines.append({**discount, "line_id": len(lines) + 1, "amount": share})
            item["net_amount"] -= share
            changed.add(index)
    for index in changed:
        recompute_tax(items[index])
    return problems


def recompute_tax(item: dict[str, Any]) -> None:
    """The item's VAT from its (discounted) net at its own rate; basis = net − VAT."""
    tax_lines = item.get("tax_lines") or []
    if len(tax_lines) != 1 or "percentage" not in tax_lines[0]:
        return
    tax = tax_lines[0]
    net, vat = split_vat(item["net_amount"], Decimal(str(tax["percentage"])))
    tax["amount"] = vat
    tax["tax_basis"] = net


# Amount elements read, by their parent (discount and raise only under a transaction or line).
_READ_IN = {
    "transAmntIn": {"cashtransaction"}, "lineAmntIn": {"ctLine"}, "dscAmnt": {"discount"},
    "raiseAmnt": {"raise"}, "roundingAmnt": {"rounding"}, "paidAmnt": {"payment"},
    "vatAmnt": {"vat"}, "vatBasAmnt": {"vat"}, "costPrice": {"ctLine"},
    "transAmntEx": {"cashtransaction"}, "lineAmntEx": {"ctLine"},
}  # fmt: skip
_OWNERS = {"cashtransaction", "ctLine"}
_REPEATED = {"ctLine", "payment", "discount", "raise", "vat", "savings"}


def unread_hint(element: Element, difference: int, currency: str) -> str | None:
    """Name an amount this parser did not read (an element the standard does not define, or
    a standard amount in a place it does not belong) that equals the difference."""
    if not difference:
        return None
    wanted = minor_to_major(abs(difference), currency)
    for path, parent, node in _leaves(element, "cashtransaction", "cashtransaction"):
        name = local_name(node.tag)
        known = name in _KNOWN
        if known and (not name.endswith("Amnt") or _is_read(name, parent, path)):
            continue
        try:
            amount = Decimal((node.text or "").strip())
        except InvalidOperation:
            continue
        if not amount.is_finite() or abs(amount) != wanted:
            continue
        if not known:
            return (
                f"the difference {wanted} {currency} is the amount of <{name}> at {path}, an "
                "element the SAF-T standard does not define and receipt-agent does not read; "
                "ask the till vendor which standard element (e.g. raise, discount) it should be"
            )
        return (
            f"the difference {wanted} {currency} is the amount of <{name}> at {path}, where "
            "the SAF-T standard does not put it and receipt-agent does not read it; ask the "
            "till vendor to write it where the standard says"
        )
    return None


def _is_read(name: str, parent: str, path: str) -> bool:
    if parent not in _READ_IN.get(name, set()):
        return False
    if parent in {"discount", "raise"}:  # cashtransaction/ctLine[2]/discount[1]/dscAmnt
        owner = path.split("/")[-3]
        return owner.split("[")[0] in _OWNERS
    return True


def _leaves(node: Element, name: str, path: str) -> Iterator[tuple[str, str, Element]]:
    """(path, parent's name, element) of every leaf below a transaction, in document order."""
    counts: dict[str, int] = {}
    for child_node in node:
        child_name = local_name(child_node.tag)
        counts[child_name] = counts.get(child_name, 0) + 1
        step = f"{child_name}[{counts[child_name]}]" if child_name in _REPEATED else child_name
        child_path = f"{path}/{step}"
        if len(child_node):
            yield from _leaves(child_node, child_name, child_path)
        else:
            yield child_path, name, child_node
