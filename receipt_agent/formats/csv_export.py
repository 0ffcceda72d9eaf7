"""CSV exports, one row per receipt line → Dintero-shaped receipts (CONTRACT §2 `format: csv`).

Pure: reads the stream it is given and nothing else; no filesystem, database, HTTP or logging.
Never rounds an amount: one finer than the currency's minor unit rejects its receipt.
Unlike the XML parsers it reads the whole file: rows of one receipt may be scattered, so every
row must be grouped before the first receipt is complete (CSV sources are capped at 50 MB by
the default `max_file_size`).

Rules (decided here, CONTRACT §2 leaves them open):

- **Encoding.** `mapping.encoding`; UTF-8 (any spelling) is read as `utf-8-sig`, so a BOM is
  tolerated. A file that starts with a UTF-8 BOM is read as UTF-8 whatever the setting says
  (the BOM is a stronger signal than a guess in a config). A byte that does not decode raises
  ParseError naming the line and suggesting `mapping.encoding`.
- **Header.** The first non-empty row; headers are matched after trimming spaces. A configured
  column missing from the header raises ParseError naming the missing and the found headers.
- **Grouping.** Rows belong to one receipt when they share (register, receipt number); the
  register is the `register_id` column when configured, else empty. Rows may be consecutive or
  scattered over the file; receipts are yielded in the order of their first row.
- **Lines and payments.** A row whose `item_gross_amount` cell is non-empty is a receipt line.
  A row whose `payment_amount` cell is non-empty is a payment (`payment_type` is its
  `type_id`; its `token_type` comes from `mapping.payment_types`, else from the known names
  in `formats.payment_types`, e.g. Kontant → CASH, Kort → CARD, Vipps → VIPPS). One row may
  be both. A payment amount repeated on every line row is therefore
  counted on every row; `totals.check_totals` (Σ payments = net) then rejects the receipt
  rather than guessing. A receipt without payment rows is sent without payments.
  A row with neither is an error in its receipt.
- **Amounts.** `amounts: major` converts `123,45` to 12345 øre exactly; `minor` takes integers.
  `item_gross_amount` is the line before its discount (VAT-inclusive, formats.md §0.6); net =
  gross − `item_discount_amount` − its share of `receipt_discount_amount`. Returns (a minus
  sign on quantity or amount, `mapping.sign_convention`), discounts, refunds and VAT follow
  `formats.csv_amounts`: with a VAT rate each line gets a tax line `{percentage, amount,
  tax_basis, included_in_price: true}` from its final net by `money.split_vat`. Receipt
  totals are the sums of the lines; receipt tax lines sum the line tax lines by rate.
- **Time.** `datetime_format` (strptime), else ISO-8601. A time without an offset is local time
  in `source.timezone` (fold=0 on the DST fold); an explicit offset wins. `purchase_at` is the
  first row's time; other rows may leave it empty.
- **Ids.** `receipt_id` = `{store.id}-{register}-{number}`, or `{store.id}-{number}` without a
  register column/value. `store.terminal_id` = register. The parts also go to `mapping` as
  the private keys `_register_id`/`_number` (mapping.py's convention) for `receipt_id_format`.
- **Errors.** A bad cell (unparseable or too fine amount, bad time, conflicting currency)
  makes its receipt an InvalidRecord naming the line and the column; other receipts go on.
  A message never quotes a cell it refused (with shifted columns it may hold a customer's
  name or e-mail, CONTRACT §6): it gives the cell's shape (`refused.refused`). Nor does
  it quote the header row, which is data when the export has no header.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from receipt_agent.config import CsvMapping, CsvSource, SourceBase
from receipt_agent.errors import ParseError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record
from receipt_agent.formats.csv_amounts import (
    add_tax_lines,
    orient_payments,
    spread_receipt_discount,
)
from receipt_agent.formats.payment_types import token_type_for
from receipt_agent.money import AmountError, parse_decimal, to_minor
from receipt_agent.refused import refused
from receipt_agent.totals import check_totals

_UTF8_BOM = codecs.BOM_UTF8
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_VAT_PERCENT = 100


class _CellError(ValueError):
    """One bad cell; the message names the line and the column."""


@dataclass(frozen=True)
class _Row:
    """One row of a receipt, read cell by cell; a bad cell raises _CellError naming it."""

    line: int
    cells: dict[str, str]
    mapping: CsvMapping
    titles: dict[str, str]

    def where(self, name: str) -> str:
        return f"line {self.line}, column {self.titles[name]!r}"

    def number(self, name: str) -> int | Decimal:
        """A quantity or rate: an int when whole, else the exact Decimal."""
        with self._reading(name):
            value = self._decimal(name)
        return int(value) if value == value.to_integral_value() else value.normalize()

    def amount(self, name: str, currency: str) -> int:
        """An amount in minor units, by `mapping.amounts`; never rounded."""
        with self._reading(name):
            value = self._decimal(name)
            if self.mapping.amounts == "major":
                return to_minor(value, currency)
            if value != value.to_integral_value():
                raise AmountError(
                    f"{value} is not a whole number of minor units (mapping.amounts: minor)"
                )
            return int(value)

    def _decimal(self, name: str) -> Decimal:
        text = _leading_sign(self.cells[name])
        return parse_decimal(text, decimal_separator=self.mapping.decimal_separator)

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        try:
            yield
        except AmountError as error:
            raise _CellError(f"{self.where(name)}: {error}") from None


@dataclass
class _Group:
    """The rows of one receipt, collected over the whole file."""

    number: str
    register: str
    first_line: int
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)


def parse(stream: IO[bytes], source: SourceBase) -> Iterator[Record]:
    """Given a CSV export and its source, yield one record per receipt (see module docstring).

    Raise ParseError when the file cannot be decoded, has no header or lacks a configured column.
    """
    if not isinstance(source, CsvSource):
        raise TypeError("csv_export.parse needs a CsvSource")
    mapping = source.mapping
    text = _decode(stream.read(), mapping)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    try:
        header, header_line = _read_header(reader)
        positions = _column_positions(header, mapping, header_line)
        groups = _group_rows(reader, header, positions, header_line)
    except csv.Error as error:
        raise ParseError(
            f"the CSV cannot be read ({error}); check the export and mapping.delimiter",
            location=f"line {max(reader.line_num, 1)}",
        ) from None
    for group in groups.values():
        yield _build(group, source)


def _decode(raw: bytes, mapping: CsvMapping) -> str:
    encoding, described = mapping.encoding, mapping.encoding
    if raw.startswith(_UTF8_BOM):
        encoding, described = "utf-8-sig", "UTF-8 (the file starts with a UTF-8 BOM)"
    elif codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ParseError(
            f"byte 0x{raw[error.start]:02x} cannot be decoded as {described}; "
            "set mapping.encoding to the till's encoding (e.g. cp1252 for Windows tills)",
            location=f"line {line}",
        ) from None


def _read_header(reader: Any) -> tuple[list[str], int]:
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row], int(reader.line_num)
    raise ParseError(
        "the file has no header row; the export must start with a row of column names",
        location="line 1",
    )


def _column_positions(header: list[str], mapping: CsvMapping, line: int) -> dict[str, int]:
    """Given the header, return receipt field → column index for every configured column."""
    configured = mapping.columns.model_dump(exclude_none=True)
    missing = [f"{name} ({title!r})" for name, title in configured.items() if title not in header]
    if missing:
        # The row is quoted only when it is a header (it names a configured column): in an
        # export without a header row, the first row is a receipt line (CONTRACT §6).
        if len(missing) < len(configured):
            found = "the header has " + ", ".join(repr(title) for title in header)
        else:
            found = (
                f"the first row names none of them ({len(header)} column(s)), so it may be "
                "data: the export must start with a header row"
            )
        raise ParseError(
            f"the header lacks the configured column(s) {', '.join(missing)}; {found}; "
            "fix mapping.columns or the export (also check mapping.delimiter)",
            location=f"line {line}",
        )
    return {name: header.index(title) for name, title in configured.items()}


def _group_rows(
    reader: Any,
    header: list[str],
    positions: dict[str, int],
    header_line: int,
) -> dict[tuple[str, str], _Group]:
    groups: dict[tuple[str, str], _Group] = {}
    previous_end = header_line
    for row in reader:
        line = previous_end + 1
        previous_end = int(reader.line_num)
        if not any(cell.strip() for cell in row):
            continue
        cells = {
            name: (row[index].strip() if index < len(row) else "")
            for name, index in positions.items()
        }
        if len(row) > len(header):
            cells["_extra"] = f"the row has {len(row)} fields but the header has {len(header)}"
        number = cells["receipt_number"]
        register = cells.get("register_id", "")
        key = (register, number) if number else ("", f"\x00line {line}")
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(number=number, register=register, first_line=line)
        group.rows.append((line, cells))
    return groups


def _build(group: _Group, source: CsvSource) -> Record:
    mapping = source.mapping
    titles = mapping.columns.model_dump(exclude_none=True)
    errors: list[str] = []
    store_id = source.store.id
    receipt_id = (
        f"{store_id}-{group.register}-{group.number}"
        if group.register
        else f"{store_id}-{group.number}"
    )
    location = f"line {group.first_line}"
    if not group.number:
        return InvalidRecord(
            location=location,
            errors=[f"line {group.first_line}, column {titles['receipt_number']!r}: is empty"],
            store_id=store_id,
        )

    currency = _currency(group, source, titles, errors)
    purchase_at: str | None = None
    operator_id: str | None = None
    items: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    for line, cells in group.rows:
        row = _Row(line, cells, mapping, titles)
        try:
            if "_extra" in cells:
                raise _CellError(f"line {line}: {cells['_extra']}")
            when = cells["purchase_at"]
            if when:
                parsed = _parse_time(when, mapping, source, line, titles["purchase_at"])
                purchase_at = purchase_at or parsed
            if cells.get("operator_id") and operator_id is None:
                operator_id = cells["operator_id"]
            has_line = bool(cells["item_gross_amount"])
            has_payment = bool(cells.get("payment_amount"))
            if has_line:
                items.append(_item(row, len(items) + 1, currency))
            if has_payment:
                amount = row.amount("payment_amount", currency)
                payment: dict[str, Any] = {"line_id": len(payments) + 1, "amount": amount}
                if cells.get("payment_type"):
                    payment["type_id"] = cells["payment_type"]
                    token_type = mapping.payment_types.get(cells["payment_type"]) or token_type_for(
                        cells["payment_type"]
                    )
                    if token_type:
                        payment["token_type"] = token_type
                payments.append(payment)
            if not has_line and not has_payment:
                wanted = [titles["item_gross_amount"]]
                if "payment_amount" in titles:
                    wanted.append(titles["payment_amount"])
                raise _CellError(f"line {line}: neither {' nor '.join(map(repr, wanted))} is set")
        except _CellError as error:
            errors.append(str(error))
    if purchase_at is None and not errors:
        errors.append(f"line {group.first_line}, column {titles['purchase_at']!r}: is empty")
    if not errors and "receipt_discount_amount" in titles:
        problem = _receipt_discount(group, items, currency, mapping, titles)
        if problem:
            errors.append(problem)
    if errors:
        return InvalidRecord(
            location=location, errors=errors, store_id=store_id, receipt_id=receipt_id
        )

    data: dict[str, Any] = {
        "store": {"id": store_id},
        "receipt_id": receipt_id,
        "_number": group.number,
        "purchase_at": purchase_at,
        "currency": currency,
        "items": items,
        "gross_amount": sum(item["gross_amount"] for item in items),
        "net_amount": sum(item["net_amount"] for item in items),
    }
    discount = sum(line["amount"] for item in items for line in item.get("discount_lines", []))
    if discount:
        data["total_discount"] = discount
    if group.register:
        data["store"]["terminal_id"] = group.register
        data["_register_id"] = group.register
    tax_lines = add_tax_lines(items)
    if tax_lines:
        data["tax_lines"] = tax_lines
    if payments:
        if mapping.sign_convention == "auto":
            orient_payments(payments, data["net_amount"])
        data["payments"] = payments
    if operator_id:
        data["operator_id"] = operator_id
    problems = check_totals(data)
    if problems:
        return InvalidRecord(
            location=location,
            errors=[f"totals do not add up: {problem} (in minor units)" for problem in problems],
            store_id=store_id,
            receipt_id=receipt_id,
            data=data,
        )
    return RawReceipt(data=data, location=location)


def _currency(group: _Group, source: CsvSource, titles: dict[str, str], errors: list[str]) -> str:
    seen: dict[str, int] = {}
    for line, cells in group.rows:
        value = cells.get("currency", "").upper()
        if value:
            seen.setdefault(value, line)
    if len(seen) > 1:
        valid = all(_CURRENCY.match(code) for code in seen)
        where = ", ".join(f"{code if valid else '?'} (line {line})" for code, line in seen.items())
        errors.append(f"column {titles['currency']!r}: one receipt in several currencies: {where}")
    if seen:
        code = next(iter(seen))
        if not _CURRENCY.match(code):
            errors.append(
                f"line {seen[code]}, column {titles['currency']!r}: "
                f"not an ISO 4217 code such as NOK {refused(code)}"
            )
        return code
    return source.currency


def _item(row: _Row, line_id: int, currency: str) -> dict[str, Any]:
    """One receipt line; signs and the line discount by `csv_amounts`' rules, no VAT yet."""
    cells, mapping = row.cells, row.mapping
    gross = row.amount("item_gross_amount", currency)
    item: dict[str, Any] = {"line_id": line_id}
    for name, key in (("item_id", "id"), ("item_description", "description")):
        if cells.get(name):
            item[key] = cells[name]
    if cells.get("item_barcode"):
        item["barcode"] = cells["item_barcode"]
    quantity: int | Decimal = 1
    if cells.get("item_quantity"):
        quantity = row.number("item_quantity")
    if mapping.sign_convention == "signed" and (quantity < 0 < gross or gross < 0 < quantity):
        raise _CellError(
            f"line {row.line}: the quantity and the amount have different signs; with "
            "mapping.sign_convention: signed a return must be negative in both "
            "(sign_convention: auto reads either minus sign as a return)"
        )
    negative = gross < 0 or quantity < 0
    sign = -1 if negative else 1
    gross = sign * abs(gross)
    quantity = -quantity if negative and quantity > 0 else quantity
    item["quantity"] = quantity
    item["gross_amount"] = gross
    discount = 0
    if cells.get("item_discount_amount"):
        discount = abs(row.amount("item_discount_amount", currency))
        if discount > abs(gross):
            raise _CellError(
                f"{row.where('item_discount_amount')}: the discount is larger than the line's "
                "amount"
            )
    item["net_amount"] = gross - sign * discount
    if discount:
        item["discount_lines"] = [{"amount": sign * discount, "discount_type": "manual"}]
    if cells.get("item_tax_percent"):
        percent = row.number("item_tax_percent")
        if percent < 0 or percent >= _MAX_VAT_PERCENT:
            raise _CellError(
                f"{row.where('item_tax_percent')}: "
                f"not a VAT rate in percent (0 to 99) {refused(cells['item_tax_percent'])}"
            )
        item["tax_percent"] = percent
    if negative:
        item["is_return_item"] = True
    return item


def _receipt_discount(
    group: _Group,
    items: list[dict[str, Any]],
    currency: str,
    mapping: CsvMapping,
    titles: dict[str, str],
) -> str | None:
    """Read the receipt-level discount once and spread it; return a problem sentence or None."""
    found: dict[int, int] = {}
    for line, cells in group.rows:
        if cells.get("receipt_discount_amount"):
            try:
                amount = abs(
                    _Row(line, cells, mapping, titles).amount("receipt_discount_amount", currency)
                )
            except _CellError as error:
                return str(error)
            found.setdefault(amount, line)
    if len(found) > 1:
        lines = " and ".join(f"line {line}" for line in found.values())
        return (
            f"column {titles['receipt_discount_amount']!r}: {lines} give different "
            "receipt-level discounts; write it on one row, or the same on every row"
        )
    if not found:
        return None
    (amount,) = found
    problem = spread_receipt_discount(items, amount)
    if problem:
        return f"line {group.first_line}, column {titles['receipt_discount_amount']!r}: {problem}"
    return None


def _parse_time(text: str, mapping: CsvMapping, source: CsvSource, line: int, title: str) -> str:
    try:
        if mapping.datetime_format:
            moment = datetime.strptime(text, mapping.datetime_format)  # noqa: DTZ007 - localised below
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        expected = mapping.datetime_format or "ISO-8601, e.g. 2026-01-31T14:05:00"
        raise _CellError(
            f"line {line}, column {title!r}: not a time in the format {expected} "
            f"{refused(text)}; check the columns and mapping.datetime_format"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=source.tz, fold=0)
    return moment.isoformat()


def _leading_sign(text: str) -> str:
    """`89,90-` (a trailing minus, as ERP exports write it) and `(89,90)` → `-89,90`."""
    cleaned = text.strip()
    if len(cleaned) > 1 and cleaned.endswith("-") and not cleaned.startswith("-"):
        return "-" + cleaned[:-1]
    if len(cleaned) > 2 and cleaned.startswith("(") and cleaned.endswith(")"):  # noqa: PLR2004
        return "-" + cleaned[1:-1]
    return text
