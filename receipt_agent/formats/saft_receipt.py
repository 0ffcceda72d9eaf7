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
- `auto` (default), formats.md §0.2: (1) a minus sign on any transaction, line, quantity or
  payment amount → the transaction is signed, used as written; (2) else a return
  transaction type (predefinedBasicID 11006, 11013) negates everything, and a return line
  type (basics 05 named like "RET"/"Return"/"Retur"/"Refund") negates that line;
  (3) else `amntTp`, but only as this file's writer uses it: the first unsigned transaction
  whose type is a plain sale (11001, 11002, 11015) shows which of C/D the writer puts on
  sales (Vera and Lendiron write D, the reverse of the spec); after that an unsigned
  transaction with the other marker is a return. Until a sale has shown it, `amntTp` is not
  trusted and an unsigned transaction is a sale. `roundingAmnt` keeps its own sign and is
  negated with a negated transaction.

Totals (checked here rather than with `mapping.check_totals`: `mapping` imports `formats`,
so `formats` may not import it, and SAF-T has transaction-level discounts the generic rule
does not know): with D = Σ transaction-level `discount/dscAmnt`,
Σ items.gross = gross_amount, Σ items.net − D = net_amount (= transAmntIn), and, when there
are payments, Σ payments = net_amount + rounding (paid 295.00 = 295.40 − 0.40). The
rounding also goes to the private `_rounding` key, so `check_totals` agrees.

Rounding: kept as `extra_info` `saft.rounding` (the signed amount in major units,
`value_type` number) and `_rounding`; `round_off_to_coin` is set to the currency's smallest
coin in minor units (NOK/SEK 100, DKK 50) when a rounding was applied; it is a granularity,
not the amount (formats.md §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from xml.etree.ElementTree import Element

from receipt_agent.formats.saft_master import (
    RETURN_TYPES,
    SALE_TYPES,
    MasterData,
    value,
)
from receipt_agent.formats.xml_stream import children
from receipt_agent.money import AmountError, minor_exponent, minor_to_major, parse_decimal, to_minor

SignConvention = Literal["auto", "signed", "amnttp"]
COIN_MINOR = {"NOK": 100, "SEK": 100, "DKK": 50}  # smallest cash coin, for round_off_to_coin
_LEGAL_RATES = (Decimal(0), Decimal(12), Decimal(15), Decimal(25))
_RATE_SNAP = Decimal("0.5")


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


class _Amounts:
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
            self.errors.append(f"{where}/{name}: {raw!r} is not a number")
            return None

    def minor(self, amount: Decimal | None, label: str) -> int:
        if amount is None:
            return 0
        try:
            return to_minor(amount, self.currency)
        except AmountError:
            self.errors.append(
                f"{label}: {amount} {self.currency} is finer than the minor unit "
                f"(1/{10 ** minor_exponent(self.currency)}); the export must not hold "
                "fractions of øre"
            )
            return 0


def _number(amount: Decimal) -> int | Decimal:
    """A quantity or rate: an int when whole, else the exact Decimal (model.Number)."""
    if amount == amount.to_integral_value():
        return int(amount)
    return amount.normalize()


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
    line_types: list[str | None],
    line_markers: list[str | None],
) -> tuple[int | None, list[int | None]]:
    """Return (transaction factor, line factors); None means "as written", ±1 a magnitude."""
    marker = value(tx.element, "amntTp")
    count = len(line_types)
    as_written: list[int | None] = [None] * count
    if convention == "signed":
        return None, as_written
    if convention == "amnttp":
        factor = -1 if marker == "D" else 1
        return factor, [-1 if (m or marker) == "D" else 1 for m in line_markers]
    if any(amount is not None and amount < 0 for amount in written):
        return None, as_written
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


def _signed(amount: Decimal | None, factor: int | None) -> Decimal | None:
    if amount is None or factor is None:
        return amount
    return abs(amount) * factor


def build_receipt(
    tx: Transaction,
    convention: SignConvention,
    memory: SignMemory,
    master: MasterData,
) -> dict[str, Any]:
    """Given a classified transaction, return the receipt dict. Raise TransactionError."""
    element, currency = tx.element, tx.currency
    amounts = _Amounts(currency)
    lines = children(element, "ctLine")
    payments = children(element, "payment")
    trans_in = amounts.read(element, "transAmntIn", "cashtransaction")
    if value(element, "transAmntIn") is None:
        amounts.errors.append("cashtransaction/transAmntIn: is missing")
    line_in = [amounts.read(line, "lineAmntIn", f"ctLine[{i}]") for i, line in _at(lines)]
    line_qnt = [amounts.read(line, "qnt", f"ctLine[{i}]") for i, line in _at(lines)]
    paid = [amounts.read(p, "paidAmnt", f"payment[{i}]") for i, p in _at(payments)]
    trans_factor, line_factors = _signs(
        tx,
        convention,
        memory,
        master,
        [trans_in, *line_in, *line_qnt, *paid],
        [value(line, "lineType") for line in lines],
        [value(line, "amntTp") for line in lines],
    )
    items = [
        _item(line, i, line_factors[i - 1], convention, amounts, master, tx.notes)
        for i, line in _at(lines)
    ]
    if trans_factor is None and convention == "auto" and -1 in line_factors:
        # auto, mixed sale/return lines written unsigned: the total takes the lines' sign.
        trans_factor = -1 if sum(item["net_amount"] for item in items) < 0 else 1
    net_amount = amounts.minor(_signed(trans_in, trans_factor), "cashtransaction/transAmntIn")
    rounding_written = amounts.read(element.find("rounding"), "roundingAmnt", "rounding")
    if rounding_written is not None and trans_factor == -1:
        rounding_written = -rounding_written
    rounding = amounts.minor(rounding_written, "rounding/roundingAmnt")
    trans_discounts = _discounts(element, trans_factor, amounts, master, "cashtransaction")
    item_discount = sum(d["amount"] for item in items for d in item.get("discount_lines", ()))
    trans_discount = sum(d["amount"] for d in trans_discounts)
    data: dict[str, Any] = {
        "store": tx.store,
        "receipt_id": tx.receipt_id,
        "_register_id": tx.register_id,
        "_number": tx.number,
        "transaction_id": value(element, "transID"),
        "purchase_at": tx.purchase_at,
        "currency": currency,
        "gross_amount": net_amount + item_discount + trans_discount,
        "net_amount": net_amount,
        "total_discount": item_discount + trans_discount,
        "items": items,
    }
    tax_lines = [
        _tax_line(vat, trans_factor, convention, amounts, master, f"cashtransaction/vat[{i}]")
        for i, vat in _at(children(element, "vat"))
    ]
    if tax_lines:
        data["tax_lines"] = tax_lines
    payment_lines = [
        _payment(p, i, paid[i - 1], trans_factor, amounts, master, tx, data)
        for i, p in _at(payments)
    ]
    if payment_lines:
        data["payments"] = payment_lines
    _people(element, master, data)
    extra = _extra_info(element, tx, rounding, currency, data)
    if extra:
        data["extra_info"] = extra
    if rounding:
        data["_rounding"] = rounding
        if currency in COIN_MINOR:
            data["round_off_to_coin"] = COIN_MINOR[currency]
    problems = amounts.errors or _totals(data, trans_discount, rounding, currency)
    if problems:
        raise TransactionError(problems + tx.notes)
    return data


def _at(elements: list[Element]) -> list[tuple[int, Element]]:
    return list(enumerate(elements, start=1))


def _item(
    line: Element,
    position: int,
    factor: int | None,
    convention: SignConvention,
    amounts: _Amounts,
    master: MasterData,
    notes: list[str],
) -> dict[str, Any]:
    where = f"ctLine[{position}]"
    net = _signed(amounts.read(line, "lineAmntIn", where), factor)
    quantity = _signed(amounts.read(line, "qnt", where), factor)
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
    item["quantity"] = _number(quantity) if quantity is not None else 1
    discounts = _discounts(line, factor, amounts, master, where)
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
        tax_line = _tax_line(vat, factor, convention, amounts, master, f"{where}/vat")
        item["tax_lines"] = [tax_line]
        if "percentage" in tax_line:
            item["tax_percent"] = tax_line["percentage"]
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


def _discounts(
    owner: Element, factor: int | None, amounts: _Amounts, master: MasterData, where: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, discount in _at(children(owner, "discount")):
        label = f"{where}/discount[{i}]"
        amount = _signed(amounts.read(discount, "dscAmnt", label), factor)
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


def _tax_line(
    vat: Element,
    factor: int | None,
    convention: SignConvention,
    amounts: _Amounts,
    master: MasterData,
    where: str,
) -> dict[str, Any]:
    own = value(vat, "vatAmntTp")
    if convention == "amnttp" and own in {"C", "D"}:
        factor = -1 if own == "D" else 1
    tax: dict[str, Any] = {}
    rate = amounts.read(vat, "vatPerc", where)
    if rate is not None:
        tax["percentage"] = _number(rate)
    tax["amount"] = amounts.minor(
        _signed(amounts.read(vat, "vatAmnt", where), factor), f"{where}/vatAmnt"
    )
    basis = amounts.read(vat, "vatBasAmnt", where)
    if basis is not None:
        tax["tax_basis"] = amounts.minor(_signed(basis, factor), f"{where}/vatBasAmnt")
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
            return _number(legal)
    return None


def _payment(
    payment: Element,
    position: int,
    paid: Decimal | None,
    factor: int | None,
    amounts: _Amounts,
    master: MasterData,
    tx: Transaction,
    data: dict[str, Any],
) -> dict[str, Any]:
    where = f"payment[{position}]"
    amount = _signed(paid, factor)
    foreign = value(payment, "curCode")
    line: dict[str, Any] = {"line_id": position}
    if foreign is not None and foreign != tx.currency and amount is not None:
        rate = amounts.read(payment, "exchRt", where)
        if rate is None:
            amounts.errors.append(f"{where}: paid in {foreign} but exchRt is missing")
            line["amount"] = 0
        else:
            scaled = (amount * rate).scaleb(minor_exponent(tx.currency))
            line["amount"] = int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            data.setdefault("_foreign", []).append(
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
            tx.notes.append(f"{where}: paymentType {kind!r} has no basic of type 12")
        elif basic.description:
            line["description"] = basic.description
    reference = value(payment, "paymentRefID")
    if reference is not None:
        line["reference_id"] = reference
    return line


def _people(element: Element, master: MasterData, data: dict[str, Any]) -> None:
    """The employee (operator) and the customer's id; never the customer's personal data."""
    emp_id = value(element, "empID")
    if emp_id is not None:
        data["operator_id"] = emp_id
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
    data: dict[str, Any],
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
    extra.extend(data.pop("_foreign", []))
    return extra


def _totals(data: dict[str, Any], trans_discount: int, rounding: int, currency: str) -> list[str]:
    """The cross-checks of the module docstring; one sentence per contradiction, in kroner."""

    def major(minor: int) -> str:
        return f"{minor_to_major(minor, currency)} {currency}"

    problems: list[str] = []
    items = data["items"]
    net_amount = data["net_amount"]
    if items:
        line_net = sum(item["net_amount"] for item in items)
        if line_net - trans_discount != net_amount:
            less = f" less transaction discounts {major(trans_discount)}" if trans_discount else ""
            problems.append(
                f"the lines add up to {major(line_net)}{less} but transAmntIn is "
                f"{major(net_amount)}; the export does not add up"
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
