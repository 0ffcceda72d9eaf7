"""SAF-T Cash Register line-level mapping: ctLine → item, discount, VAT and payment lines.

Owns the exact reading of SAF-T amounts (`Amounts`) and the item, discount, tax and payment
shapes of formats.md §1.3; `saft_receipt` decides the signs and assembles the receipt. Pure:
values in, values out; no I/O, no logging. Errors are collected (`Amounts.errors`), never
raised one at a time, so a rejected receipt names every bad field.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from xml.etree.ElementTree import Element

from receipt_agent.formats.payment_types import token_type_for
from receipt_agent.formats.saft_master import Basic, MasterData, value
from receipt_agent.formats.xml_stream import children
from receipt_agent.money import AmountError, minor_exponent, parse_decimal, to_minor
from receipt_agent.refused import refused

SignConvention = Literal["auto", "signed", "amnttp"]
# Payment codes (basics 12 predefinedBasicID) → token_type (the `payment_types` vocabulary).
_PAYMENT_KINDS = {
    "12001": "CASH", "12002": "DEBIT_CARD", "12003": "CREDIT_CARD", "12004": "BANK_ACCOUNT",
    "12005": "GIFT_CARD", "12006": "CUSTOMER_ACCOUNT", "12007": "LOYALTY", "12008": "VOUCHER",
    "12009": "CHECK", "12010": "CREDIT_NOTE", "12011": "MOBILE",
}  # fmt: skip
_CARD_KINDS = frozenset({"CARD", "DEBIT_CARD", "CREDIT_CARD"})
_APPS = frozenset({"VIPPS", "SWISH", "MOBILEPAY"})
_BRANDS = (
    ("VISA", re.compile(r"(?i)\bvisa\b")),
    ("MASTERCARD", re.compile(r"(?i)\bmaster ?card\b")),
    ("MAESTRO", re.compile(r"(?i)\bmaestro\b")),
    ("AMEX", re.compile(r"(?i)\b(amex|american express)\b")),
    ("DINERS", re.compile(r"(?i)\bdiners\b")),
    ("BANKAXEPT", re.compile(r"(?i)\b(bankaxept|bax)\b")),
    ("DANKORT", re.compile(r"(?i)\bdankort\b")),
)
_LEGAL_RATES = (Decimal(0), Decimal(12), Decimal(15), Decimal(25))
_RATE_SNAP = Decimal("0.5")


def as_number(amount: Decimal) -> int | Decimal:
    """A quantity or rate: an int when whole, else the exact Decimal (model.Number)."""
    if amount == amount.to_integral_value():
        return int(amount)
    return amount.normalize()


class Amounts:
    """Reads decimals and converts to minor units, collecting errors instead of stopping."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.errors: list[str] = []

    def read(self, element: Element | None, name: str, where: str) -> Decimal | None:
        raw = value(element, name)
        if raw is None:
            return None
        try:
            return parse_decimal(raw)
        except AmountError:
            self._error(f"{where}/{name}: not a number {refused(raw)}")
            return None

    def minor(self, amount: Decimal | None, label: str) -> int:
        if amount is None:
            return 0
        try:
            return to_minor(amount, self.currency)
        except AmountError:
            self._error(
                f"{label}: {amount} {self.currency} is finer than the minor unit "
                f"(1/{10 ** minor_exponent(self.currency)}); the export must not hold "
                "fractions of øre"
            )
            return 0

    def _error(self, sentence: str) -> None:
        if sentence not in self.errors:  # a field read twice (signs, then lines) counts once
            self.errors.append(sentence)


def signed(amount: Decimal | None, factor: int | None) -> Decimal | None:
    if amount is None or factor is None:
        return amount
    return abs(amount) * factor


def numbered(elements: list[Element]) -> list[tuple[int, Element]]:
    return list(enumerate(elements, start=1))


def item_line(
    line: Element,
    position: int,
    factor: int | None,
    convention: SignConvention,
    amounts: Amounts,
    master: MasterData,
    notes: list[str],
) -> dict[str, Any]:
    where = f"ctLine[{position}]"
    net = signed(amounts.read(line, "lineAmntIn", where), factor)
    quantity = signed(amounts.read(line, "qnt", where), factor)
    line_id = value(line, "lineID")
    item: dict[str, Any] = {
        "line_id": int(line_id) if line_id is not None and line_id.isdigit() else position
    }
    art_id = value(line, "artID")
    article = master.articles.get(art_id) if art_id is not None else None
    if art_id is not None:
        item["id"] = art_id
        if article is None:
            notes.append(f"{where}: artID {art_id!r} is not in the file's articles")
    description = (article.description if article else None) or value(line, "cashTransLineDescr")
    if description:
        item["description"] = description
    group_id = value(line, "artGroupID") or (article.group_id if article else None)
    if group_id is not None:
        group: dict[str, Any] = {"id": group_id}
        basic = master.basic("04", group_id)
        if basic and basic.description:
            group["name"] = basic.description
        item["groups"] = [group]
    item["quantity"] = as_number(quantity) if quantity is not None else 1
    discounts = discount_lines(line, factor, amounts, master, where)
    net_minor = amounts.minor(net, f"{where}/lineAmntIn")
    item["gross_amount"] = net_minor + sum(d["amount"] for d in discounts)
    item["net_amount"] = net_minor
    ppu = amounts.read(line, "ppu", where)
    if ppu is not None:
        scaled = ppu.scaleb(minor_exponent(amounts.currency))
        rounded = scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        item["unit_gross_price"] = int(rounded)
        if rounded != scaled:
            item["extra_info"] = [{"key": "saft.ppu", "value": str(ppu), "value_type": "number"}]
    vat = line.find("vat")
    if vat is not None:
        tax = tax_line(vat, factor, convention, amounts, master, f"{where}/vat")
        item["tax_lines"] = [tax]
        if "percentage" in tax:
            item["tax_percent"] = tax["percentage"]
    else:
        rate = _derived_rate(
            amounts.read(line, "lineAmntIn", where), amounts.read(line, "lineAmntEx", where)
        )
        if rate is not None:
            item["tax_percent"] = rate
    cost = amounts.read(line, "costPrice", where)
    if cost is not None:
        item["cost_price"] = amounts.minor(cost, f"{where}/costPrice")
    salesperson = value(line, "empID")
    if salesperson is not None:
        item["salesperson_id"] = salesperson
    if discounts:
        item["discount_lines"] = discounts
    if net_minor < 0 or (quantity is not None and quantity < 0):
        item["is_return_item"] = True
    return item


def discount_lines(
    owner: Element, factor: int | None, amounts: Amounts, master: MasterData, where: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, discount in numbered(children(owner, "discount")):
        label = f"{where}/discount[{i}]"
        amount = signed(amounts.read(discount, "dscAmnt", label), factor)
        line: dict[str, Any] = {
            "line_id": i,
            "amount": amounts.minor(amount, f"{label}/dscAmnt"),
            "discount_type": "manual",
        }
        kind = value(discount, "dscTp")
        if kind is not None:
            line["discount_id"] = kind
            basic = master.basic("08", kind)
            if basic and basic.description:
                line["description"] = basic.description
        out.append(line)
    return out


def tax_line(
    vat: Element,
    factor: int | None,
    convention: SignConvention,
    amounts: Amounts,
    master: MasterData,
    where: str,
) -> dict[str, Any]:
    own = value(vat, "vatAmntTp")
    if convention == "amnttp" and own in {"C", "D"}:
        factor = -1 if own == "D" else 1
    tax: dict[str, Any] = {}
    rate = amounts.read(vat, "vatPerc", where)
    if rate is not None:
        tax["percentage"] = as_number(rate)
    tax["amount"] = amounts.minor(
        signed(amounts.read(vat, "vatAmnt", where), factor), f"{where}/vatAmnt"
    )
    basis = amounts.read(vat, "vatBasAmnt", where)
    if basis is not None:
        tax["tax_basis"] = amounts.minor(signed(basis, factor), f"{where}/vatBasAmnt")
    code = value(vat, "vatCode")
    if code is not None:
        tax["tax_code"] = code
        group = master.vat_groups.get(code)
        if group:
            tax["tax_group"] = group
    tax["included_in_price"] = True
    return tax


def _derived_rate(gross: Decimal | None, net: Decimal | None) -> int | Decimal | None:
    """A line without `vat`: the rate from In/Ex, snapped to a legal rate, else None."""
    if gross is None or net is None or net == 0:
        return None
    rate = (gross - net) / net * 100
    for legal in _LEGAL_RATES:
        if abs(rate - legal) <= _RATE_SNAP:
            return as_number(legal)
    return None


def payment_line(
    payment: Element,
    position: int,
    paid: Decimal | None,
    factor: int | None,
    amounts: Amounts,
    master: MasterData,
    notes: list[str],
    extra: list[dict[str, str]],
) -> dict[str, Any]:
    """A `payment` → PaymentItem. A foreign-currency tender (curCode ≠ the receipt's) is
    converted with exchRt, rounded half-even to the minor unit, and its original amount,
    currency and rate are kept in `extra` (`saft.payment.N.foreign`)."""
    where = f"payment[{position}]"
    amount = signed(paid, factor)
    foreign = value(payment, "curCode")
    line: dict[str, Any] = {"line_id": position}
    if foreign is not None and foreign != amounts.currency and amount is not None:
        rate = amounts.read(payment, "exchRt", where)
        if rate is None:
            amounts.errors.append(f"{where}: paid in {foreign} but exchRt is missing")
            line["amount"] = 0
        else:
            scaled = (amount * rate).scaleb(minor_exponent(amounts.currency))
            line["amount"] = int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            extra.append(
                {
                    "key": f"saft.payment.{position}.foreign",
                    "value": f"{amount} {foreign} x {rate}",
                    "value_type": "string",
                }
            )
    else:
        line["amount"] = amounts.minor(amount, f"{where}/paidAmnt")
    kind = value(payment, "paymentType")
    if kind is not None:
        line["type_id"] = kind
        basic = master.basic("12", kind)
        if basic is None:
            notes.append(f"{where}: paymentType {kind!r} has no basic of type 12")
        elif basic.description:
            line["description"] = basic.description
        _payment_kind(line, kind, basic)
    reference = value(payment, "paymentRefID")
    if reference is not None:
        line["reference_id"] = reference
    return line


def _payment_kind(line: dict[str, Any], kind: str, basic: Basic | None) -> None:
    """`token_type` and `card_info.card_type` where the export says them (README, SAF-T).

    The standard code (12001 cash … 12011 mobile apps) gives the kind; a name the vendor's
    code or description spells out (Vipps, Swish, MobilePay; Visa, Mastercard, BankAxept …)
    refines it. Nothing is guessed: an unknown code and an unknown name give neither.
    """
    description = basic.description if basic else None
    named = token_type_for(description) or token_type_for(kind)
    payment_kind = _PAYMENT_KINDS.get(basic.predefined or "") if basic else None
    if payment_kind is None or (payment_kind == "MOBILE" and named in _APPS):
        payment_kind = named
    words = " ".join(word for word in (kind, description) if word)
    brand = next((name for name, pattern in _BRANDS if pattern.search(words)), None)
    if payment_kind is None and brand is not None:
        payment_kind = "CARD"
    if payment_kind:
        line["token_type"] = payment_kind
    if brand is not None and payment_kind in _CARD_KINDS:
        line["card_info"] = {"card_type": brand}
