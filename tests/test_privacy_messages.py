"""Validation messages name the field and why, never what it held (CONTRACT §6).

Customer data lands in the wrong field (a CSV with shifted columns, a till that writes a
name into an amount); each parser and the receipt validation then refuse it. Their
messages reach the log, `queue list` and `.error.json`, so none may quote the value.
"""

from __future__ import annotations

import io
from typing import Literal

import orjson
import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError
from support import ACCOUNT, CLIENT_ID, SECRET, make_receipt

from receipt_agent.api import DinteroClient
from receipt_agent.config import CsvSource, DinteroConfig, DinteroJsonSource, PoslogSource
from receipt_agent.errors import ParseError, RemoteRejectedError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, get_parser
from receipt_agent.mapping import ValidReceipt, error_sentences, finish_receipt
from receipt_agent.money import AmountError, parse_decimal
from receipt_agent.refused import scrub, shape
from receipt_agent.sandbox import Sandbox

NAME, EMAIL, PHONE = "Ola Nordmann", "ola@example.com", "+47 998 87 766"
CANARIES = ("Ola", "Nordmann", "ola@", "example.com", "998", "87 766")


def _assert_clean(messages: list[str]) -> None:
    text = "\n".join(messages)
    assert text, "expected at least one message"
    for canary in CANARIES:
        assert canary not in text, (canary, text)


def _csv_source(**columns: str) -> CsvSource:
    return CsvSource.model_validate(
        {
            "name": "till-csv", "path": "/srv/pos/csv", "format": "csv",
            "store": {"id": "sc029"},
            "mapping": {
                "delimiter": ";", "decimal_separator": ",",
                "columns": {
                    "receipt_number": "Nr", "purchase_at": "Tid", "item_gross_amount": "Belop",
                    "currency": "Valuta", "item_tax_percent": "MVA", "item_quantity": "Antall",
                    "payment_amount": "Betalt", **columns,
                },
            },
        }
    )  # fmt: skip


def _errors(records: list[Record]) -> list[str]:
    return [
        error for record in records if isinstance(record, InvalidRecord) for error in record.errors
    ]


def test_shape_never_contains_a_letter_or_digit_of_the_value() -> None:
    """The description of a refused value keeps its length and punctuation, not its text."""
    assert shape(f"{NAME} {EMAIL}") == "28 characters: letters, spaces, '@', '.'"
    assert shape("5,00") == "4 characters: digits, ','"
    _assert_clean([shape(value) for value in (NAME, EMAIL, PHONE)])


def test_csv_with_shifted_columns_rejects_without_quoting_any_cell() -> None:
    """Name, e-mail and phone in the time, amount, currency and VAT columns stay unquoted."""
    text = (
        "Nr;Tid;Belop;Valuta;MVA;Antall;Betalt\n"
        f"1;{NAME} {EMAIL};{PHONE};{NAME};{EMAIL};{NAME};{PHONE}x\n"
        f"2;2026-01-31T10:00:00;{NAME};NOK;25;1;\n"
    )
    records = list(get_parser("csv")(io.BytesIO(text.encode()), _csv_source()))
    errors = _errors(records)
    assert len([r for r in records if isinstance(r, InvalidRecord)]) == 2
    assert any("column 'Tid': not a time" in error for error in errors)
    assert any("column 'Valuta': not an ISO 4217 code" in error for error in errors)
    assert any("column 'Belop': not a number" in error for error in errors)
    _assert_clean(errors)


def test_csv_several_currencies_one_of_them_personal_data_is_not_quoted() -> None:
    """A receipt with two currencies, one a name, names the lines but not the name."""
    text = "Nr;Tid;Belop;Valuta;MVA;Antall;Betalt\n1;2026-01-31T10:00:00;1,00;NOK;;;\n"
    text += f"1;;2,00;{NAME};;;\n"
    errors = _errors(list(get_parser("csv")(io.BytesIO(text.encode()), _csv_source())))
    assert any("several currencies" in error for error in errors)
    _assert_clean(errors)


def test_csv_without_header_row_does_not_quote_its_first_data_row() -> None:
    """An export whose first row is a receipt line is quarantined without quoting that row."""
    text = f"1;2026-01-31T10:00:00;{NAME};{EMAIL};{PHONE}\n"
    with pytest.raises(ParseError) as raised:
        list(get_parser("csv")(io.BytesIO(text.encode()), _csv_source()))
    assert "header row" in str(raised.value)
    _assert_clean([str(raised.value), raised.value.detail or ""])


def test_dintero_json_with_name_in_amount_fields_rejects_without_quoting_it() -> None:
    """A till's JSON with a name, e-mail and phone in amount and enum fields is rejected cleanly."""
    receipt = make_receipt(1)
    receipt["gross_amount"] = NAME
    receipt["net_amount"] = EMAIL
    receipt["items"][0]["quantity"] = PHONE
    receipt["entry_status"] = NAME
    receipt["purchase_at"] = EMAIL
    source = DinteroJsonSource.model_validate(
        {"name": "j", "path": "/x", "format": "dintero-json", "store": {"id": "sc029"}}
    )
    (raw,) = get_parser("dintero-json")(io.BytesIO(str(receipt).replace("'", '"').encode()), source)
    assert isinstance(raw, RawReceipt)
    finished = finish_receipt(raw, source)
    assert not isinstance(finished, ValidReceipt)
    assert any(error.startswith("gross_amount: ") for error in finished.errors)
    _assert_clean(finished.errors)


class _Cash(BaseModel):
    kind: Literal["cash"]


class _Card(BaseModel):
    kind: Literal["card"]


class _Payment(BaseModel):
    payment: _Cash | _Card = Field(discriminator="kind")


def test_error_sentences_drop_a_pydantic_message_that_echoes_the_input() -> None:
    """pydantic's `Input tag '…' found` quotes the input; the rendered sentence does not."""
    with pytest.raises(ValidationError) as raised:
        _Payment.model_validate({"payment": {"kind": NAME}})
    assert NAME in str(raised.value.errors()[0]["msg"])  # the trap is real
    sentences = error_sentences(raised.value)
    assert sentences[0] == "payment: not a valid value for this field"
    _assert_clean(sentences)


@pytest.mark.parametrize("text", [NAME, EMAIL, PHONE + "x"])
def test_parse_decimal_refusal_does_not_quote_the_text(text: str) -> None:
    """An amount that is not a number is refused with its shape only."""
    with pytest.raises(AmountError) as raised:
        parse_decimal(text, decimal_separator=",")
    _assert_clean([str(raised.value)])


def _poslog_transaction(*, end: str, currency: str, amount: str, day: str) -> bytes:
    body = (
        "<LineItem><Sale><ItemID>A1</ItemID><Description>Item</Description>"
        f"<ExtendedAmount>{amount}</ExtendedAmount><Quantity>{amount}</Quantity></Sale></LineItem>"
    )
    return (
        '<POSLog xmlns="http://www.nrf-arts.org/IXRetail/namespace/"><Transaction>'
        "<BusinessUnit><UnitID>0417</UnitID></BusinessUnit><WorkstationID>2</WorkstationID>"
        f"<SequenceNumber>1</SequenceNumber><BusinessDayDate>{day}</BusinessDayDate>"
        f"<CurrencyCode>{currency}</CurrencyCode>"
        f'<RetailTransaction TransactionStatus="Finished">{body}</RetailTransaction>'
        f"<EndDateTime>{end}</EndDateTime></Transaction></POSLog>"
    ).encode()


def test_poslog_with_personal_data_in_time_currency_and_amount_rejects_cleanly() -> None:
    """POSLog elements holding a name, e-mail or phone are named by path, not quoted."""
    source = PoslogSource.model_validate(
        {"name": "p", "path": "/x", "format": "poslog", "store": {"id": "sc029"}}
    )
    data = _poslog_transaction(end=EMAIL, currency=NAME, amount=PHONE, day=NAME)
    errors = _errors(list(get_parser("poslog")(io.BytesIO(data), source)))
    assert any("EndDateTime: is not an ISO-8601 date-time" in error for error in errors)
    _assert_clean(errors)


def test_api_refusal_that_quotes_the_receipt_is_scrubbed_before_anyone_sees_it(
    sandbox: Sandbox,
) -> None:
    """The sandbox (a JSON-schema validator) quotes what it refuses; our error does not.

    A receipt our model would refuse is posted directly, so the API does the refusing.
    """
    receipt = make_receipt(1)
    receipt["gross_amount"] = NAME
    receipt["customer"] = {"email": EMAIL, "phone_number": PHONE}
    body = orjson.dumps([receipt])
    config = DinteroConfig.model_validate(
        {"base_url": sandbox.base_url, "account_id": ACCOUNT, "client_id": CLIENT_ID}
    )
    client = DinteroClient(config, SecretStr(SECRET))
    try:
        with pytest.raises(RemoteRejectedError) as raised:
            client.post_receipts(body)
    finally:
        client.close()
    raw = [r for r in sandbox.requests if r.path.endswith("/receipts")]
    assert raw, "the POST reached the sandbox"
    message = str(raised.value)
    assert "gross_amount" in message
    _assert_clean([message])


def test_scrub_blanks_quoted_and_long_texts_of_the_body_only() -> None:
    """Quoted values of the refused body become '…'; the message's own words stay."""
    body = orjson.dumps([{"currency": "NOK", "customer": {"email": EMAIL}, "note": NAME}])
    message = f"items.0: '{NAME}' is not of type 'integer'; email {EMAIL} invalid; NOK ok"
    assert scrub(message, body) == "items.0: '…' is not of type 'integer'; email … invalid; NOK ok"
    assert scrub("HTTP 400", b"not json") == "HTTP 400"
