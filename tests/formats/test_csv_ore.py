"""CSV to the øre (issue 13): returns marked by one minus sign, discounts, payment types."""

from __future__ import annotations

import io
from typing import Any

import pytest

from receipt_agent.config import CsvSource
from receipt_agent.formats import InvalidRecord, RawReceipt, Record
from receipt_agent.formats.csv_export import parse
from receipt_agent.mapping import ValidReceipt, check_totals, finish_receipt

COLUMNS = {
    "receipt_number": "Kvitteringsnr",
    "purchase_at": "Tidspunkt",
    "item_gross_amount": "Linjebeløp",
    "item_description": "Varetekst",
    "item_quantity": "Antall",
    "item_tax_percent": "MVA",
    "item_discount_amount": "Linjerabatt",
    "receipt_discount_amount": "Kvitteringsrabatt",
    "payment_type": "Betalingsmåte",
    "payment_amount": "Betalt",
}
HEADER = (
    "Kvitteringsnr;Tidspunkt;Varetekst;Antall;MVA;Linjebeløp;Linjerabatt;Kvitteringsrabatt;"
    "Betalingsmåte;Betalt"
)
WHEN = "31.01.2026 14:05:00"


def make_source(**mapping: Any) -> CsvSource:
    """A Norwegian csv source with discount columns; keyword arguments override mapping keys."""
    settings: dict[str, Any] = {
        "delimiter": ";",
        "decimal_separator": ",",
        "datetime_format": "%d.%m.%Y %H:%M:%S",
        "columns": COLUMNS,
    }
    settings.update(mapping)
    return CsvSource.model_validate(
        {
            "name": "till-csv",
            "path": "/srv/pos/csv",
            "format": "csv",
            "store": {"id": "sc029"},
            "mapping": settings,
        }
    )


def csv(*rows: str) -> bytes:
    """An export: the header and `rows` (number;time;text;qty;vat;amount;disc;rdisc;type;paid)."""
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def run(data: bytes, source: CsvSource | None = None) -> list[Record]:
    return list(parse(io.BytesIO(data), source or make_source()))


def receipt_of(data: bytes, source: CsvSource | None = None) -> dict[str, Any]:
    """The one receipt of an export; it must validate as Dintero's receipt and add up."""
    source = source or make_source()
    (raw,) = run(data, source)
    assert isinstance(raw, RawReceipt), raw
    assert isinstance(finish_receipt(raw, source), ValidReceipt)
    assert_adds_up(raw.data)
    return raw.data


def assert_adds_up(data: dict[str, Any]) -> None:
    """Σ items = receipt; per line and receipt tax + basis = net; gross − net = discounts."""
    assert check_totals(data) == []
    for item in data["items"]:
        for tax in item.get("tax_lines", []):
            assert tax["amount"] + tax["tax_basis"] == item["net_amount"]
        signs = {amount < 0 for amount in (item["quantity"], item["gross_amount"]) if amount}
        assert len(signs) <= 1, item
        assert bool(item.get("is_return_item")) == (True in signs), item
    receipt_tax = sum(tax["amount"] + tax["tax_basis"] for tax in data.get("tax_lines", []))
    assert receipt_tax in (0, data["net_amount"])
    assert data["gross_amount"] - data["net_amount"] == data.get("total_discount", 0)


# --- returns ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "amount", "paid"),
    [("-1", "89,90", "89,90"), ("1", "-89,90", "-89,90"), ("-1", "-89,90", "-89,90")],
    ids=["negative-quantity-only", "negative-amount-only", "both-negative"],
)
def test_csv_return_marked_by_either_minus_sign_is_a_return(
    quantity: str, amount: str, paid: str
) -> None:
    """-1 × 89,90 (or 1 × -89,90) is a -89.90 return with a -89.90 refund, never a sale."""
    data = receipt_of(csv(f"7001;{WHEN};Kaffe;{quantity};25;{amount};;;Kort;{paid}"))
    (item,) = data["items"]
    assert (item["quantity"], item["gross_amount"], item["net_amount"]) == (-1, -8990, -8990)
    assert item["is_return_item"] is True
    assert item["tax_lines"] == [
        {"percentage": 25, "amount": -1798, "tax_basis": -7192, "included_in_price": True}
    ]
    assert data["net_amount"] == -8990
    assert data["payments"][0]["amount"] == -8990


def test_csv_signed_convention_rejects_line_whose_signs_disagree() -> None:
    """With sign_convention: signed, -1 × 89,90 is refused (named by line), never sent as a sale."""
    (record,) = run(
        csv(f"7001;{WHEN};Kaffe;-1;25;89,90;;;Kort;89,90"), make_source(sign_convention="signed")
    )
    assert isinstance(record, InvalidRecord)
    assert record.errors == [
        "line 2: the quantity and the amount have different signs; with "
        "mapping.sign_convention: signed a return must be negative in both "
        "(sign_convention: auto reads either minus sign as a return)"
    ]


def test_csv_exchange_keeps_each_lines_sign_and_signed_payment() -> None:
    """A sale and a return on one receipt: each line keeps its own sign, the net is paid."""
    data = receipt_of(
        csv(
            f"7002;{WHEN};Genser;1;25;499,00;;;;",
            f"7002;{WHEN};Bukse;-1;25;399,00;;;;",
            f"7002;{WHEN};;;;;;;Kort;100,00",
        )
    )
    assert [item["gross_amount"] for item in data["items"]] == [49900, -39900]
    assert [item.get("is_return_item") for item in data["items"]] == [None, True]
    assert data["payments"][0]["amount"] == 10000


# --- discounts ----------------------------------------------------------------------------------


def test_csv_line_discount_column_gives_net_vat_and_discount_line() -> None:
    """100,00 with a 20,00 line discount at 25 % is net 80.00: VAT 16.00 on 64.00."""
    data = receipt_of(csv(f"7003;{WHEN};Sko;1;25;100,00;20,00;;Kort;80,00"))
    (item,) = data["items"]
    assert (item["gross_amount"], item["net_amount"]) == (10000, 8000)
    assert item["discount_lines"] == [{"amount": 2000, "discount_type": "manual"}]
    assert item["tax_lines"] == [
        {"percentage": 25, "amount": 1600, "tax_basis": 6400, "included_in_price": True}
    ]
    assert data["total_discount"] == 2000


def test_csv_line_discount_on_return_is_negative_like_the_return() -> None:
    """A -100,00 return with a 20,00 discount refunds 80.00; every amount is negative."""
    data = receipt_of(csv(f"7004;{WHEN};Sko;-1;25;100,00;-20,00;;Kort;80,00"))
    (item,) = data["items"]
    assert (item["gross_amount"], item["net_amount"]) == (-10000, -8000)
    assert item["discount_lines"] == [{"amount": -2000, "discount_type": "manual"}]
    assert data["total_discount"] == -2000
    assert data["payments"][0]["amount"] == -8000


def test_csv_receipt_discount_is_spread_pro_rata_remainder_on_largest_line() -> None:
    """A 10,00 member discount over 100,00 + 50,00 + 33,33 lands 5,47 / 2,72 / 1,81 exactly."""
    data = receipt_of(
        csv(
            f"7005;{WHEN};Jakke;1;25;100,00;;10,00;;",
            f"7005;{WHEN};Brød;1;15;50,00;;10,00;;",
            f"7005;{WHEN};Lue;1;25;33,33;;10,00;;",
            f"7005;{WHEN};;;;;;;Vipps;173,33",
        )
    )
    assert [item["discount_lines"] for item in data["items"]] == [
        [{"amount": 547, "discount_type": "total"}],
        [{"amount": 272, "discount_type": "total"}],
        [{"amount": 181, "discount_type": "total"}],
    ]
    assert [item["net_amount"] for item in data["items"]] == [9453, 4728, 3152]
    assert [item["tax_lines"][0]["amount"] for item in data["items"]] == [1891, 617, 630]
    assert data["tax_lines"] == [
        {"percentage": 25, "amount": 2521, "tax_basis": 10084, "included_in_price": True},
        {"percentage": 15, "amount": 617, "tax_basis": 4111, "included_in_price": True},
    ]
    assert (data["gross_amount"], data["net_amount"], data["total_discount"]) == (
        18333,
        17333,
        1000,
    )
    assert data["payments"] == [
        {"line_id": 1, "amount": 17333, "type_id": "Vipps", "token_type": "VIPPS"}
    ]


def test_csv_receipt_discount_on_return_only_receipt_reduces_the_refund() -> None:
    """A return receipt with a 10,00 receipt discount refunds 90.00, split over its lines."""
    data = receipt_of(
        csv(
            f"7006;{WHEN};Jakke;-1;25;60,00;;10,00;;",
            f"7006;{WHEN};Lue;-1;25;40,00;;;Kontant;90,00",
        )
    )
    assert [item["net_amount"] for item in data["items"]] == [-5400, -3600]
    assert data["total_discount"] == -1000
    assert data["payments"] == [
        {"line_id": 1, "amount": -9000, "type_id": "Kontant", "token_type": "CASH"}
    ]


def test_csv_receipt_discount_written_differently_on_two_rows_rejects_receipt() -> None:
    """Two different receipt-level discounts are ambiguous: the receipt is rejected."""
    (record,) = run(
        csv(
            f"7007;{WHEN};Jakke;1;25;100,00;;10,00;;",
            f"7007;{WHEN};Lue;1;25;50,00;;5,00;Kort;135,00",
        )
    )
    assert isinstance(record, InvalidRecord)
    assert record.errors == [
        "column 'Kvitteringsrabatt': line 2 and line 3 give different receipt-level "
        "discounts; write it on one row, or the same on every row"
    ]


def test_csv_receipt_discount_larger_than_the_lines_rejects_receipt() -> None:
    """A discount of 200,00 on a 100,00 receipt cannot be spread: rejected with numbers."""
    (record,) = run(csv(f"7008;{WHEN};Jakke;1;25;100,00;;200,00;Kort;0,00"))
    assert isinstance(record, InvalidRecord)
    assert "the receipt-level discount 20000 is larger than the lines" in record.errors[0]


# --- payment types --------------------------------------------------------------------------------


def test_csv_payment_types_map_to_token_type_known_names_and_configured_ones() -> None:
    """Nordic names are recognised, mapping.payment_types adds a till's own; others get none."""
    source = make_source(payment_types={"BAX": "DEBIT_CARD"})
    data = receipt_of(
        csv(
            f"7009;{WHEN};Jakke;1;25;400,00;;;;",
            f"7009;{WHEN};;;;;;;Bankkort;100,00",
            f"7009;{WHEN};;;;;;;BAX;100,00",
            f"7009;{WHEN};;;;;;;Gavekort;100,00",
            f"7009;{WHEN};;;;;;;Kasse 7;100,00",
        ),
        source,
    )
    assert [payment.get("token_type") for payment in data["payments"]] == [
        "CARD",
        "DEBIT_CARD",
        "GIFT_CARD",
        None,
    ]
    assert [payment["type_id"] for payment in data["payments"]] == [
        "Bankkort",
        "BAX",
        "Gavekort",
        "Kasse 7",
    ]


@pytest.mark.parametrize("amount", ["89,90-", "(89,90)"], ids=["trailing-minus", "parentheses"])
def test_csv_trailing_minus_and_parentheses_are_negative_amounts(amount: str) -> None:
    """ERP spellings of -89,90 (`89,90-`, `(89,90)`) are a return, never a +89.90 sale."""
    data = receipt_of(csv(f"7010;{WHEN};Kaffe;1;25;{amount};;;Kort;{amount}"))
    (item,) = data["items"]
    assert (item["quantity"], item["gross_amount"], item["is_return_item"]) == (-1, -8990, True)
    assert data["payments"][0]["amount"] == -8990
