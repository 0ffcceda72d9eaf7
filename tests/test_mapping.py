"""Tests of mapping.py: store defaults, currency, receipt_id_format, field errors, totals."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from receipt_agent import mapping, totals
from receipt_agent.config import DinteroJsonSource, SourceBase
from receipt_agent.formats import InvalidRecord, RawReceipt
from receipt_agent.mapping import ValidReceipt, finish_receipt

EXAMPLE = Path(__file__).parent / "data" / "dintero" / "example.post-receipts.request.json"

# formats.md §1.3: the SAF-T worked example (transaction 1001), in Dintero's shape.
SAFT_1001: dict[str, Any] = {
    "store": {"id": "frogner", "name": "Location A: Shop Frogner"},
    "receipt_id": "frogner-11.222-33.44.567-1001",
    "purchase_at": "2020-01-01T09:15:00+01:00",
    "currency": "NOK",
    "gross_amount": 29540,
    "net_amount": 29540,
    "items": [
        {"line_id": 1, "quantity": 1, "gross_amount": 11600, "net_amount": 11600},
        {"line_id": 2, "quantity": 6, "gross_amount": 17940, "net_amount": 17940},
    ],
    "payments": [{"line_id": 1, "amount": 29500, "type_id": "CASH"}],
    "extra_info": [{"key": "saft.rounding", "value": "-0.40", "value_type": "number"}],
    "_register_id": "11.222-33.44.567",
    "_number": "1001",
    "_rounding": -40,
}


def make_source(tmp_path: Path, **overrides: Any) -> SourceBase:
    settings: dict[str, Any] = {
        "name": "till-1",
        "path": tmp_path,
        "format": "dintero-json",
        "store": {
            "id": "sc029",
            "name": "SC Oslo",
            "business_name": "SC Oslo AS",
            "address": {"address_line": "Gate 1", "postal_place": "Oslo", "country": "NO"},
        },
        "currency": "NOK",
    }
    settings.update(overrides)
    return DinteroJsonSource.model_validate(settings)


def raw(location: str = "[0]", **fields: Any) -> RawReceipt:
    data: dict[str, Any] = {
        "store": {"id": "sc029"},
        "receipt_id": "714118",
        "purchase_at": "2021-03-30T10:40:00+01:00",
    }
    data.update(fields)
    return RawReceipt(data=data, location=location)


def valid(result: ValidReceipt | InvalidRecord) -> dict[str, Any]:
    assert isinstance(result, ValidReceipt), getattr(result, "errors", result)
    sent = orjson.loads(result.payload)
    assert isinstance(sent, dict)
    return sent


def invalid(result: ValidReceipt | InvalidRecord) -> InvalidRecord:
    assert isinstance(result, InvalidRecord), result
    return result


# --- valid receipts and the payload ---------------------------------------------------------


def _example_that_adds_up() -> dict[str, Any]:
    """Dintero's example receipt with its amounts made consistent (every field kept).

    The documented numbers are generated and contradict each other (formats.md §0.6): one
    item of 398.00 with a 44.00 discount, 25 % VAT included, paid in one payment.
    """
    data = orjson.loads(EXAMPLE.read_bytes())[0]
    (item,) = data["items"]
    item.update(gross_amount=39800, net_amount=35400)
    tax = {"amount": 7080, "tax_basis": 28320}
    item["tax_lines"][0].update(tax)
    data["tax_lines"][0].update(tax)
    data.update(gross_amount=39800, net_amount=35400, total_discount=4400, amount_due=35400)
    data["payments"][0]["amount"] = 35400
    return data


def test_finish_receipt_documented_example_breaks_the_invariants(tmp_path: Path) -> None:
    """Dintero's example as documented does not add up: it is rejected, naming each invariant."""
    data = orjson.loads(EXAMPLE.read_bytes())[0]
    result = invalid(finish_receipt(RawReceipt(data=data, location="[0]"), make_source(tmp_path)))
    assert result.errors == [
        "invariant Σ items.gross_amount = gross_amount is broken: the 1 items sum to 39800 "
        "but gross_amount is 59800 (difference 20000)",
        "invariant Σ items.net_amount = net_amount is broken: the 1 items sum to 27840 "
        "but net_amount is 47840 (difference 20000)",
        "items[0]: invariant tax amount + tax_basis = net_amount is broken: the tax lines add "
        "up to 33504 but net_amount is 27840 (difference -5664, at most 1 allowed for rounding)",
        "invariant tax amount + tax_basis = net_amount is broken for the receipt: its tax lines "
        "add up to 33504 but the items they cover have net_amount 27840 (difference -5664, at "
        "most 1 allowed for rounding)",
        "invariant Σ payments = amount due ± rounding is broken: the payments sum to 123 = 123 "
        "but amount_due 2050 = 2050 (difference -1927, at most 50 allowed by round_off_to_coin "
        "100)",
        "invariant gross_amount − net_amount = total_discount is broken: 59800 − 47840 = 11960 "
        "but total_discount is 0",
    ]


def test_finish_receipt_documented_example_sends_it_unchanged(tmp_path: Path) -> None:
    """Dintero's example receipt, complete and adding up, is sent exactly as given."""
    data = _example_that_adds_up()
    source = make_source(tmp_path, store={"id": "sc029", "name": "Not used"})
    result = finish_receipt(RawReceipt(data=copy.deepcopy(data), location="[0]"), source)
    assert valid(result) == data
    assert isinstance(result, ValidReceipt)
    assert (result.store_id, result.receipt_id, result.location) == ("sc029", "714118", "[0]")


def test_finish_receipt_payload_is_compact_json_ready_for_a_batch_array(tmp_path: Path) -> None:
    """Payloads joined with commas inside brackets form the exact JSON array that is POSTed."""
    source = make_source(tmp_path)
    results = [finish_receipt(raw(receipt_id=str(n)), source) for n in range(3)]
    payloads = [result.payload for result in results if isinstance(result, ValidReceipt)]
    assert len(payloads) == 3
    assert all(payload == orjson.dumps(orjson.loads(payload)) for payload in payloads)
    assert all(b": " not in payload and b"\n" not in payload for payload in payloads)
    batch = orjson.loads(b"[" + b",".join(payloads) + b"]")
    assert [receipt["receipt_id"] for receipt in batch] == ["0", "1", "2"]


def test_finish_receipt_keeps_purchase_at_offset_in_payload(tmp_path: Path) -> None:
    """purchase_at leaves the agent with the offset the export gave it."""
    result = finish_receipt(raw(purchase_at="2021-03-30T10:40:00+01:00"), make_source(tmp_path))
    assert b'"purchase_at":"2021-03-30T10:40:00+01:00"' in getattr(result, "payload", b"")


def test_finish_receipt_does_not_change_the_raw_record(tmp_path: Path) -> None:
    """Mapping leaves the parser's record as it was (it is pure)."""
    record = raw(store={"id": "sc029", "address": {"postal_code": "0150"}}, _number="7")
    before = copy.deepcopy(record.data)
    finish_receipt(record, make_source(tmp_path, receipt_id_format="{store_id}-{number}"))
    assert record.data == before


# --- store defaults and currency ------------------------------------------------------------


def test_finish_receipt_merges_store_defaults_under_receipt_values(tmp_path: Path) -> None:
    """The source's store name and address fill gaps; the receipt's own values win."""
    record = raw(
        store={
            "id": "sc029",
            "name": "SC Oslo Sentrum",
            "terminal_id": "T0292",
            "address": {"postal_code": "0150", "address_line": "Torget 2"},
        }
    )
    store = valid(finish_receipt(record, make_source(tmp_path)))["store"]
    assert store == {
        "id": "sc029",
        "name": "SC Oslo Sentrum",
        "business_name": "SC Oslo AS",
        "terminal_id": "T0292",
        "address": {
            "address_line": "Torget 2",
            "postal_code": "0150",
            "postal_place": "Oslo",
            "country": "NO",
        },
    }


def test_finish_receipt_without_store_gets_the_source_store(tmp_path: Path) -> None:
    """A receipt with no store at all is sent with the source's configured store."""
    record = raw()
    del record.data["store"]
    store = valid(finish_receipt(record, make_source(tmp_path)))["store"]
    assert store["id"] == "sc029"
    assert store["name"] == "SC Oslo"


def test_finish_receipt_store_without_id_gets_the_source_store_id(tmp_path: Path) -> None:
    """A receipt whose store has no id is sent under the source's store id."""
    result = finish_receipt(raw(store={"terminal_id": "T1"}), make_source(tmp_path))
    assert valid(result)["store"]["id"] == "sc029"
    assert isinstance(result, ValidReceipt)
    assert result.store_id == "sc029"


def test_finish_receipt_for_another_store_borrows_no_defaults(tmp_path: Path) -> None:
    """A receipt for a different store id never gets the source store's name or address."""
    result = finish_receipt(raw(store={"id": "frogner"}), make_source(tmp_path))
    assert valid(result)["store"] == {"id": "frogner"}


def test_finish_receipt_sets_currency_only_when_absent(tmp_path: Path) -> None:
    """The source's currency fills a missing currency; the receipt's own currency is kept."""
    source = make_source(tmp_path, currency="SEK")
    assert valid(finish_receipt(raw(), source))["currency"] == "SEK"
    assert valid(finish_receipt(raw(currency="EUR"), source))["currency"] == "EUR"


# --- receipt_id_format ----------------------------------------------------------------------


def test_finish_receipt_applies_receipt_id_format_from_private_keys(tmp_path: Path) -> None:
    """receipt_id_format builds the id from store, register and number; those keys stay home."""
    source = make_source(tmp_path, receipt_id_format="{store_id}-{register_id}-{number}")
    result = finish_receipt(raw(_register_id=3, _number="1001"), source)
    sent = valid(result)
    assert sent["receipt_id"] == "sc029-3-1001"
    assert not [key for key in sent if key.startswith("_")]
    assert isinstance(result, ValidReceipt)
    assert result.receipt_id == "sc029-3-1001"


def test_finish_receipt_id_format_falls_back_to_terminal_and_receipt_id(tmp_path: Path) -> None:
    """Without private keys, {register_id} is store.terminal_id and {number} the receipt_id."""
    source = make_source(tmp_path, receipt_id_format="{store_id}-{register_id}-{number}")
    record = raw(store={"id": "sc029", "terminal_id": "T0292"}, receipt_id="714118")
    assert valid(finish_receipt(record, source))["receipt_id"] == "sc029-T0292-714118"


def test_finish_receipt_id_format_without_a_value_rejects_the_receipt(tmp_path: Path) -> None:
    """A placeholder the export cannot fill rejects the receipt with a sentence naming it."""
    source = make_source(tmp_path, receipt_id_format="{store_id}-{register_id}-{number}")
    record = invalid(finish_receipt(raw(), source))
    assert record.errors == [
        "receipt_id_format: this receipt has no value for {register_id}; the export does not "
        "provide it, so remove it from receipt_id_format"
    ]


@pytest.mark.parametrize(
    ("template", "error"),
    # Unknown placeholders and broken braces are refused by the config already
    # (test_config); this is mapping's own defence for what only formatting reveals.
    [("{number:>x}", "not a valid format string")],
)
def test_finish_receipt_bad_receipt_id_format_rejects_with_reason(
    tmp_path: Path, template: str, error: str
) -> None:
    """A receipt_id_format with an unknown placeholder or bad braces says so per receipt."""
    record = invalid(finish_receipt(raw(), make_source(tmp_path, receipt_id_format=template)))
    assert len(record.errors) == 1
    assert record.errors[0].startswith("receipt_id_format: ")
    assert error in record.errors[0]


def test_finish_receipt_unknown_private_key_is_an_unknown_field(tmp_path: Path) -> None:
    """Only the documented private keys are dropped; another `_key` is a field error."""
    record = invalid(finish_receipt(raw(_register=3), make_source(tmp_path)))
    assert record.errors == [
        "_register: unknown field; Dintero's receipt has no such field, check its spelling"
    ]


# --- field errors ---------------------------------------------------------------------------


def test_finish_receipt_names_field_path_with_list_index(tmp_path: Path) -> None:
    """A bad line value is reported as items[2].tax_percent with pydantic's sentence."""
    record = invalid(
        finish_receipt(raw(items=[{}, {}, {"tax_percent": "25"}]), make_source(tmp_path))
    )
    assert record.errors == ["items[2].tax_percent: Input should be a valid number"]


def test_finish_receipt_collects_every_field_error(tmp_path: Path) -> None:
    """Every bad field of a receipt is reported, not just the first."""
    record = raw(
        items=[{"gross_amount": 12.5, "colour": "red"}],
        payments=[{}, {"amount": "100"}],
        purchase_at="2021-03-30T10:40:00",
    )
    assert invalid(finish_receipt(record, make_source(tmp_path))).errors == [
        "purchase_at: the date-time has no offset; write it with one, e.g. +01:00 or Z",
        "items[0].gross_amount: amounts are integers in minor units (øre), but this holds a "
        "decimal number, which looks like kroner; write 49.90 kr as 4990",
        "items[0].colour: unknown field; Dintero's receipt has no such field, check its spelling",
        "payments[1].amount: Input should be a valid integer",
    ]


def test_finish_receipt_missing_required_field_says_so(tmp_path: Path) -> None:
    """A receipt without purchase_at is rejected with "purchase_at: required field is missing"."""
    record = raw()
    del record.data["purchase_at"]
    assert invalid(finish_receipt(record, make_source(tmp_path))).errors == [
        "purchase_at: required field is missing"
    ]


def test_finish_receipt_invalid_receipt_keeps_its_identity_and_location(tmp_path: Path) -> None:
    """A rejected receipt is named by its store id, receipt id and place in the file."""
    record = invalid(finish_receipt(raw("line 7", gross_amount="1"), make_source(tmp_path)))
    assert (record.store_id, record.receipt_id, record.location) == ("sc029", "714118", "line 7")


def test_finish_receipt_invalid_receipt_without_ids_has_none(tmp_path: Path) -> None:
    """A rejected receipt with no usable receipt_id carries None, not a made-up id."""
    record = raw(receipt_id=["x"])
    result = invalid(finish_receipt(record, make_source(tmp_path)))
    assert result.receipt_id is None
    assert result.store_id == "sc029"


def test_finish_receipt_errors_never_contain_personal_data(tmp_path: Path) -> None:
    """Field errors name the field only, never the customer data that was in it."""
    record = raw(
        customer_id=" CANARY-ID ",
        customer={"phone_number": "CANARY 99", "email": 7, "first_name": ["CANARY-NAME"]},
        delivery={"phone_number": "CANARY-PHONE", "address": {"address_line": "CANARY"}},
        store="CANARY-STORE",
    )
    errors = invalid(finish_receipt(record, make_source(tmp_path))).errors
    assert len(errors) >= 6
    assert not [error for error in errors if "CANARY" in error]


def test_finish_receipt_saft_worked_example_sends_without_private_keys(tmp_path: Path) -> None:
    """The SAF-T example maps to a valid receipt and its private keys are not sent."""
    sent = valid(
        finish_receipt(RawReceipt(dict(SAFT_1001), "Transaction[1]"), make_source(tmp_path))
    )
    assert "_rounding" not in sent
    assert sent["receipt_id"] == "frogner-11.222-33.44.567-1001"


def test_mapping_check_totals_is_the_totals_module_function() -> None:
    """Parsers that import check_totals from mapping get the same cross-checks as from totals."""
    assert mapping.check_totals is totals.check_totals


def test_finish_receipt_kroner_amounts_get_one_sentence_naming_every_field(tmp_path: Path) -> None:
    """49.9 in five money fields: one sentence (integers of øre, looks like kroner), not five
    "Input should be a valid integer"; the value itself is never quoted."""
    kroner = 49.9
    record = raw(
        gross_amount=kroner, net_amount=kroner, payments=[{"amount": kroner}],
        items=[{"line_id": 1, "gross_amount": kroner, "net_amount": kroner}],
    )  # fmt: skip
    result = invalid(finish_receipt(record, make_source(tmp_path)))
    (sentence,) = result.errors
    fields, _, message = sentence.partition(": ")
    assert sorted(fields.split(", ")) == sorted(
        ["gross_amount", "net_amount", "payments[0].amount", "items[0].gross_amount",
         "items[0].net_amount"]
    )  # fmt: skip
    assert message == (
        "amounts are integers in minor units (øre), but these hold decimal numbers, which looks "
        "like kroner; write 49.90 kr as 4990"
    )
    assert "49.9," not in sentence
    assert "49.9 " not in sentence


def test_finish_receipt_a_decimal_line_id_is_not_called_kroner(tmp_path: Path) -> None:
    """Only money fields get the kroner sentence; a float line_id keeps the plain message."""
    result = invalid(finish_receipt(raw(items=[{"line_id": 1.5}]), make_source(tmp_path)))
    assert result.errors == ["items[0].line_id: Input should be a valid integer"]
