"""Property: generated store receipts written as POSLog and CSV parse back keeping every invariant.

The receipts come from `receipt_gen` (line and receipt-level discounts, several VAT rates,
tips, returns, cash rounding, split payments); `receipt_writers` writes them in a drawn style
(POSLog: VAT basis / VAT-inclusive TaxableAmount / rate only, signed or magnitude Totals,
prefixed or default namespace; CSV: a return marked on the quantity, the amount or both, the
receipt discount on one row or every row). Parse + mapping must give valid receipts, so every
invariant of `finish_receipt` holds, with the generated totals øre for øre. Derandomized by
tests/conftest.py: the same examples on every run.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import orjson
from formats.receipt_gen import GenReceipt, receipts, utc_offset
from formats.receipt_writers import (
    CSV_COLUMNS,
    CsvStyle,
    PoslogStyle,
    csv_styles,
    poslog_styles,
    to_csv,
    to_poslog,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipt_agent.config import CsvSource, PoslogSource, SourceBase
from receipt_agent.formats import RawReceipt, get_parser
from receipt_agent.mapping import ValidReceipt, finish_receipt

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMMON = {"name": "gen", "path": "/tmp/spool", "store": {"id": "sc029"}, "currency": "NOK"}


def _sent(export: bytes, source: SourceBase) -> list[dict[str, Any]]:
    """Parse and map the export as the daemon would; every receipt must be valid."""
    out = []
    for record in get_parser(source.format)(io.BytesIO(export), source):
        assert isinstance(record, RawReceipt), getattr(record, "errors", record)
        finished = finish_receipt(record, source)
        assert isinstance(finished, ValidReceipt), getattr(finished, "errors", finished)
        out.append(orjson.loads(finished.payload))
    return out


def _same_receipt(generated: GenReceipt, sent: dict[str, Any]) -> None:
    """The sent receipt has the generated totals, lines, payments and time, øre for øre."""
    assert sent["gross_amount"] == generated.gross
    assert sent["net_amount"] == generated.due
    assert sent.get("total_discount", 0) == generated.total_discount
    assert [p["amount"] for p in sent["payments"]] == [a for _, a in generated.payments]
    assert [p["token_type"] for p in sent["payments"]] == [k for k, _ in generated.payments]
    goods = [item for item in sent["items"] if item.get("description") != "Tips"]
    assert [item["net_amount"] for item in goods] == generated.line_nets()
    assert [item["gross_amount"] for item in goods] == [line.amount for line in generated.lines]
    assert [item["quantity"] for item in goods] == [line.quantity for line in generated.lines]
    tips = [item["net_amount"] for item in sent["items"] if item.get("description") == "Tips"]
    assert tips == ([generated.tip] if generated.tip else [])
    assert all(item.get("is_return_item", False) is generated.is_return for item in goods)
    for item, line in zip(goods, generated.lines, strict=True):
        (tax,) = item["tax_lines"]
        assert tax["percentage"] == line.vat
        assert tax["amount"] + tax["tax_basis"] == item["net_amount"]
    moment = datetime.fromisoformat(sent["purchase_at"])
    assert moment.utcoffset() == utc_offset(generated)
    assert moment.replace(tzinfo=None) == generated.when


_batches = st.lists(receipts(), min_size=1, max_size=3, unique_by=lambda r: r.number)


@PROPERTY
@given(batch=_batches, style=poslog_styles)
def test_poslog_generated_receipts_keep_every_invariant(
    batch: list[GenReceipt], style: PoslogStyle
) -> None:
    """POSLog with member discounts, tips, returns (either Total spelling) and rounding maps."""
    source = PoslogSource.model_validate({**COMMON, "format": "poslog"})
    sent = _sent(to_poslog(batch, style), source)
    assert [receipt["receipt_id"] for receipt in sent] == [f"sc029-1-{r.number}" for r in batch]
    for generated, receipt in zip(batch, sent, strict=True):
        _same_receipt(generated, receipt)


_no_rounding = st.lists(
    receipts().filter(lambda receipt: receipt.rounding == 0),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r.number,
)


@PROPERTY
@given(batch=_no_rounding, style=csv_styles)
def test_csv_generated_receipts_keep_every_invariant(
    batch: list[GenReceipt], style: CsvStyle
) -> None:
    """CSV with line and receipt discounts, tips and returns (any minus sign) maps exactly."""
    source = CsvSource.model_validate(
        {
            **COMMON,
            "format": "csv",
            "mapping": {
                "delimiter": ";",
                "decimal_separator": ",",
                "datetime_format": "%d.%m.%Y %H:%M:%S",
                "payment_types": {"Kort": "CARD"},
                "columns": CSV_COLUMNS,
            },
        }
    )
    sent = _sent(to_csv(batch, style), source)
    assert [receipt["receipt_id"] for receipt in sent] == [f"sc029-{r.number}" for r in batch]
    for generated, receipt in zip(batch, sent, strict=True):
        _same_receipt(generated, receipt)
