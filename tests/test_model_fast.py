"""Tests of model_fast.py: the hot-path validator gives exactly what `model.Receipt` gives."""

from __future__ import annotations

import copy
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator, core_schema

from receipt_agent import model_fast
from receipt_agent.model import Receipt

EXAMPLE = Path(__file__).parent / "data" / "dintero" / "example.post-receipts.request.json"

TRICKY: list[object] = [
    None, "", "  ", "\x1c", "\u3000 ", " a", "é", "12", 0, -1, 7, 2**70, 1.5, 12.0, -0.0,
    float("inf"), float("nan"), True, Decimal("1"), Decimal("1.50"), Decimal("NaN"),
    datetime(2026, 11, 20, 10, 15), datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
    datetime(2026, 11, 20, 10, 15, 1, 5, tzinfo=timezone(timedelta(hours=1))),
    date(2026, 11, 20), "2026-11-20T10:15:00", "2026-11-20 10:15:00Z", "2026-11-20t10:15+01:00",
    "2026-11-20T10:15:00.1234567+01:00", "1699335116", 1699335116, "2026-11-20",
    "\u0662\u0660\u0662\u0666-11-20T10:15:00+01:00", "2026-11-20T24:00:00Z", [], {}, b"R1",
]  # fmt: skip
FIELDS: list[tuple[str | int, ...]] = [
    ("receipt_id",), ("store", "id"), ("purchase_at",), ("transaction_date",),
    ("items", 0, "quantity"), ("items", 0, "tax_percent"), ("items", 0, "net_amount"),
    ("items", 0, "tax_lines", 0, "percentage"), ("no_of_items",), ("customer_id",),
]  # fmt: skip


def receipt() -> dict[str, Any]:
    return {
        "store": {"id": "sc029", "name": "Kafé"},
        "receipt_id": "R1",
        "purchase_at": "2026-11-20T10:15:00+01:00",
        "items": [
            {
                "id": "A1",
                "quantity": 1,
                "net_amount": 12500,
                "tax_percent": 25,
                "tax_lines": [{"amount": 2500, "percentage": 25, "tax_basis": 10000}],
            }
        ],
        "payments": [{"amount": 12500, "type_id": "CARD"}],
        "net_amount": 12500,
    }


def by_model(data: dict[str, Any]) -> tuple[dict[str, Any], bytes] | list[Any]:
    """What `model.Receipt` makes of `data`: its values and payload, or its errors."""
    try:
        valid = Receipt.model_validate(data)
    except ValidationError as error:
        return error.errors(include_url=False)
    return valid.model_dump(exclude_none=True), valid.model_dump_json(exclude_none=True).encode()


def by_fast(data: dict[str, Any]) -> tuple[dict[str, Any], bytes] | list[Any]:
    try:
        valid, payload = model_fast.validate(data)
    except ValidationError as error:
        return error.errors(include_url=False)
    return _without_none(valid), payload


def _without_none(value: Any) -> Any:
    """The fast values as `model_dump(exclude_none=True)` writes them: no None anywhere."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def test_model_fast_example_gives_the_model_payload_byte_for_byte() -> None:
    """Dintero's full example request (customer, discounts, card info) gives the same bytes."""
    for data in orjson.loads(EXAMPLE.read_bytes()):
        assert model_fast.validate(data)[1] == by_model(data)[1]  # type: ignore[index]


def test_model_fast_writes_fields_in_model_order_whatever_the_input_order() -> None:
    """A till that writes its keys in another order still sends the model's key order."""
    data = receipt()
    reordered = {key: data[key] for key in reversed(data)}
    assert model_fast.validate(reordered)[1] == by_model(data)[1]  # type: ignore[index]


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """The test receipt with `value` (a copy) at `path`."""
    data = receipt()
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return data


@pytest.mark.parametrize("path", FIELDS, ids=[".".join(map(str, path)) for path in FIELDS])
def test_model_fast_agrees_with_the_model_on_every_tricky_value(
    path: tuple[str | int, ...],
) -> None:
    """For each awkward value in each field with a fast schema: same values, bytes or errors."""
    for value in TRICKY:
        data = _with(path, value)
        assert repr(by_fast(data)) == repr(by_model(data)), (path, value)


def test_model_fast_never_accepts_what_the_model_refuses_without_asking_it() -> None:
    """Its own validator refuses every tricky value the model refuses (no fallback needed)."""
    for path in FIELDS:
        for value in TRICKY:
            data = _with(path, value)
            if isinstance(by_model(data), list):
                with pytest.raises(ValidationError):
                    model_fast._validator.validate_python(data)


def test_model_fast_blank_check_keeps_exactly_the_characters_strip_keeps() -> None:
    """Every character Python's `str.strip` removes is blank to the fast schema, and no other."""
    check = SchemaValidator(core_schema.str_schema(pattern=model_fast._STRIP_KEEPS))
    candidates = [
        character
        for character in map(chr, range(sys.maxunicode + 1))
        if ord(character) < 0x3100
        or character.isspace()
        or unicodedata.category(character) in {"Zs", "Zl", "Zp", "Cc", "Cf"}
    ]
    for character in candidates:
        if 0xD800 <= ord(character) <= 0xDFFF:
            continue  # a lone surrogate is no text a till can write
        try:
            check.validate_python(character)
            kept = True
        except ValidationError:
            kept = False
        assert kept == bool(character.strip()), hex(ord(character))


class _NoSerializer:
    """Stands in for pydantic's serialiser to show which receipts orjson writes alone."""

    def to_json(self, *_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("pydantic's serialiser was asked")


def test_model_fast_writes_a_plain_receipt_with_orjson_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain till receipt (texts with escapes and non-ASCII, floats, UTC and offset times)
    is written without pydantic's serialiser, and its bytes are the model's."""
    monkeypatch.setattr(model_fast, "_serializer", _NoSerializer())
    for purchase_at in (
        "2026-11-20T10:15:00+01:00",
        "2026-11-20 10:15:00.5Z",
        "0999-01-02T03:04-09:30",
    ):
        data = receipt()
        data["purchase_at"] = purchase_at
        data["transaction_date"] = "2026-11-20T09:15:00.000001+00:00"
        data["store"]["name"] = 'Kafé "Ø" \\ \n\t\x00\x1f\x7f\u2028 ☕ 𝄞'
        data["items"][0]["quantity"] = 0.1 + 0.2
        data["items"][0]["tax_lines"][0]["percentage"] = 12.5
        data["no_of_items"] = 1e16
        assert model_fast.validate(data)[1] == by_model(data)[1]  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("transaction_date",), None),
        (("items", 0, "description"), None),
        (("gross_amount",), 2**64),
        (("purchase_at",), datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        (("customer",), {"first_name": "Kari", "metadata": {"n": None, "d": 1.5}}),
    ],
    ids=["none-top", "none-item", "past-64-bits", "datetime-utc", "customer"],
)
def test_model_fast_leaves_what_orjson_may_write_otherwise_to_pydantic(
    monkeypatch: pytest.MonkeyPatch, path: tuple[str | int, ...], value: object
) -> None:
    """A None to leave out, a number past 64 bits, a datetime handed in by a parser and a
    customer go to pydantic's serialiser (and the bytes are the model's)."""
    data = _with(path, value)
    expected = by_model(data)[1]  # type: ignore[index]
    assert model_fast.validate(data)[1] == expected
    monkeypatch.setattr(model_fast, "_serializer", _NoSerializer())
    with pytest.raises(AssertionError, match="serialiser was asked"):
        model_fast.validate(data)
