"""One SAF-T `cashtransaction` → a Dintero-shaped receipt dict (formats.md §1.3, §1.4).

Owns the amount, sign, line, VAT, payment and totals rules for SAF-T Cash Register. Pure:
values in, values out; no I/O, no logging. Never rounds an amount silently and never
"fixes" a receipt that does not add up: those raise TransactionError naming the numbers.

Amounts: `Decimal(text)` → `money.to_minor` (exact; an amount finer than the minor unit,
e.g. `12.345`, is an error naming the field and the value). `ppu` (6 decimals) is the one
exception, as formats.md §1.3 says: it is rounded half-even to the minor unit and the
original kept in the item's `extra_info` (`saft.ppu`).

Signs (`mapping.sign_convention`; returns always come out negative):

- `signed`: amounts are used as written (Skatteetaten's 2021 example).
- `amnttp`: amounts are magnitudes; `amntTp` D (the spec's "decrease in revenue") makes the
  transaction / line negative, C positive. `vatAmntTp` signs VAT lines (else their owner's).
- `auto` (default), formats.md §0.2: (1) a minus sign on any transaction, line or payment
  amount → the transaction is signed, used as written; a minus sign on quantities only →
  each such line is a return written as magnitudes (its amounts negated; the transaction
  takes the sign of its lines' sum); (2) else a return
  transaction type (predefinedBasicID 11006, 11013) negates everything, and a return line
  type (basics 05 named like "RET"/"Return"/"Retur"/"Refund") negates that line;
  (3) else `amntTp`, but only as this file's writer uses it: the first unsigned transaction
  whose type is a plain sale (11001, 11002, 11015) shows which of C/D the writer puts on
  sales (Vera and Lendiron write D, the reverse of the spec); after that an unsigned
  transaction with the other marker is a return. Until a sale has shown it, `amntTp` is not
  trusted and an unsigned transaction is a sale. `roundingAmnt` keeps its own sign and is
  negated with a negated transaction.

Totals, checked here with the SAF-T element names (and again, like every format's, by
`receipt_agent.invariants` in `mapping`): after the transaction-level discounts are spread
over the lines and the raises outside the lines became items (`saft_adjust`),
Σ items.net = net_amount (= transAmntIn), gross_amount = Σ items.gross, and, when there are
payments, Σ payments = net_amount + rounding (paid 295.00 = 295.40 − 0.40). The rounding
also goes to the private `_rounding` key. A transaction that does not add up names the
amount it did not read when one explains the difference (`saft_adjust.unread_hint`).

Rounding is what was added to the total to get the amount paid; a vendor that writes it the
other way round (total − paid) is recognised by its payments and read the right way.
Kept as `extra_info` `saft.rounding` (the signed amount in major units,
`value_type` number) and `_rounding`; `round_off_to_coin` is set to the currency's smallest
coin in minor units (NOK/SEK 100, DKK 50) when a rounding was applied; it is a granularity,
not the amount (formats.md §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from receipt_agent.formats.saft_adjust import (
    discount_before,
    line_kind,
    note_inside,
    orient_discounts,
    oriented,
    raise_item,
    read_raises,
    spread_discounts,
)
from receipt_agent.formats.saft_checks import reading, totals, why
from receipt_agent.formats.saft_lines import (
    Amounts,
    SignConvention,
    discount_lines,
    item_line,
    numbered,
    payment_line,
    signed,
    tax_line,
)
from receipt_agent.formats.saft_master import (
    RETURN_TYPES,
    SALE_TYPES,
    MasterData,
    value,
)
from receipt_agent.formats.xml_stream import children
from receipt_agent.money import AmountError, minor_to_major, parse_decimal

COIN_MINOR = {"NOK": 100, "SEK": 100, "DKK": 50}  # smallest cash coin, for round_off_to_coin


class TransactionError(ValueError):
    """The transaction cannot become a receipt; `errors` holds one sentence per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(slots=True)
class SignMemory:
    """Per file: the amntTp marker this file's writer puts on sales (learned, see docstring)."""

    sale_marker: str | None = None


@dataclass(slots=True)
class Transaction:
    """What `saft.py` knows about a transaction before the receipt is built."""

    element: Element
    store: dict[str, Any]
    register_id: str
    receipt_id: str
    number: str
    currency: str
    predefined_type: str | None
    purchase_at: str
    notes: list[str] = field(default_factory=list)  # unresolved codes, for error messages


def _is_true(text: str | None) -> bool:
    return text is not None and text.lower() in {"true", "1"}


def is_training(element: Element) -> bool:
    return _is_true(value(element, "trainingID"))


def is_voided(element: Element) -> bool:
    return _is_true(value(element, "voidTransaction"))


def has_amount_lines(element: Element) -> bool:
    """Whether any ctLine carries a non-zero line amount (a drawer opening has none)."""
    for line in children(element, "ctLine"):
        raw = value(line, "lineAmntIn")
        try:
            if raw is not None and parse_decimal(raw) != 0:
                return True
        except AmountError:
            return True  # a broken amount is reported when the receipt is built
    return False


def _signs(
    tx: Transaction,
    convention: SignConvention,
    memory: SignMemory,
    master: MasterData,
    written: list[Decimal | None],
    quantities: list[Decimal | None],
    line_types: list[str | None],
    line_markers: list[str | None],
) -> tuple[int | None, list[int | None]]:
    """Return (transaction factor, line factors); None means "as written", ±1 a magnitude."""
    marker = (value(tx.element, "amntTp") or "").upper() or None
    count = len(line_types)
    as_written: list[int | None] = [None] * count
    if convention == "signed":
        return None, as_written
    if convention == "amnttp":
        factor = -1 if marker == "D" else 1
        return factor, [-1 if (m or marker) == "D" else 1 for m in line_markers]
    if any(amount is not None and amount < 0 for amount in written):
        return None, as_written
    if any(quantity is not None and quantity < 0 for quantity in quantities):
        # Only quantities carry a minus: a line with one is a return written as magnitudes
        # (the CSV case of issue 13); never sent as a sale.
        return None, [-1 if q is not None and q < 0 else 1 for q in quantities]
    if tx.predefined_type in RETURN_TYPES:
        return -1, [-1] * count
    line_factors: list[int | None] = [
        -1 if master.is_return_line_type(kind) else 1 for kind in line_types
    ]
    if -1 in line_factors:
        return None, line_factors  # the transaction's sign follows its lines' sum
    if tx.predefined_type in SALE_TYPES and marker in {"C", "D"} and memory.sale_marker is None:
        memory.sale_marker = marker
    if memory.sale_marker is not None and marker in {"C", "D"} and marker != memory.sale_marker:
        return -1, [-1] * count
    return 1, [1] * count


def _sign(amount: int) -> int:
    return (amount > 0) - (amount < 0)


def _tag_kind(item: dict[str, Any], kind: str, master: MasterData) -> None:
    """A deposit or gift-card line: tagged, and described by its code when it has no text."""
    del master
    item.setdefault("extra_info", []).append(
        {"key": "saft.line_kind", "value": kind, "value_type": "string"}
    )


def build_receipt(
    tx: Transaction,
    convention: SignConvention,
    memory: SignMemory,
    master: MasterData,
) -> dict[str, Any]:
    """Given a classified transaction, return the receipt dict. Raise TransactionError."""
    element, currency = tx.element, tx.currency
    amounts = Amounts(currency)
    lines = children(element, "ctLine")
    payments = children(element, "payment")
    trans_in = amounts.read(element, "transAmntIn", "cashtransaction")
    if value(element, "transAmntIn") is None:
        amounts.errors.append("cashtransaction/transAmntIn: is missing")
    line_in = [amounts.read(line, "lineAmntIn", f"ctLine[{i}]") for i, line in numbered(lines)]
    line_qnt = [amounts.read(line, "qnt", f"ctLine[{i}]") for i, line in numbered(lines)]
    paid = [amounts.read(p, "paidAmnt", f"payment[{i}]") for i, p in numbered(payments)]
    trans_factor, line_factors = _signs(
        tx,
        convention,
        memory,
        master,
        [trans_in, *line_in, *paid],
        line_qnt,
        [value(line, "lineType") for line in lines],
        [(value(line, "amntTp") or "").upper() or None for line in lines],
    )
    items = [
        item_line(line, i, line_factors[i - 1], convention, amounts, master, tx.notes)
        for i, line in numbered(lines)
    ]
    kinds = [line_kind(line, master) for line in lines]
    for item, kind in zip(items, kinds, strict=True):
        if kind is not None:
            _tag_kind(item, kind, master)
    if trans_factor is None and convention == "auto" and -1 in line_factors:
        # auto, mixed sale/return lines written unsigned: the total takes the lines' sign.
        trans_factor = -1 if sum(item["net_amount"] for item in items) < 0 else 1
    net_amount = amounts.minor(signed(trans_in, trans_factor), "cashtransaction/transAmntIn")
    rounding_written = amounts.read(element.find("rounding"), "roundingAmnt", "rounding")
    if rounding_written is not None and trans_factor == -1:
        rounding_written = -rounding_written
    rounding = amounts.minor(rounding_written, "rounding/roundingAmnt")
    trans_discounts = discount_lines(element, trans_factor, amounts, master, "cashtransaction")
    for discount in trans_discounts:
        discount["discount_type"] = "total"
    for item in items:
        orient_discounts(item)
    lines_net = sum(item["net_amount"] for item in items)
    trans_sign = _sign(net_amount) or _sign(lines_net) or 1
    for discount in trans_discounts:
        discount["amount"] = abs(discount["amount"]) * trans_sign
    item_discount = sum(d["amount"] for item in items for d in item.get("discount_lines", ()))
    trans_discount = sum(d["amount"] for d in trans_discounts)
    line_raises = [
        oriented(entry, _sign(items[i - 1]["net_amount"]))
        for i, line in numbered(lines)
        for entry in read_raises(line, line_factors[i - 1], amounts, master, f"ctLine[{i}]", i)
    ]
    trans_raises = [
        oriented(entry, trans_sign)
        for entry in read_raises(element, trans_factor, amounts, master, "cashtransaction")
    ]
    before_discount, outside, inside = reading(
        net_amount, lines_net, item_discount, trans_discount, trans_raises, line_raises
    )
    if before_discount:  # this vendor's lineAmntIn is before the line's own discount
        for item in items:
            discount_before(item)
        lines_net -= item_discount
    problems = spread_discounts(items, trans_discounts, kinds)
    receipt_notes: dict[str, Any] = {}
    for entry in inside:
        note_inside(entry, items[entry.line - 1] if entry.line else receipt_notes, currency)
    next_id = max((item["line_id"] for item in items), default=0)
    items.extend(raise_item(entry, next_id + n) for n, entry in enumerate(outside, start=1))
    data: dict[str, Any] = {
        "store": tx.store,
        "receipt_id": tx.receipt_id,
        "_register_id": tx.register_id,
        "_number": tx.number,
        "transaction_id": value(element, "transID"),
        "purchase_at": tx.purchase_at,
        "currency": currency,
        "gross_amount": sum(item["gross_amount"] for item in items)
        if items
        else net_amount + trans_discount,
        "net_amount": net_amount,
        "total_discount": item_discount + trans_discount,
        "items": items,
    }
    tax_lines = [
        tax_line(vat, trans_factor, convention, amounts, master, f"cashtransaction/vat[{i}]")
        for i, vat in numbered(children(element, "vat"))
    ]
    if tax_lines:
        data["tax_lines"] = tax_lines
    foreign: list[dict[str, str]] = []
    payment_lines = [
        payment_line(p, i, paid[i - 1], trans_factor, amounts, master, tx.notes, foreign)
        for i, p in numbered(payments)
    ]
    if payment_lines:
        data["payments"] = payment_lines
        paid_total = sum(payment["amount"] for payment in payment_lines)
        if rounding and paid_total == net_amount - rounding != net_amount + rounding:
            rounding = -rounding  # this vendor writes the rounding as total − paid
    _people(element, master, data, tx.notes)
    extra = _extra_info(element, tx, rounding, currency) + foreign
    extra += receipt_notes.get("extra_info", [])
    if extra:
        data["extra_info"] = extra
    if rounding:
        data["_rounding"] = rounding
        if currency in COIN_MINOR:
            data["round_off_to_coin"] = COIN_MINOR[currency]
    problems = amounts.errors or problems or totals(data, rounding, currency)
    if problems and not amounts.errors:
        problems += why(element, data, outside, rounding, currency)
    if problems:
        raise TransactionError(problems + tx.notes)
    return data


def _people(element: Element, master: MasterData, data: dict[str, Any], notes: list[str]) -> None:
    """The employee (operator) and the customer's id; never the customer's personal data."""
    emp_id = value(element, "empID")
    if emp_id is not None:
        data["operator_id"] = emp_id
        if emp_id not in master.employees:
            notes.append(f"empID {emp_id!r} is not in the file's employees")
        name = master.employees.get(emp_id)
        if name:
            data["operator_name"] = name
    customer = value(element, "custSupID")
    if customer is not None:
        data["customer_id"] = customer
    comment = value(element, "desc")
    if comment is not None:
        data["comment"] = comment


def _extra_info(
    element: Element,
    tx: Transaction,
    rounding: int,
    currency: str,
) -> list[dict[str, str]]:
    extra: list[dict[str, str]] = []
    if rounding:
        extra.append(
            {
                "key": "saft.rounding",
                "value": str(minor_to_major(rounding, currency)),
                "value_type": "number",
            }
        )
    extra.append({"key": "saft.register_id", "value": tx.register_id, "value_type": "string"})
    for key, name in (
        ("saft.trans_type", "transType"),
        ("saft.ref_id", "refID"),
        ("saft.period_number", "periodNumber"),
        ("saft.key_version", "keyVersion"),
    ):
        found = value(element, name)
        if found is not None:
            extra.append({"key": key, "value": found, "value_type": "string"})
    if tx.predefined_type is not None:
        extra.append(
            {
                "key": "saft.trans_type_predefined",
                "value": tx.predefined_type,
                "value_type": "string",
            }
        )
    return extra
