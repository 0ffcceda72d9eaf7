"""SAF-T Cash Register Z reports (`event/eventReport`) → the till's control totals (CONTRACT §7).

A second, independent pass over the same stream as `saft.parse`: it reads `event`s and
drops every `cashtransaction` unread, so the receipt parser stays exactly as it is and
memory stays flat (xml_stream). Pure: no filesystem, database, HTTP or logging.

Only Z reports are control totals: an `eventReport` whose `reportType` (or the event's
`eventType`) says Z (`Z report`, `Z-report`, `ZREP`). Any other report is an X report, an
interim reading taken during the day (the Danish test export writes one after every
transaction): read and stored with `kind: "X"`, so reconcile can say it saw them, but
never compared. The figures read, all in minor units (formats.md §1.1, Norwegian schema 1.00):

- `cash_sales`: `reportTotalCashSales/totalCashSaleAmnt`, the day's sales net of returns;
- `grand_total_sales` / `grand_total_return`: `reportGrandTotalSales`/`…Return`, cumulative
  since the register started (Kassasystemforskriften), so reconcile compares their change
  since the register's previous Z report, or the value itself when it knows no earlier one;
- `returns`: `reportReturnAmnt` (and `returns_count`, `reportReturnNum`);
- `vat`: per `vatPerc`, `reportCashSaleVat/vatAmnt`; `payments`: per `paymentType`,
  `reportPayment/paymentAmnt` (type `NONE` or zero rows are left out);
- `receipts`: `reportReceiptNum`; `training`: `reportTrainingAmnt`, shown, not compared.

The business day is `reportDate` (else `eventDate`). The store follows `mapping.stores` by
`registerID`, then location name, else `sources[].store.id`, as for receipts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from xml.etree.ElementTree import Element

from receipt_agent.config import SourceBase, XmlMapping
from receipt_agent.formats.saft_master import value
from receipt_agent.formats.xml_stream import child, children, stream_elements
from receipt_agent.money import AmountError, parse_decimal, to_minor

_LOCATION = ("auditfile", "company", "location")
_REGISTER = (*_LOCATION, "cashregister")
_CURRENCY = ("auditfile", "header", "curCode")
_WANTED = {(*_LOCATION, "name"), (*_REGISTER, "registerID"), (*_REGISTER, "event"), _CURRENCY}
_SKIP = {(*_REGISTER, "cashtransaction"), ("auditfile", "company", "customersSuppliers")}


@dataclass(frozen=True, slots=True)
class ControlReport:
    """One Z (or X) report: the till's own totals for a register and business day."""

    store_id: str
    register: str
    business_day: str
    report_id: str
    totals: dict[str, Any]
    location: str


def report_kind(event: Element) -> str | None:
    """ "Z" for a closing report, "X" for an interim reading, None for an event without one."""
    report = child(event, "eventReport")
    if report is None:
        return None
    kind = (value(report, "reportType") or value(event, "eventType") or "").upper()
    return "Z" if kind.startswith("Z") else "X"


def read_controls(stream: IO[bytes], source: SourceBase) -> Iterator[ControlReport]:
    """Given a SAF-T export and its source, yield its Z and X reports in file order.

    Raise ParseError as `saft.parse` would for a file that is not safe, well-formed XML.
    """
    stream.seek(0)
    mapping = getattr(source, "mapping", None)
    stores = mapping.stores if isinstance(mapping, XmlMapping) else {}
    currency = source.currency
    location: str | None = None
    register: str | None = None
    for found in stream_elements(stream, _WANTED.__contains__, skip=_SKIP.__contains__):
        if found.path == _CURRENCY:
            currency = value(found.element) or currency
        elif found.name == "name":
            location = value(found.element)
        elif found.name == "registerID":
            register = value(found.element)
        elif (kind := report_kind(found.element)) is not None:
            report = found.element.find("eventReport")
            if report is None:
                continue
            reg = value(report, "registerID") or register or ""
            day = value(report, "reportDate") or value(found.element, "eventDate")
            if not day:
                continue
            store_id = (stores.get(reg) if reg else None) or (
                stores.get(location) if location else None
            )
            yield ControlReport(
                store_id=store_id or source.store.id,
                register=reg,
                business_day=day[:10],
                report_id=kind
                + ":"
                + (value(report, "reportID") or value(found.element, "eventID") or day),
                totals=_totals(report, currency, kind),
                location=found.where,
            )


def _totals(report: Element, currency: str, kind: str) -> dict[str, Any]:
    def amount(element: Element | None, name: str) -> int | None:
        written = value(element, name)
        if written is None:
            return None
        try:
            return to_minor(parse_decimal(written), currency)
        except AmountError:
            return None

    totals: dict[str, Any] = {"kind": kind, "currency": currency}
    for key, element, name in (
        ("cash_sales", child(report, "reportTotalCashSales"), "totalCashSaleAmnt"),
        ("grand_total_sales", report, "reportGrandTotalSales"),
        ("grand_total_return", report, "reportGrandTotalReturn"),
        ("returns", report, "reportReturnAmnt"),
        ("training", report, "reportTrainingAmnt"),
    ):
        found = amount(element, name)
        if found is not None:
            totals[key] = found
    for key, name in (("receipts", "reportReceiptNum"), ("returns_count", "reportReturnNum")):
        count = value(report, name)
        if count is not None and count.isdigit():
            totals[key] = int(count)
    vat: dict[str, int] = {}
    for row in _rows(report, "reportCashSalesVat", "reportCashSaleVat"):
        rate, vat_amount = value(row, "vatPerc"), amount(row, "vatAmnt")
        if rate is not None and vat_amount:
            key = _rate_key(rate)
            vat[key] = vat.get(key, 0) + vat_amount
    payments: dict[str, int] = {}
    for row in _rows(report, "reportPayments", "reportPayment"):
        payment_type, paid = value(row, "paymentType"), amount(row, "paymentAmnt")
        if payment_type is not None and paid:
            payments[payment_type] = payments.get(payment_type, 0) + paid
    totals["vat"], totals["payments"] = vat, payments
    return totals


def _rate_key(rate: str) -> str:
    try:
        number = parse_decimal(rate)
    except AmountError:
        return rate
    return str(int(number)) if number == number.to_integral_value() else f"{number.normalize()}"


def _rows(report: Element, parent: str, name: str) -> list[Element]:
    found = child(report, parent)
    return [] if found is None else children(found, name)
