"""Property: generated store receipts written in each format parse back keeping every invariant.

The generator (`receipt_gen`) draws discounts at line and receipt level, several VAT rates,
tips, returns, cash rounding and split payments; each format's writer writes them as that
till would, and the parse + mapping must give back valid receipts (so every invariant of
`receipt_agent.invariants` holds) with the generated totals, øre for øre. Derandomized by
tests/conftest.py: the same examples on every run.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import orjson
from formats.receipt_gen import (
    GenReceipt,
    SaftDialect,
    receipts,
    to_dintero_json,
    to_saft,
    utc_offset,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipt_agent.config import DinteroJsonSource, SaftSource, SourceBase
from receipt_agent.formats import RawReceipt, get_parser
from receipt_agent.mapping import ValidReceipt, finish_receipt

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _source(format_name: str) -> SourceBase:
    settings_: dict[str, Any] = {
        "name": "gen", "path": "/tmp/spool", "format": format_name, "store": {"id": "sc029"},
        "timezone": "Europe/Oslo", "currency": "NOK",
    }  # fmt: skip
    model = SaftSource if format_name == "saft-cashregister" else DinteroJsonSource
    return model.model_validate(settings_)


def _sent(export: bytes, format_name: str) -> list[dict[str, Any]]:
    """Parse and map the export as the daemon would; every receipt must be valid."""
    source = _source(format_name)
    out = []
    for record in get_parser(format_name)(io.BytesIO(export), source):
        assert isinstance(record, RawReceipt), getattr(record, "errors", record)
        finished = finish_receipt(record, source)
        assert isinstance(finished, ValidReceipt), getattr(finished, "errors", finished)
        out.append(orjson.loads(finished.payload))
    return out


def _same_totals(generated: GenReceipt, sent: dict[str, Any]) -> None:
    assert sent["gross_amount"] == generated.gross
    assert sent["net_amount"] == generated.due
    assert sent["total_discount"] == generated.total_discount
    assert [p["amount"] for p in sent["payments"]] == [a for _, a in generated.payments]
    goods = [item for item in sent["items"] if item.get("description") != "Tips"]
    assert [item["net_amount"] for item in goods] == generated.line_nets()
    tips = [item["net_amount"] for item in sent["items"] if item.get("description") == "Tips"]
    assert tips == ([generated.tip] if generated.tip else [])
    assert all(item.get("is_return_item", False) is generated.is_return for item in goods)
    moment = datetime.fromisoformat(sent["purchase_at"])
    assert moment.utcoffset() == utc_offset(generated)
    assert moment.replace(tzinfo=None) == generated.when


@PROPERTY
@given(
    batch=st.lists(receipts(), min_size=1, max_size=3, unique_by=lambda r: r.number),
    dialect=st.builds(SaftDialect, st.booleans(), st.booleans()),
)
def test_saft_generated_receipts_keep_every_invariant(
    batch: list[GenReceipt], dialect: SaftDialect
) -> None:
    """SAF-T with member discounts, tips (raise), returns and rounding maps exactly, whether
    the vendor writes lineAmntIn before or after its discount, discounts signed or not."""
    sent = _sent(to_saft(batch, dialect=dialect), "saft-cashregister")
    assert len(sent) == len(batch)
    for generated, receipt in zip(batch, sent, strict=True):
        _same_totals(generated, receipt)


@PROPERTY
@given(
    batch=st.lists(receipts(), min_size=1, max_size=3, unique_by=lambda r: r.number),
    offset=st.booleans(),
)
def test_dintero_json_generated_receipts_keep_every_invariant(
    batch: list[GenReceipt], offset: bool
) -> None:
    """A till's own Dintero JSON (local times with or without offset) is sent as built."""
    sent = _sent(to_dintero_json(batch, offset=offset), "dintero-json")
    for generated, receipt in zip(batch, sent, strict=True):
        _same_totals(generated, receipt)
