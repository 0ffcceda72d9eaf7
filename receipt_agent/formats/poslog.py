"""ARTS POSLog exports → Dintero-shaped receipts (CONTRACT §2 `format: poslog`, formats.md §4).

Reads POSLog 6 (Visma Retail: `BusinessUnit/UnitID`) and the older 2.x style NCR ACS writes
(`RetailStoreID`, vendor `acs:` elements), one `Transaction` at a time through
`formats.xml_stream` (defusedxml, local names, no DTDs or entities, flat memory), so a 2 GB
export is never held whole. Pure: no filesystem, database, HTTP or logging. Never rounds an
amount and never fixes totals that do not add up: such a transaction becomes an
InvalidRecord naming the numbers. The money inside a RetailTransaction (lines, voids,
discounts, tax, tenders, rounding) is read by `formats.poslog_lines`.

What becomes what (decided here; formats.md §4.2 leaves the exact shapes open):

- **Not receipts** (`SkippedRecord`): a Transaction without a `RetailTransaction`
  (`ControlTransaction` sign-on/off, drawer, no-sale, tender control) and a suspended one →
  `non_sale`; `@TrainingModeFlag="true"` → `training` unless `mapping.training: send`
  (then `entry_status: "Training"`); `Transaction/@CancelFlag="true"` or `TransactionStatus`
  Canceled/Cancelled/Voided/PostVoided → `voided` unless `mapping.voided: send` (then
  `entry_status: "Voided"`). Visma's `ControlTransaction` (CashDrawerOpen) next to a
  RetailTransaction does not make a sale a non-sale; a RetailTransaction with neither an
  item nor a tender (after cancelled lines are dropped) is a `non_sale` too.
- **Store.** `BusinessUnit/UnitID`, else `RetailStoreID`, looked up in `mapping.stores`; a unit
  missing from a non-empty map rejects its receipt. Without a map every receipt gets
  `sources[].store.id`, and a file naming a second unit raises ParseError (never guessed).
- **receipt_id** = `{store.id}-{WorkstationID}-{SequenceNumber}`, and with a
  `BusinessDayDate` `{store.id}-{WorkstationID}-{YYYYMMDD}-{SequenceNumber}` (the business
  day without dashes), because sequence numbers wrap or reset per day on some tills. Visma's
  `Kvitto: 001-03619` (workstation 1, sequence 3619, store 3004) becomes `3004-1-3619` when
  the source's store id is 3004. `_register_id`/`_number` carry workstation and sequence for
  a `receipt_id_format` override (which then has no business day). `store.terminal_id` =
  WorkstationID; `transaction_id` = `TransactionID` when present.
- **purchase_at** = `EndDateTime`, else `ReceiptDateTime`, else `BeginDateTime`, else
  `POSLogDateTime`; a time without an offset in its text takes the element's `@Offset`, else
  its `@TimeZone`, else the transaction's `TimeZone`, else `source.timezone`
  (`poslog_values.read_time`). The business day is only used for the id (NCR: business day
  2017-09-30 ends at 02:02 on 2017-10-01).
- **Spellings.** The root may be `POSLog`, an ARTS `DigitalReceipt` or one `Transaction`
  (Transactions may sit in one wrapper element under the root, e.g. `POSLog/Body`);
  flags are any `xs:boolean` spelling and statuses any case or prefix (`poslog_values`).
- **Returns** trace to their sale: a `TransactionLink` (on a Return line or the
  RetailTransaction) becomes `extra_info` `poslog.original_receipt_id` (built like
  receipt_id: the linked unit through `mapping.stores`, workstation, business day, sequence)
  and `poslog.original_transaction_id`, on the receipt and on the returned item.
- **Currency**: `CurrencyCode`, else a `Total/@CurrencyCode`, else `source.currency`.
- **Totals** are sums of the lines; they are checked against `totals.check_totals` and the
  file's own `Total` elements (TransactionGross/Net/Grand/TaxAmount; a return's Totals
  signed or, as the ARTS 6 schema demands, as magnitudes). With
  `tax_included: false` (US) the tax on top is not in the items' amounts: `amount_due` =
  net + tax, and payments are checked against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import IO, Any
from xml.etree.ElementTree import Element

from receipt_agent.config import PoslogSource, SourceBase
from receipt_agent.errors import ParseError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, SkippedRecord, SkipReason
from receipt_agent.formats.poslog_lines import LineReader, Lines
from receipt_agent.formats.poslog_tax import sum_by_rate
from receipt_agent.formats.poslog_values import (
    TimeError,
    code,
    is_true,
    read_time,
    transaction_zone,
)
from receipt_agent.formats.xml_stream import Path, child, children, stream_elements, text
from receipt_agent.money import minor_to_major
from receipt_agent.refused import refused
from receipt_agent.totals import check_totals

_ROOTS = ("POSLog", "DigitalReceipt", "Transaction")  # DigitalReceipt: ARTS DR, same Transaction
_VOIDED = {"canceled", "cancelled", "voided", "postvoided", "void", "postvoid"}
_MAX_WRAPPED_DEPTH = 3  # POSLog/Transaction, or POSLog/<a body wrapper>/Transaction
_TIMES = ("EndDateTime", "ReceiptDateTime", "BeginDateTime", "POSLogDateTime")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse(stream: IO[bytes], source: SourceBase) -> Iterator[Record]:
    """Given a POSLog export and its source, yield one record per Transaction, in file order.

    Raise ParseError when the XML is unsafe or broken, the root is not POSLog, or the file
    names several stores and `mapping.stores` is empty.
    """
    if not isinstance(source, PoslogSource):
        raise TypeError("poslog.parse needs a PoslogSource")
    units: dict[str, str] = {}
    for found in stream_elements(stream, _wanted):
        yield _transaction(found.element, found.where, source, units)


def _wanted(path: Path) -> bool:
    if len(path) == 1 and path[0] not in _ROOTS:
        raise ParseError(
            f"the root element is <{path[0]}>, not <POSLog>; this is not a POSLog export, "
            "so check the source's format",
            location=f"/{path[0]}",
        )
    # A Transaction right under the root, or under one body wrapper some vendors add.
    return path[-1] == "Transaction" and len(path) <= _MAX_WRAPPED_DEPTH


def _transaction(
    transaction: Element, where: str, source: PoslogSource, units: dict[str, str]
) -> Record:
    mapping = source.mapping
    errors: list[str] = []
    # Every transaction names its store, skipped ones too: a file of two stores is caught.
    store_id = _store_id(transaction, where, source, units, errors)
    retail = child(transaction, "RetailTransaction")
    status = code(retail.get("TransactionStatus")) if retail is not None else ""
    if retail is None or status.startswith("suspended"):
        return _skipped(store_id, "non_sale", where, transaction)
    entry_status: str | None = None
    if is_true(transaction.get("TrainingModeFlag")):
        if mapping.training == "skip":
            return _skipped(store_id, "training", where, transaction)
        entry_status = "Training"
    if is_true(transaction.get("CancelFlag")) or status in _VOIDED:
        if mapping.voided == "skip":
            return _skipped(store_id, "voided", where, transaction)
        entry_status = entry_status or "Voided"

    workstation = text(transaction, "WorkstationID")
    sequence = text(transaction, "SequenceNumber")
    business_day = _business_day(text(transaction, "BusinessDayDate"), where, errors)
    for name, value in (("WorkstationID", workstation), ("SequenceNumber", sequence)):
        if value is None:
            errors.append(f"{where}: has no {name}; the receipt id needs it")
    parts = [store_id, workstation, business_day, sequence]
    receipt_id = "-".join(part for part in parts if part)
    purchase_at = _purchase_at(transaction, retail, where, source, errors)
    currency = _currency(transaction, retail, where, source, errors)

    reader = LineReader(currency, f"{where}/RetailTransaction", tax_included=mapping.tax_included)
    lines = reader.read(retail)
    if not lines.items and not lines.payments and not lines.errors:
        # nothing sold, nothing paid: a no-sale
        return _skipped(store_id, "non_sale", where, transaction)
    errors.extend(lines.errors)
    data = _receipt(lines, store_id, receipt_id, purchase_at, currency)
    data["_register_id"], data["_number"] = workstation, sequence
    if business_day:
        data["_business_day"] = f"{business_day[:4]}-{business_day[4:6]}-{business_day[6:]}"
    if workstation:
        data["store"]["terminal_id"] = workstation
    for key, value in (
        ("transaction_id", text(transaction, "TransactionID")),
        ("operator_id", text(transaction, "OperatorID")),
        ("operator_name", _operator_name(transaction)),
        ("customer_id", lines.customer_id),
        ("entry_status", entry_status),
    ):
        if value:
            data[key] = value
    extra = _extra_info(lines, currency, text(transaction, "BusinessDayDate"))
    extra += _links(lines, source, store_id)
    if extra:
        data["extra_info"] = extra
    if not errors:
        errors.extend(_check(data, lines, reader))
    if errors:
        return InvalidRecord(
            location=where, errors=errors, store_id=store_id, receipt_id=receipt_id, data=data
        )
    return RawReceipt(data=data, location=where)


def _receipt(
    lines: Lines, store_id: str, receipt_id: str, purchase_at: str | None, currency: str
) -> dict[str, Any]:
    items = lines.items
    net = sum(item["net_amount"] for item in items)
    data: dict[str, Any] = {
        "store": {"id": store_id},
        "receipt_id": receipt_id,
        "purchase_at": purchase_at,
        "currency": currency,
        "items": items,
        "gross_amount": sum(item["gross_amount"] for item in items),
        "net_amount": net,
    }
    discount = sum(line["amount"] for item in items for line in item.get("discount_lines", []))
    if discount:
        data["total_discount"] = discount
    tax_lines = _receipt_tax_lines(lines, items)
    if tax_lines:
        data["tax_lines"] = tax_lines
    if lines.tax_on_top:
        data["amount_due"] = net + lines.tax_on_top
    if lines.payments:
        data["payments"] = lines.payments
    if lines.rounding:
        data["_rounding"] = lines.rounding
    return data


def _check(data: dict[str, Any], lines: Lines, reader: LineReader) -> list[str]:
    """Cross-check the receipt with totals.check_totals and the file's own Totals."""
    if lines.tax_on_top:
        # Payments cover net + tax on top: check the lines, then payments against amount_due.
        problems = check_totals({key: value for key, value in data.items() if key != "payments"})
        problems += check_totals(
            {
                "net_amount": data["amount_due"],
                "payments": data.get("payments"),
                "_rounding": data.get("_rounding"),
            }
        )
    else:
        problems = check_totals(data)
    sentences = [f"totals do not add up: {problem} (in minor units)" for problem in problems]
    sentences += [
        f"totals do not add up: {problem}"
        for problem in reader.check_totals(data["net_amount"], data["gross_amount"])
    ]
    return sentences


def _store_id(
    transaction: Element,
    where: str,
    source: PoslogSource,
    units: dict[str, str],
    errors: list[str],
) -> str:
    unit = text(transaction, "BusinessUnit/UnitID") or text(transaction, "RetailStoreID")
    stores = source.mapping.stores
    if stores:
        if unit is None:
            return source.store.id
        if unit not in stores:
            errors.append(
                f"{where}: store {unit!r} (UnitID/RetailStoreID) is not in mapping.stores; "
                "add it with its Dintero store id"
            )
            return source.store.id
        return stores[unit]
    if unit is not None:
        units.setdefault(unit, where)
        if len(units) > 1:
            first, second = list(units)[:2]
            raise ParseError(
                f"the file holds transactions of several stores ({first!r} at "
                f"{units[first]}, {second!r} here) and mapping.stores is empty; map each "
                "UnitID/RetailStoreID to a store id in the source's mapping.stores",
                location=where,
            )
    return source.store.id


def _skipped(store_id: str, reason: SkipReason, where: str, transaction: Element) -> SkippedRecord:
    """A skipped transaction with what reconciliation needs: workstation, sequence, day."""
    day = text(transaction, "BusinessDayDate")
    return SkippedRecord(
        reason, where, store_id=store_id, register_id=text(transaction, "WorkstationID"),
        number=text(transaction, "SequenceNumber"), business_day=day[:10] if day else None,
    )  # fmt: skip


def _business_day(value: str | None, where: str, errors: list[str]) -> str | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        errors.append(f"{where}/BusinessDayDate: not a date (YYYY-MM-DD) {refused(value)}")
        return None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"  # strftime does not pad years < 1000


def _purchase_at(
    transaction: Element,
    retail: Element,
    where: str,
    source: PoslogSource,
    errors: list[str],
) -> str | None:
    """The first of the transaction's times, with its offset (poslog_values.read_time)."""
    zone, problem = transaction_zone(transaction)
    if problem:
        errors.append(f"{where}/{problem}")
        return None
    for name in _TIMES:
        node = child(transaction, name)
        if node is None:
            node = child(retail, name)
        if node is None or not (node.text or "").strip():
            continue
        try:
            return read_time(node, zone or source.tz)
        except TimeError as error:
            errors.append(f"{where}/{node.tag}: {error}")
            return None
    errors.append(f"{where}: has no EndDateTime, ReceiptDateTime or BeginDateTime")
    return None


def _currency(
    transaction: Element,
    retail: Element,
    where: str,
    source: PoslogSource,
    errors: list[str],
) -> str:
    code = text(transaction, "CurrencyCode")
    if code is None:
        code = next(
            (
                total.get("CurrencyCode")
                for total in children(retail, "Total")
                if total.get("CurrencyCode")
            ),
            None,
        )
    if code is None:
        return source.currency
    code = code.upper()
    if not _CURRENCY.match(code):
        errors.append(f"{where}/CurrencyCode: not an ISO 4217 code such as NOK {refused(code)}")
        return source.currency
    return code


def _operator_name(transaction: Element) -> str | None:
    operator = child(transaction, "OperatorID")
    name = operator.get("OperatorName") if operator is not None else None
    return name.strip() or None if name else None


def _extra_info(lines: Lines, currency: str, business_day: str | None) -> list[dict[str, str]]:
    extra: list[dict[str, str]] = []
    if lines.rounding:
        extra.append(
            {
                "key": "poslog.rounding",
                "value": str(minor_to_major(lines.rounding, currency)),
                "value_type": "number",
            }
        )
    if business_day:
        extra.append({"key": "poslog.business_day", "value": business_day, "value_type": "string"})
    return extra


def _links(lines: Lines, source: PoslogSource, store_id: str) -> list[dict[str, str]]:
    """`TransactionLink`s as extra_info: the linked sale's receipt_id and TransactionID.

    The receipt id is built as this parser builds every receipt_id ({store}-{workstation}-
    {YYYYMMDD}-{sequence}, the store through `mapping.stores`), so a return's
    `poslog.original_receipt_id` is the receipt_id its sale was sent with (unless the source
    overrides receipt_id_format). A link on a line goes on that item as well.
    """
    receipt_extra: list[dict[str, str]] = []
    for item, link in lines.links:
        extra: list[dict[str, str]] = []
        if link.get("workstation") and link.get("sequence"):
            unit = link.get("unit")
            store = source.mapping.stores.get(unit, store_id) if unit else store_id
            day = _business_day(link.get("day"), "", []) if link.get("day") else None
            parts = [store, link["workstation"], day, link["sequence"]]
            extra.append(
                {
                    "key": "poslog.original_receipt_id",
                    "value": "-".join(part for part in parts if part),
                    "value_type": "string",
                }
            )
        if link.get("transaction_id"):
            extra.append(
                {
                    "key": "poslog.original_transaction_id",
                    "value": link["transaction_id"],
                    "value_type": "string",
                }
            )
        if item is not None and extra:
            item.setdefault("extra_info", []).extend(extra)
        receipt_extra.extend(entry for entry in extra if entry not in receipt_extra)
    return receipt_extra


def _receipt_tax_lines(lines: Lines, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's LineItem/Tax lines, else the items' summed per rate.

    VAT-inclusive summary lines that do not cover the taxed items' net (a till that wrote
    them before a discount) give way to the items' own lines, which are exact.
    """
    from_items = sum_by_rate(items)
    included = [line for line in lines.tax_lines if line.get("included_in_price")]
    if not included or not from_items:
        return lines.tax_lines or from_items
    covered = sum(item["net_amount"] for item in items if item.get("tax_lines"))
    summary = sum(line.get("amount", 0) + line.get("tax_basis", 0) for line in included)
    complete = all("amount" in line and "tax_basis" in line for line in from_items)
    if abs(summary - covered) > len(included) and complete:
        return from_items
    return lines.tax_lines
