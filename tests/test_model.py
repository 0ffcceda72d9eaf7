"""Tests of model.py: the Dintero receipt wire shape and its constraints (API-NOTES §1.3)."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from receipt_agent import model
from receipt_agent.model import Receipt
from receipt_agent.sandbox.schema import load_schema

EXAMPLE = Path(__file__).parent / "data" / "dintero" / "example.post-receipts.request.json"


def minimal(**fields: Any) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "store": {"id": "sc029"},
        "receipt_id": "714118",
        "purchase_at": "2021-03-30T10:40:00+01:00",
    }
    receipt.update(fields)
    return receipt


def example() -> dict[str, Any]:
    receipts = orjson.loads(EXAMPLE.read_bytes())
    assert isinstance(receipts, list)
    return dict(receipts[0])


def error_locations(data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Receipt.model_validate(data)
    return [(tuple(error["loc"]), error["msg"]) for error in caught.value.errors()]


def dumped(data: dict[str, Any]) -> dict[str, Any]:
    return Receipt.model_validate(data).model_dump(mode="json", exclude_none=True)


# --- the documented example ---------------------------------------------------------------


def test_model_documented_example_validates_and_round_trips_unchanged() -> None:
    """Dintero's own example request body is accepted and sent back out byte-for-byte equal."""
    data = example()
    assert dumped(data) == data


def test_model_minimal_receipt_serialises_only_given_fields() -> None:
    """A receipt with only the three required fields is sent with exactly those fields."""
    assert dumped(minimal()) == minimal()


@pytest.mark.parametrize("field", ["store", "receipt_id", "purchase_at"])
def test_model_without_required_field_is_rejected(field: str) -> None:
    """A receipt missing store, receipt_id or purchase_at is refused, naming the field."""
    data = minimal()
    del data[field]
    assert ((field,), "Field required") in error_locations(data)


def test_model_store_without_id_is_rejected() -> None:
    """A store without an id is refused at store.id."""
    assert [loc for loc, _ in error_locations(minimal(store={"name": "SC Oslo"}))] == [
        ("store", "id")
    ]


# --- identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize("receipt_id", ["", "   "])
def test_model_empty_receipt_id_is_rejected(receipt_id: str) -> None:
    """An empty or blank receipt_id is refused (the spec requires a non-empty value)."""
    assert [loc for loc, _ in error_locations(minimal(receipt_id=receipt_id))] == [("receipt_id",)]


def test_model_numeric_receipt_id_is_rejected() -> None:
    """A receipt_id written as a JSON number is refused: the spec says string."""
    assert [loc for loc, _ in error_locations(minimal(receipt_id=714118))] == [("receipt_id",)]


def test_model_customer_id_of_255_characters_is_accepted() -> None:
    """A customer_id of exactly 255 characters is sent as it is."""
    assert dumped(minimal(customer_id="c" * 255))["customer_id"] == "c" * 255


@pytest.mark.parametrize("customer_id", ["c" * 256, " C13db4f63", "C13db4f63 ", "C13db4f63\t"])
def test_model_customer_id_too_long_or_padded_is_rejected(customer_id: str) -> None:
    """A customer_id over 255 characters or with leading/trailing spaces is refused."""
    assert [loc for loc, _ in error_locations(minimal(customer_id=customer_id))] == [
        ("customer_id",)
    ]


@pytest.mark.parametrize("currency", ["nok", "NO", "NOKK", "N0K", ""])
def test_model_currency_not_three_uppercase_letters_is_rejected(currency: str) -> None:
    """A currency that is not three upper-case letters is refused."""
    assert [loc for loc, _ in error_locations(minimal(currency=currency))] == [("currency",)]


@pytest.mark.parametrize("mcc", ["581", "58140", "abcd"])
def test_model_store_mcc_not_four_digits_is_rejected(mcc: str) -> None:
    """A store mcc that is not a four-digit ISO 18245 code is refused."""
    data = minimal(store={"id": "sc029", "mcc": mcc})
    assert [loc for loc, _ in error_locations(data)] == [("store", "mcc")]


# --- enums ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    ["None", "Voided", "Posted", "Concluded", "Cancelled", "OnHold", "Training", "Reprinted"],
)
def test_model_entry_status_from_the_spec_is_accepted(status: str) -> None:
    """Every entry_status the spec lists, Reprinted included, is sent as given."""
    assert dumped(minimal(entry_status=status))["entry_status"] == status


@pytest.mark.parametrize("status", ["none", "Refunded", "", "Reprint"])
def test_model_unknown_entry_status_is_rejected(status: str) -> None:
    """An entry_status outside the spec's enum (case matters) is refused."""
    assert [loc for loc, _ in error_locations(minimal(entry_status=status))] == [("entry_status",)]


def test_model_unknown_discount_type_is_rejected() -> None:
    """A discount line with a discount_type outside the enum is refused at its path."""
    data = minimal(items=[{"discount_lines": [{"amount": 100, "discount_type": "coupon"}]}])
    assert [loc for loc, _ in error_locations(data)] == [
        ("items", 0, "discount_lines", 0, "discount_type")
    ]


def test_model_unknown_extra_info_value_type_is_rejected() -> None:
    """An extra_info entry with a value_type outside the enum is refused."""
    data = minimal(extra_info=[{"key": "k", "value": "1", "value_type": "decimal"}])
    assert [loc for loc, _ in error_locations(data)] == [("extra_info", 0, "value_type")]


def test_model_unknown_customer_type_is_rejected() -> None:
    """A customer type outside customer/company/contact/employee/other is refused."""
    data = minimal(customer={"type": "vip"})
    assert [loc for loc, _ in error_locations(data)] == [("customer", "type")]


# --- phone numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["+4799999999", "4799999999", "+12"])
def test_model_e164_phone_numbers_are_accepted(phone: str) -> None:
    """Customer and delivery phone numbers in E.164 form are sent as given."""
    out = dumped(minimal(customer={"phone_number": phone}, delivery={"phone_number": phone}))
    assert out["customer"]["phone_number"] == phone
    assert out["delivery"]["phone_number"] == phone


@pytest.mark.parametrize("phone", ["+47 999 99 999", "004799999999", "+0123", "+1", "99-99"])
def test_model_non_e164_phone_numbers_are_rejected(phone: str) -> None:
    """Customer and delivery phone numbers that break the E.164 pattern are refused."""
    data = minimal(customer={"phone_number": phone}, delivery={"phone_number": phone})
    assert sorted(loc for loc, _ in error_locations(data)) == [
        ("customer", "phone_number"),
        ("delivery", "phone_number"),
    ]


# --- amounts and numbers --------------------------------------------------------------------


AMOUNT_PATHS = [
    ("gross_amount",),
    ("total_bonus",),
    ("items", 0, "net_amount"),
    ("items", 0, "tax_lines", 0, "amount"),
    ("payments", 0, "amount"),
    ("payments", 0, "card_info", "card_amount"),
]


def with_value(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data = minimal(items=[{"tax_lines": [{}]}], payments=[{"card_info": {}}])
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize("path", AMOUNT_PATHS)
@pytest.mark.parametrize("value", [12, -12, 0])
def test_model_integer_amount_is_accepted(path: tuple[str | int, ...], value: int) -> None:
    """An amount written as a JSON integer (minor units, signed) is sent unchanged."""
    out: Any = dumped(with_value(path, value))
    for part in path:
        out = out[part]
    assert out == value
    assert type(out) is int


@pytest.mark.parametrize("path", AMOUNT_PATHS)
@pytest.mark.parametrize("value", [12.5, 12.0, "12", True, [12]])
def test_model_non_integer_amount_is_rejected(path: tuple[str | int, ...], value: Any) -> None:
    """An amount written as 12.5, 12.0, "12" or true is refused: amounts are integer øre."""
    # 12.0 is refused on purpose: a float in a minor-unit field usually means the till
    # wrote kroner, and reading it as 12 øre would hide that.
    assert [loc for loc, _ in error_locations(with_value(path, value))] == [path]


@pytest.mark.parametrize("quantity", [2, 0.42, -1, 1.5])
def test_model_quantity_keeps_json_number_type(quantity: float) -> None:
    """A quantity is sent as the number it was: 2 stays 2, 0.42 stays 0.42."""
    out = dumped(minimal(items=[{"quantity": quantity}]))["items"][0]["quantity"]
    assert out == quantity
    assert type(out) is type(quantity)


@pytest.mark.parametrize(("value", "expected"), [(Decimal("2.000"), 2), (Decimal("0.42"), 0.42)])
def test_model_decimal_quantity_from_a_parser_becomes_a_json_number(
    value: Decimal, expected: float
) -> None:
    """A parser's Decimal quantity is sent as a JSON int when whole, else as a number."""
    out = dumped(minimal(items=[{"quantity": value}]))["items"][0]["quantity"]
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize("value", ["2", True, float("nan"), float("inf"), [2]])
def test_model_non_number_quantity_is_rejected(value: Any) -> None:
    """A quantity written as text, a boolean, NaN or infinity is refused."""
    assert [loc for loc, _ in error_locations(minimal(items=[{"quantity": value}]))] == [
        ("items", 0, "quantity")
    ]


def test_model_tax_percent_as_text_reports_a_number_error() -> None:
    """A tax_percent written as text is refused with "Input should be a valid number"."""
    assert error_locations(minimal(items=[{}, {}, {"tax_percent": "25"}])) == [
        (("items", 2, "tax_percent"), "Input should be a valid number")
    ]


@pytest.mark.parametrize("value", ["59800,01", "abc", "", "1.", 59800])
def test_model_dwh_field_not_decimal_text_is_rejected(value: Any) -> None:
    """A *_dwh field that is not a decimal number written as text is refused."""
    assert [loc for loc, _ in error_locations(minimal(gross_amount_dwh=value))] == [
        ("gross_amount_dwh",)
    ]


# --- strict strings and booleans ------------------------------------------------------------


def test_model_numeric_item_id_is_rejected() -> None:
    """An item id written as a JSON number is refused: ids are strings."""
    assert [loc for loc, _ in error_locations(minimal(items=[{"id": 175938}]))] == [
        ("items", 0, "id")
    ]


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_model_non_boolean_flag_is_rejected(value: Any) -> None:
    """A flag written as "true", 1 or "yes" is refused: flags are JSON booleans."""
    assert [loc for loc, _ in error_locations(minimal(items=[{"voided": value}]))] == [
        ("items", 0, "voided")
    ]


# --- date-times -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2021-03-30T10:40:00+01:00",
        "2023-11-07T05:31:56Z",
        "2021-03-30T10:40:00.250000-05:00",
    ],
)
def test_model_purchase_at_keeps_its_offset_when_serialised(value: str) -> None:
    """purchase_at is sent with the offset it came with (+01:00 stays +01:00, UTC stays Z)."""
    assert dumped(minimal(purchase_at=value))["purchase_at"] == value


def test_model_purchase_at_as_aware_datetime_serialises_with_zone_offset() -> None:
    """A parser's zone-aware datetime is sent with that zone's offset on that day."""
    summer = datetime(2021, 6, 1, 10, 40, tzinfo=ZoneInfo("Europe/Oslo"))
    winter = datetime(2021, 1, 5, 10, 40, tzinfo=ZoneInfo("Europe/Oslo"))
    assert dumped(minimal(purchase_at=summer))["purchase_at"] == "2021-06-01T10:40:00+02:00"
    assert dumped(minimal(purchase_at=winter))["purchase_at"] == "2021-01-05T10:40:00+01:00"


@pytest.mark.parametrize(
    "value",
    [
        "2021-03-30T10:40:00",
        datetime(2021, 3, 30, 10, 40),  # the naive input under test
        "2021-03-30",
        1617097200,
        "1617097200",
        "30.03.2021 10:40",
        "",
    ],
)
def test_model_purchase_at_without_offset_is_rejected(value: Any) -> None:
    """A purchase_at without an offset, or not ISO-8601 at all, is refused, never guessed."""
    assert [loc for loc, _ in error_locations(minimal(purchase_at=value))] == [("purchase_at",)]


def test_model_transaction_date_without_offset_is_rejected() -> None:
    """transaction_date follows the same rule as purchase_at: an offset is required."""
    data = minimal(transaction_date="2021-03-30T10:40:00")
    assert [loc for loc, _ in error_locations(data)] == [("transaction_date",)]


@pytest.mark.parametrize(("value", "ok"), [("1990-09-20", True), ("20.09.1990", False)])
def test_model_customer_date_of_birth_must_be_iso_date(value: str, ok: bool) -> None:
    """A customer's date_of_birth is accepted as YYYY-MM-DD only."""
    data = minimal(customer={"date_of_birth": value})
    if ok:
        assert dumped(data)["customer"]["date_of_birth"] == value
    else:
        assert [loc for loc, _ in error_locations(data)] == [("customer", "date_of_birth")]


# --- unknown fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (minimal(grossAmount=100), ("grossAmount",)),
        (minimal(items=[{"colour": "red"}]), ("items", 0, "colour")),
        (minimal(store={"id": "sc029", "adress": {}}), ("store", "adress")),
        (minimal(id="3c90c3cc-0d44-4b50-8888-8dd25736052a"), ("id",)),
        (minimal(payments=[{"card_info": {"pan": "x"}}]), ("payments", 0, "card_info", "pan")),
    ],
)
def test_model_unknown_field_is_rejected_at_its_path(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    """A misspelt or server-only key is a field error at its path, never silently sent."""
    assert [found for found, _ in error_locations(data)] == [loc]


def test_model_company_uses_the_specs_bussiness_name_spelling() -> None:
    """The company name is sent as bussiness_name (sic); the correct spelling is refused."""
    good = minimal(customer={"type": "company", "company": {"bussiness_name": "TKP tech AS"}})
    assert dumped(good)["customer"]["company"] == {"bussiness_name": "TKP tech AS"}
    bad = minimal(customer={"type": "company", "company": {"business_name": "TKP tech AS"}})
    assert sorted(loc for loc, _ in error_locations(bad)) == [
        ("customer", "company", "business_name"),
        ("customer", "company", "bussiness_name"),
    ]


def test_model_enrolled_by_requires_value_and_accepts_any_type() -> None:
    """enrolled_by needs a value; its type is free text since 2024-04-01."""
    assert dumped(minimal(customer={"enrolled_by": {"type": "qr_code", "value": "x"}}))
    data = minimal(customer={"enrolled_by": {"type": "url"}})
    assert [loc for loc, _ in error_locations(data)] == [("customer", "enrolled_by", "value")]


# --- discounts (permissive rule, strict refs) ------------------------------------------------


def test_model_discount_rule_requires_requirement_and_reward() -> None:
    """A discounts[] entry without requirement or reward is refused at both paths."""
    locs = [loc for loc, _ in error_locations(minimal(discounts=[{"name": "Spar 100,-"}]))]
    assert sorted(locs) == [("discounts", 0, "requirement"), ("discounts", 0, "reward")]


def test_model_discount_rule_requirement_needs_purchase_window() -> None:
    """A discount requirement without purchase_from/purchase_to is refused."""
    data = minimal(
        discounts=[{"requirement": {}, "reward": {"type": "discount_amount", "value": 1}}]
    )
    assert sorted(loc for loc, _ in error_locations(data)) == [
        ("discounts", 0, "requirement", "purchase_from"),
        ("discounts", 0, "requirement", "purchase_to"),
    ]


def test_model_discount_rule_unknown_keys_pass_through_but_refs_are_strict() -> None:
    """Keys Dintero's discount rule may add are forwarded; an unknown key in refs is refused."""
    rule = copy.deepcopy(example()["discounts"][0])
    rule["requirement"]["future_filter"] = ["x"]
    rule["created_by"] = "1c92f7e1-2897-4d46-bdcc-c127a914fb4e"
    out = dumped(minimal(discounts=[rule]))["discounts"][0]
    assert out["requirement"]["future_filter"] == ["x"]
    assert out["created_by"] == rule["created_by"]
    rule["refs"][0]["amout"] = 1
    assert [loc for loc, _ in error_locations(minimal(discounts=[rule]))] == [
        ("discounts", 0, "refs", 0, "amout")
    ]


def test_model_discount_reward_type_outside_enum_is_rejected() -> None:
    """A reward type that is not one of the spec's seven is refused."""
    rule = copy.deepcopy(example()["discounts"][0])
    rule["reward"]["type"] = "free_coffee"
    assert [loc for loc, _ in error_locations(minimal(discounts=[rule]))] == [
        ("discounts", 0, "reward", "type")
    ]


# --- personal data stays out of errors ------------------------------------------------------


def test_model_validation_error_text_never_repeats_the_input() -> None:
    """A refused receipt's error text names fields, never the personal data that was in them."""
    data = minimal(
        customer_id=" CANARY-ID ",
        customer={"phone_number": "CANARY-PHONE", "first_name": 42, "email": ["CANARY-MAIL"]},
        delivery={"phone_number": "CANARY-PHONE-2"},
    )
    with pytest.raises(ValidationError) as caught:
        Receipt.model_validate(data)
    text = str(caught.value)
    assert "customer.phone_number" in text
    assert "CANARY" not in text


# --- drift against the sandbox's independent schema ------------------------------------------


def test_model_fields_match_the_sandbox_receipt_schema() -> None:
    """The fields we send and the fields the sandbox checks are the same set, object by object."""
    schema = load_schema()
    assert set(schema["properties"]) == set(Receipt.model_fields)
    strict_defs = {
        name: definition
        for name, definition in schema["$defs"].items()
        if definition.get("additionalProperties") is False
    }
    assert len(strict_defs) >= 10
    for name, definition in strict_defs.items():
        assert set(definition["properties"]) == set(getattr(model, name).model_fields), name
        required = {
            field for field, info in getattr(model, name).model_fields.items() if info.is_required()
        }
        assert set(definition.get("required", [])) == required, name
