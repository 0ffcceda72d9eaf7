"""POSLog to the øre (issue 13): VAT bases, spread discounts, ARTS 6 returns, tenders, times."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from receipt_agent.config import PoslogSource
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, SkippedRecord
from receipt_agent.formats.poslog import parse
from receipt_agent.mapping import ValidReceipt, check_totals, finish_receipt

NS = 'xmlns="http://www.nrf-arts.org/IXRetail/namespace/"'


def make_source(store_id: str = "sc029", **mapping: Any) -> PoslogSource:
    """A poslog source in Europe/Oslo; keyword arguments become `mapping` keys."""
    return PoslogSource.model_validate(
        {
            "name": "till-poslog",
            "path": "/srv/pos/poslog",
            "format": "poslog",
            "store": {"id": store_id},
            "mapping": mapping,
        }
    )


def run(data: str | bytes, source: PoslogSource | None = None) -> list[Record]:
    raw = data.encode() if isinstance(data, str) else data
    return list(parse(io.BytesIO(raw), source or make_source()))


def receipt_of(data: str | bytes, source: PoslogSource | None = None) -> dict[str, Any]:
    """The one receipt of an export; it must also validate as Dintero's receipt."""
    source = source or make_source()
    records = run(data, source)
    (raw,) = [record for record in records if isinstance(record, RawReceipt)]
    assert not [r for r in records if isinstance(r, InvalidRecord)], records
    assert isinstance(finish_receipt(raw, source), ValidReceipt)
    return raw.data


def assert_adds_up(data: dict[str, Any]) -> None:
    """Σ items = receipt; per item and receipt VAT-inclusive tax + basis = net; gross − net."""
    assert check_totals(data) == []
    for item in data["items"]:
        for tax in item.get("tax_lines", []):
            if tax.get("included_in_price") and "amount" in tax:
                assert tax["amount"] + tax["tax_basis"] == item["net_amount"], item
        if item["net_amount"] < 0 or item["quantity"] < 0:
            assert item["net_amount"] <= 0, item
            assert item["quantity"] < 0, item
            assert item.get("is_return_item") or item.get("voided"), item
    included = [tax for tax in data.get("tax_lines", []) if tax.get("included_in_price")]
    if included:  # the receipt's VAT lines cover the items that carry VAT (not a tip)
        covered = sum(item["net_amount"] for item in data["items"] if item.get("tax_lines"))
        assert sum(tax["amount"] + tax["tax_basis"] for tax in included) == covered
    assert data["gross_amount"] - data["net_amount"] == data.get("total_discount", 0)


def poslog(body: str, *, head: str = "", tail: str = "", root: str = "POSLog") -> str:
    """One POSLog 6 transaction of store 0417, workstation 2, sequence 1001."""
    return (
        f"<{root} {NS}><Transaction><BusinessUnit><UnitID>0417</UnitID></BusinessUnit>"
        f"<WorkstationID>2</WorkstationID><SequenceNumber>1001</SequenceNumber>{head}"
        f'<CurrencyCode>NOK</CurrencyCode><RetailTransaction TransactionStatus="Finished">'
        f"{body}</RetailTransaction><EndDateTime>2026-03-13T09:14:31</EndDateTime>{tail}"
        f"</Transaction></{root}>"
    )


def sale(amount: str, tax: str = "", *, kind: str = "Sale", extra: str = "") -> str:
    return (
        f"<LineItem><{kind}><ItemID>A1</ItemID><ExtendedAmount>{amount}</ExtendedAmount>"
        f"<Quantity>1</Quantity>{tax}{extra}</{kind}></LineItem>"
    )


def vat(amount: str, taxable: str | None = None, percent: str = "25", flag: str = "") -> str:
    basis = f"<TaxableAmount {flag}>{taxable}</TaxableAmount>" if taxable is not None else ""
    return f"<Tax>{basis}<Amount>{amount}</Amount><Percent>{percent}</Percent></Tax>"


def tender(amount: str, tender_type: str = "Cash", type_code: str = "Sale", inner: str = "") -> str:
    return (
        f'<LineItem><Tender TenderType="{tender_type}" TypeCode="{type_code}">'
        f"<Amount>{amount}</Amount>{inner}</Tender></LineItem>"
    )


# --- TaxIncludedInTaxableAmountFlag ---------------------------------------------------------

FLAG = 'TaxIncludedInTaxableAmountFlag="true"'


@pytest.mark.parametrize(
    "tax",
    [
        vat("17.98", "89.90", flag=FLAG),  # the flag on TaxableAmount (ARTS)
        f"<Tax {FLAG}><TaxableAmount>89.90</TaxableAmount><Amount>17.98</Amount>"
        "<Percent>25</Percent></Tax>",  # the flag on Tax
        vat("17.98", "89.90"),  # no flag, but TaxableAmount is the VAT-inclusive net
        vat("17.98", "71.92"),  # the basis itself (Visma)
        vat("17.98"),  # no TaxableAmount: basis = net − tax
        "<Tax><Percent>25</Percent></Tax>",  # only the rate (ARTS Digital Receipt)
    ],
    ids=["flag-on-taxable", "flag-on-tax", "flag-left-out", "basis", "no-basis", "rate-only"],
)
def test_poslog_vat_included_in_taxable_amount_gives_basis_without_vat(tax: str) -> None:
    """89.90 incl. 25 % VAT has tax 17.98 on basis 71.92 however the till spells it."""
    data = receipt_of(poslog(sale("89.90", tax) + tender("89.90")))
    (item,) = data["items"]
    expected = {"percentage": 25, "amount": 1798, "tax_basis": 7192, "included_in_price": True}
    assert item["tax_lines"] == [expected]
    assert data["tax_lines"] == [expected]
    assert_adds_up(data)


def test_poslog_transaction_tax_line_with_flag_has_basis_without_vat() -> None:
    """A receipt-level LineItem/Tax with the flag gives tax_basis = TaxableAmount − Amount."""
    body = (
        sale("125.00", vat("25.00", "125.00", flag=FLAG))
        + "<LineItem><Tax><TaxableAmount "
        + FLAG
        + ">125.00</TaxableAmount><Amount>25.00</Amount><Percent>25</Percent></Tax></LineItem>"
        + tender("125.00")
    )
    data = receipt_of(poslog(body))
    assert data["tax_lines"] == [
        {"percentage": 25, "amount": 2500, "tax_basis": 10000, "included_in_price": True}
    ]
    assert_adds_up(data)


def test_poslog_unrounded_tax_is_rounded_to_ore_and_kept_exact_in_dwh() -> None:
    """A tax of 2.67857 (an ARTS DR export) is 268 øre, with "267.857" kept in amount_dwh."""
    body = (
        sale("25.00", "<Tax><Amount>2.67857</Amount><Percent>12.00</Percent></Tax>")
        + tender("25.00")
        + '<Total TotalType="TransactionNetAmount">22.3200</Total>'
        + '<Total TotalType="TransactionGrandAmount">25.00000</Total>'
    )
    data = receipt_of(poslog(body))
    (tax,) = data["items"][0]["tax_lines"]
    assert (tax["amount"], tax["tax_basis"]) == (268, 2232)
    assert (tax["amount_dwh"], tax["tax_basis_dwh"]) == ("267.857", "2232.143")
    assert_adds_up(data)


# --- transaction-level discount -------------------------------------------------------------


def test_poslog_spread_discount_recomputes_each_items_vat() -> None:
    """A 50.00 coupon over 25 % and 15 % items leaves each item's tax + basis = its net."""
    body = (
        sale("300.00", vat("60.00", "240.00"))
        + sale("100.00", vat("13.04", "86.96", percent="15"))
        + "<LineItem><Discount><Amount>50.00</Amount><PromotionID>KUPONG</PromotionID>"
        "</Discount></LineItem>"
        + tender("350.00")
        + '<Total TotalType="TransactionNetAmount">350.00</Total>'
    )
    data = receipt_of(poslog(body))
    first, second = data["items"]
    assert (first["net_amount"], second["net_amount"]) == (26250, 8750)
    assert first["tax_lines"][0] | {} == {
        "percentage": 25,
        "amount": 5250,  # 262.50 × 25/125
        "tax_basis": 21000,
        "included_in_price": True,
    }
    assert (second["tax_lines"][0]["amount"], second["tax_lines"][0]["tax_basis"]) == (1141, 7609)
    assert data["tax_lines"] == [
        {"percentage": 25, "amount": 5250, "tax_basis": 21000, "included_in_price": True},
        {"percentage": 15, "amount": 1141, "tax_basis": 7609, "included_in_price": True},
    ]
    assert [line["discount_lines"][0]["amount"] for line in data["items"]] == [3750, 1250]
    assert data["total_discount"] == 5000
    assert_adds_up(data)


# --- ARTS 6 returns ---------------------------------------------------------------------------

RETURN_LINK = (
    '<TransactionLink ReasonCode="Return"><BusinessUnit><UnitID>0417</UnitID></BusinessUnit>'
    "<WorkstationID>2</WorkstationID><SequenceNumber>977</SequenceNumber>"
    "<TransactionID>2603120000041700200009770000</TransactionID>"
    "<BusinessDayDate>2026-03-12</BusinessDayDate></TransactionLink>"
)


@pytest.mark.parametrize("sign", ["", "-"], ids=["magnitudes", "signed"])
def test_poslog_arts6_return_with_either_spelling_of_totals_is_a_return(sign: str) -> None:
    """A return whose Totals are magnitudes (or signed) is -89.90 and names its original sale."""
    body = (
        sale("89.90", vat("17.98", "71.92"), kind="Return", extra=RETURN_LINK)
        + "<LineItem><Tax><TaxableAmount>71.92</TaxableAmount><Amount>17.98</Amount>"
        "<Percent>25</Percent></Tax></LineItem>"
        + tender("89.90", "CreditDebit", "Refund")
        + f'<Total TotalType="TransactionGrossAmount">{sign}89.90</Total>'
        + f'<Total TotalType="TransactionNetAmount">{sign}89.90</Total>'
        + f'<Total TotalType="TransactionGrandAmount">{sign}89.90</Total>'
        + f'<Total TotalType="TransactionTaxAmount">{sign}17.98</Total>'
    )
    data = receipt_of(poslog(body))
    (item,) = data["items"]
    assert (item["gross_amount"], item["net_amount"], item["quantity"]) == (-8990, -8990, -1)
    assert item["is_return_item"] is True
    assert item["tax_lines"][0]["amount"] == -1798
    assert data["tax_lines"] == [
        {"percentage": 25, "amount": -1798, "tax_basis": -7192, "included_in_price": True}
    ]
    assert data["payments"][0]["amount"] == -8990
    link = [
        {
            "key": "poslog.original_receipt_id",
            "value": "sc029-2-20260312-977",
            "value_type": "string",
        },
        {
            "key": "poslog.original_transaction_id",
            "value": "2603120000041700200009770000",
            "value_type": "string",
        },
    ]
    assert item["extra_info"] == link
    assert [entry for entry in data["extra_info"] if entry in link] == link
    assert_adds_up(data)


def test_poslog_transaction_level_link_maps_unit_through_stores() -> None:
    """A RetailTransaction/TransactionLink to another unit names that store's receipt id."""
    link = (
        "<TransactionLink><RetailStoreID>3000</RetailStoreID><WorkstationID>7</WorkstationID>"
        "<SequenceNumber>55</SequenceNumber></TransactionLink>"
    )
    body = sale("10.00", kind="Return") + tender("10.00", type_code="Refund") + link
    data = receipt_of(poslog(body), make_source(stores={"0417": "solna", "3000": "kista"}))
    assert data["receipt_id"] == "solna-2-1001"
    assert data["extra_info"] == [
        {"key": "poslog.original_receipt_id", "value": "kista-7-55", "value_type": "string"}
    ]


def test_poslog_sale_line_with_negative_quantity_is_a_return_with_both_signs() -> None:
    """A Sale written with quantity -1 and amount 49.00 is a return of -49.00, not a sale."""
    line = (
        "<LineItem><Sale><ItemID>A1</ItemID><ExtendedAmount>49.00</ExtendedAmount>"
        "<Quantity>-1</Quantity></Sale></LineItem>"
    )
    data = receipt_of(poslog(line + tender("49.00", type_code="Refund")))
    (item,) = data["items"]
    assert (item["gross_amount"], item["quantity"], item["is_return_item"]) == (-4900, -1, True)
    assert_adds_up(data)


# --- tenders, unit price, times --------------------------------------------------------------


def test_poslog_tender_types_become_token_type_and_masked_card_info() -> None:
    """TenderType (and CardType) give token_type; only a masked card number is forwarded."""
    card = (
        '<CreditDebit CardType="Credit"><CardBrand>VISA</CardBrand>'
        "<PrimaryAccountNumber>************1234</PrimaryAccountNumber></CreditDebit>"
        "<Authorization><ReferenceNumber>B00668107235</ReferenceNumber></Authorization>"
    )
    unmasked = (
        '<CreditDebit CardType="Debit">'
        "<PrimaryAccountNumber>4111111111111111</PrimaryAccountNumber></CreditDebit>"
    )
    body = (
        sale("300.00")
        + tender("100.00", "CreditDebit", inner=card)
        + tender("100.00", "CreditDebit", inner=unmasked)
        + tender("50.00", "GiftCard")
        + tender("50.00", "VRExt:Vipps")
    )
    payments = receipt_of(poslog(body))["payments"]
    assert [payment.get("token_type") for payment in payments] == [
        "CREDIT_CARD",
        "DEBIT_CARD",
        "GIFT_CARD",
        "VIPPS",
    ]
    assert payments[0]["card_info"] == {"card_type": "VISA", "card_number": "************1234"}
    assert payments[0]["reference_id"] == "B00668107235"
    assert "card_info" not in payments[1]
    assert "4111111111111111" not in str(payments)


def test_poslog_unit_price_is_sent_as_unit_gross_price() -> None:
    """ActualSalesUnitPrice (else RegularSalesUnitPrice) is the item's unit_gross_price."""
    line = (
        "<LineItem><Sale><ItemID>A1</ItemID><RegularSalesUnitPrice>39.90</RegularSalesUnitPrice>"
        "<ActualSalesUnitPrice>34.50</ActualSalesUnitPrice><ExtendedAmount>69.00</ExtendedAmount>"
        "<Quantity>2</Quantity></Sale></LineItem>"
    )
    data = receipt_of(poslog(line + tender("69.00")))
    assert data["items"][0]["unit_gross_price"] == 3450


@pytest.mark.parametrize(
    ("end", "head", "expected"),
    [
        ('<EndDateTime Offset="+02:00">2026-03-13T09:14:31</EndDateTime>', "", "+02:00"),
        ('<EndDateTime Offset="-0500">2026-03-13T09:14:31</EndDateTime>', "", "-05:00"),
        ('<EndDateTime Offset="120">2026-03-13T09:14:31</EndDateTime>', "", "+02:00"),
        (
            '<EndDateTime TimeZone="America/Chicago">2026-03-13T09:14:31</EndDateTime>',
            "",
            "-05:00",
        ),
        ("<EndDateTime>2026-03-13T09:14:31</EndDateTime>", "<TimeZone>UTC</TimeZone>", "+00:00"),
        ("<EndDateTime>2026-03-13T09:14:31Z</EndDateTime>", "", "+00:00"),
        ("<EndDateTime>2026-03-13T09:14:31</EndDateTime>", "", "+01:00"),  # source timezone
    ],
    ids=["offset", "offset-hhmm", "offset-minutes", "attr-zone", "zone-element", "z", "source"],
)
def test_poslog_time_offset_and_time_zone_are_honoured(end: str, head: str, expected: str) -> None:
    """@Offset, @TimeZone and a TimeZone element place a local time; the text's own wins."""
    xml = poslog(sale("1.00") + tender("1.00"), head=head).replace(
        "<EndDateTime>2026-03-13T09:14:31</EndDateTime>", end
    )
    assert receipt_of(xml)["purchase_at"] == f"2026-03-13T09:14:31{expected}"


def test_poslog_unreadable_offset_rejects_receipt_without_quoting_it() -> None:
    """A bad @Offset rejects the receipt naming the attribute, not repeating the value."""
    xml = poslog(sale("1.00") + tender("1.00")).replace(
        "<EndDateTime>", '<EndDateTime Offset="soon">'
    )
    (record,) = run(xml)
    assert isinstance(record, InvalidRecord)
    assert "EndDateTime: @Offset is not a UTC offset" in record.errors[0]
    assert "soon" not in record.errors[0]


# --- spellings --------------------------------------------------------------------------------


def test_poslog_prefixed_digital_receipt_with_vendor_spellings_is_read() -> None:
    """A `nam:`-prefixed ARTS DigitalReceipt with 1/True flags and lower-case codes is read."""
    xml = (
        '<nam:DigitalReceipt xmlns:nam="http://www.nrf-arts.org/IXRetail/namespace/">'
        '<nam:Transaction TrainingModeFlag="0"><nam:BusinessUnit><nam:UnitID>0417</nam:UnitID>'
        "</nam:BusinessUnit><nam:WorkstationID>9</nam:WorkstationID>"
        "<nam:SequenceNumber>728</nam:SequenceNumber>"
        '<nam:RetailTransaction TransactionStatus="finished">'
        '<nam:LineItem CancelFlag="1"><nam:Sale><nam:ExtendedAmount>5.00</nam:ExtendedAmount>'
        "</nam:Sale></nam:LineItem>"
        '<nam:LineItem CancelFlag="False"><nam:Return><nam:ExtendedAmount Currency="SEK">49.00'
        "</nam:ExtendedAmount><nam:Quantity>1</nam:Quantity><nam:Tax><nam:Percent>25</nam:Percent>"
        "</nam:Tax></nam:Return></nam:LineItem>"
        '<nam:LineItem><nam:Tender TypeCode="refund" TenderType="cash"><nam:Amount>49.00'
        "</nam:Amount></nam:Tender></nam:LineItem>"
        '<nam:LineItem><nam:Tender><nam:Rounding RoundingDirection="UP">0.00</nam:Rounding>'
        "</nam:Tender></nam:LineItem>"
        '<nam:Total TotalType="TransactionGrandAmount" TypeCode="Return">49.00</nam:Total>'
        "</nam:RetailTransaction>"
        "<nam:ReceiptDateTime>2017-12-05T21:52:33+01:00</nam:ReceiptDateTime>"
        "</nam:Transaction></nam:DigitalReceipt>"
    )
    data = receipt_of(xml)
    assert data["receipt_id"] == "sc029-9-728"
    assert data["purchase_at"] == "2017-12-05T21:52:33+01:00"
    (item,) = data["items"]
    assert (item["net_amount"], item["tax_lines"][0]["amount"]) == (-4900, -980)
    assert data["payments"] == [
        {"line_id": 1, "amount": -4900, "type_id": "cash", "token_type": "CASH"}
    ]
    assert_adds_up(data)


@pytest.mark.parametrize("status", ["CANCELLED", "Canceled", "VRExt:PostVoided", "Void"])
def test_poslog_status_spellings_are_voided(status: str) -> None:
    """Every spelling of a cancelled or voided transaction is skipped as voided."""
    xml = poslog(sale("1.00") + tender("1.00")).replace("Finished", status)
    assert run(xml) == [SkippedRecord("voided", "/POSLog/Transaction[1]")]


def test_poslog_training_flag_true_in_capitals_is_training() -> None:
    """TrainingModeFlag="True" (xs:boolean written by .NET) is a training transaction."""
    xml = poslog(sale("1.00") + tender("1.00")).replace(
        "<Transaction>", '<Transaction TrainingModeFlag="True">'
    )
    assert run(xml) == [SkippedRecord("training", "/POSLog/Transaction[1]")]


# --- real samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3, 5])
def test_poslog_visma_samples_keep_every_invariant(samples_dir: Path, number: int) -> None:
    """Each real Visma receipt adds up øre for øre: items, VAT bases, payments, discounts."""
    path = samples_dir / "poslog" / f"visma-retail-rspos-arts{number}.xml"
    data = receipt_of(path.read_bytes())
    assert_adds_up(data)
    (item,) = data["items"]
    assert item["tax_lines"] == [
        {
            "amount": 0,
            "percentage": 0,
            "tax_basis": item["net_amount"],
            "included_in_price": True,
        }
    ]
    assert data["payments"][0]["token_type"] == "CASH"


def test_poslog_return_with_price_modifier_has_negative_discount() -> None:
    """A returned item bought at 129.00 − 20.00 refunds 109.00; its discount is -20.00 too."""
    modifier = "<RetailPriceModifier><Amount>20.00</Amount></RetailPriceModifier>"
    body = sale("129.00", vat("21.80", "87.20"), kind="Return", extra=modifier) + tender(
        "109.00", type_code="Refund"
    )
    data = receipt_of(poslog(body))
    (item,) = data["items"]
    assert (item["gross_amount"], item["net_amount"]) == (-12900, -10900)
    assert item["discount_lines"] == [{"amount": -2000, "discount_type": "manual"}]
    assert data["total_discount"] == -2000
    assert item["tax_lines"][0]["tax_basis"] == -8720
    assert_adds_up(data)


def test_poslog_extended_amount_after_discount_spelling_is_not_discounted_twice() -> None:
    """Regular 10.00, ExtendedAmount 6.00, ExtendedDiscountAmount 4.00: gross 10, net 6."""
    line = (
        "<LineItem><Sale><ItemID>CHA2111010</ItemID>"
        "<RegularSalesUnitPrice>10.00</RegularSalesUnitPrice><ExtendedAmount>6.00</ExtendedAmount>"
        "<ExtendedDiscountAmount>4.00</ExtendedDiscountAmount><Quantity>1</Quantity>"
        "<Tax><Percent>25</Percent></Tax></Sale></LineItem>"
    )
    data = receipt_of(poslog(line + tender("6.00")))
    (item,) = data["items"]
    assert (item["gross_amount"], item["net_amount"]) == (1000, 600)
    assert data["total_discount"] == 400
    assert_adds_up(data)
    before = line.replace("<ExtendedAmount>6.00", "<ExtendedAmount>10.00")
    data = receipt_of(poslog(before + tender("6.00")))
    assert (data["items"][0]["gross_amount"], data["items"][0]["net_amount"]) == (1000, 600)


def test_poslog_receipt_discount_on_a_return_reduces_the_refund() -> None:
    """A 10.00 discount on a return of 60.00 + 40.00 refunds 90.00, spread 6.00 / 4.00."""
    body = (
        sale("60.00", vat("12.00", "48.00"), kind="Return")
        + sale("40.00", vat("8.00", "32.00"), kind="Return")
        + "<LineItem><Discount><Amount>10.00</Amount></Discount></LineItem>"
        + tender("90.00", type_code="Refund")
    )
    data = receipt_of(poslog(body))
    assert [item["net_amount"] for item in data["items"]] == [-5400, -3600]
    assert data["total_discount"] == -1000
    assert_adds_up(data)


def test_poslog_receipt_discount_is_not_spread_over_a_tip_without_vat() -> None:
    """A 10.00 discount lands on the goods (with VAT), never on the 20.00 tip line."""
    tip = (
        "<LineItem><Sale><ItemID>TIP</ItemID><Description>Tips</Description>"
        "<ExtendedAmount>20.00</ExtendedAmount></Sale></LineItem>"
    )
    body = (
        sale("100.00", vat("20.00", "80.00"))
        + tip
        + "<LineItem><Discount><Amount>10.00</Amount></Discount></LineItem>"
        + tender("110.00")
    )
    data = receipt_of(poslog(body))
    assert [item["net_amount"] for item in data["items"]] == [9000, 2000]
    assert_adds_up(data)


def test_poslog_quantity_without_text_takes_its_units_attribute() -> None:
    """`<Quantity Units="3"/>` (no text) is a quantity of 3."""
    line = (
        "<LineItem><Sale><ItemID>A1</ItemID><ExtendedAmount>30.00</ExtendedAmount>"
        '<Quantity Units="3" UnitOfMeasureCode="EA"/></Sale></LineItem>'
    )
    assert receipt_of(poslog(line + tender("30.00")))["items"][0]["quantity"] == 3


def test_poslog_ncr_cash_back_and_change_lines_are_not_taken_off_twice() -> None:
    """NCR: a 55.58 debit with Cashback 50.00 and its own -50.00 cash line is paid 5.58."""
    cashback = (
        '<LineItem><Tender TenderType="CreditDebit" TypeCode="Sale"><Amount>55.58</Amount>'
        "<Cashback>50.00</Cashback>"
        "<Authorization><AuthorizedChangeAmount>50.00</AuthorizedChangeAmount></Authorization>"
        '<CreditDebit CardType="Debit"/></Tender></LineItem>'
        '<LineItem><Tender TenderType="Cash" TypeCode="Sale"><Amount>-50.00</Amount>'
        "<TenderChange><Amount>-50.00</Amount></TenderChange></Tender></LineItem>"
    )
    data = receipt_of(poslog(sale("5.58") + cashback))
    assert [payment["amount"] for payment in data["payments"]] == [5558, -5000]
    change = (
        tender("2.00")
        + '<LineItem><Tender TenderType="Cash" TypeCode="Sale"><Amount>-0.93</Amount>'
        "<TenderChange><Amount>-0.93</Amount></TenderChange></Tender></LineItem>"
    )
    data = receipt_of(poslog(sale("1.07") + change))
    assert [payment["amount"] for payment in data["payments"]] == [200, -93]


def test_poslog_item_vat_written_before_its_discount_is_recomputed() -> None:
    """100.00 − 20 % with VAT 20.00 on 80.00 (the undiscounted price) becomes 16.00 on 64.00."""
    modifier = "<RetailPriceModifier><Amount>20.00</Amount></RetailPriceModifier>"
    body = (
        sale("100.00", vat("20.00", "80.00"), extra=modifier)
        + "<LineItem><Tax><TaxableAmount>80.00</TaxableAmount><Amount>20.00</Amount>"
        "<Percent>25</Percent></Tax></LineItem>" + tender("80.00")
    )
    data = receipt_of(poslog(body))
    expected = {"percentage": 25, "amount": 1600, "tax_basis": 6400, "included_in_price": True}
    assert data["items"][0]["tax_lines"] == [expected]
    assert data["tax_lines"] == [expected]  # the file's stale summary gives way to the items
    assert_adds_up(data)


def test_poslog_transactions_inside_a_body_wrapper_are_read() -> None:
    """`POSLog/Body/Transaction` (a vendor's envelope) is read like `POSLog/Transaction`."""
    xml = poslog(sale("1.00") + tender("1.00"))
    wrapped = xml.replace("<Transaction>", "<Body><Transaction>").replace(
        "</Transaction>", "</Transaction></Body>"
    )
    assert receipt_of(wrapped)["receipt_id"] == "sc029-2-1001"
