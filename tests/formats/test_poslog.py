"""ARTS POSLog (CONTRACT §2 `format: poslog`): real Visma and NCR samples, dialects, hostile XML."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_agent.config import PoslogSource, load_config
from receipt_agent.errors import ParseError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, SkippedRecord, get_parser
from receipt_agent.formats.poslog import parse
from receipt_agent.mapping import ValidReceipt, check_totals, finish_receipt

REPO = Path(__file__).resolve().parents[2]
NS = 'xmlns="http://www.nrf-arts.org/IXRetail/namespace/"'


def make_source(
    store_id: str = "sc029", timezone: str = "Europe/Oslo", **mapping: Any
) -> PoslogSource:
    """A poslog source; keyword arguments become `mapping` keys."""
    return PoslogSource.model_validate(
        {
            "name": "till-poslog",
            "path": "/srv/pos/poslog",
            "format": "poslog",
            "store": {"id": store_id},
            "timezone": timezone,
            "mapping": mapping,
        }
    )


def run(data: bytes, source: PoslogSource | None = None) -> list[Record]:
    return list(parse(io.BytesIO(data), source or make_source()))


def one_receipt(records: list[Record]) -> dict[str, Any]:
    (receipt,) = [record for record in records if isinstance(record, RawReceipt)]
    return receipt.data


def transaction(
    body: str,
    *,
    unit: str = "0417",
    sequence: str = "1",
    attributes: str = "",
    status: str = "Finished",
    extra: str = "",
) -> str:
    """One POSLog 6 Transaction with a RetailTransaction holding `body`."""
    return (
        f"<Transaction {attributes}><BusinessUnit><UnitID>{unit}</UnitID></BusinessUnit>"
        f"<WorkstationID>2</WorkstationID><SequenceNumber>{sequence}</SequenceNumber>"
        f"<CurrencyCode>NOK</CurrencyCode>"
        f'<RetailTransaction TransactionStatus="{status}">{body}</RetailTransaction>'
        f"<EndDateTime>2026-03-13T09:14:31</EndDateTime>{extra}</Transaction>"
    )


def poslog(*transactions: str) -> bytes:
    return f"<POSLog {NS}>{''.join(transactions)}</POSLog>".encode()


def sale(amount: str, *, quantity: str = "1", flags: str = "", kind: str = "Sale") -> str:
    return (
        f"<LineItem {flags}><{kind}><ItemID>A1</ItemID><Description>Item</Description>"
        f"<ExtendedAmount>{amount}</ExtendedAmount><Quantity>{quantity}</Quantity></{kind}></LineItem>"
    )


def cash(amount: str, *, type_code: str = "Sale") -> str:
    return (
        f'<LineItem><Tender TenderType="Cash" TypeCode="{type_code}">'
        f"<Amount>{amount}</Amount></Tender></LineItem>"
    )


# --- the real samples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "receipt_id", "net", "paid", "rounding"),
    [
        ("visma-retail-rspos-arts1.xml", "sc029-1-3619", 2204188, 2204200, 12),
        ("visma-retail-rspos-arts2.xml", "sc029-1-3622", 19689, 19700, 11),
        ("visma-retail-rspos-arts3.xml", "sc029-10-2536", 38415, 38400, -15),
        ("visma-retail-rspos-arts5.xml", "sc029-10-2541", 7900, 7900, None),
    ],
)
def test_poslog_visma_samples_map_to_valid_receipts_that_add_up(
    samples_dir: Path, name: str, receipt_id: str, net: int, paid: int, rounding: int | None
) -> None:
    """Each real Visma sale becomes one valid receipt whose payments equal total + rounding."""
    source = make_source()
    records = run((samples_dir / "poslog" / name).read_bytes(), source)
    assert len(records) == 1
    (raw,) = records
    assert isinstance(raw, RawReceipt)
    data = raw.data
    assert data["receipt_id"] == receipt_id
    assert data["currency"] == "SEK"
    assert data["purchase_at"].endswith("+02:00")  # July in Europe/Oslo, no offset in the file
    assert data["gross_amount"] == data["net_amount"] == net
    assert sum(payment["amount"] for payment in data["payments"]) == paid
    assert data.get("_rounding") == rounding
    assert check_totals(data) == []
    assert isinstance(finish_receipt(raw, source), ValidReceipt)


def test_poslog_visma_canceled_sample_is_skipped_or_sent_as_voided(samples_dir: Path) -> None:
    """arts4 (TransactionStatus Canceled) is skipped as voided, or sent Voided when configured."""
    data = (samples_dir / "poslog" / "visma-retail-rspos-arts4.xml").read_bytes()
    assert run(data) == [SkippedRecord("voided", "/POSLog/Transaction[1]")]
    source = make_source(voided="send")
    receipt = one_receipt(run(data, source))
    assert receipt["entry_status"] == "Voided"
    assert receipt["gross_amount"] == 3348
    assert receipt["receipt_id"] == "sc029-37-4"


def test_poslog_ncr_sample_counts_loyalty_reward_once(samples_dir: Path) -> None:
    """NCR's sign-on is skipped; the sale's -0.19 reward (written twice) is counted once."""
    source = make_source(store_id="us-9", timezone="America/Chicago", tax_included=False)
    records = run((samples_dir / "poslog" / "ncr-acs-SMALL.xml").read_bytes(), source)
    assert records[0] == SkippedRecord("non_sale", "/POSLog/Transaction[1]")
    assert isinstance(records[1], RawReceipt)
    data = records[1].data
    assert data["receipt_id"] == "us-9-34-20170930-161"
    assert data["purchase_at"] == "2017-10-01T02:02:54-05:00"  # not the business day
    assert data["currency"] == "USD"
    (item,) = data["items"]
    assert item["description"] == "APPLE HONEYCRISP ORG"
    assert str(item["quantity"]) == "0.42"
    assert item["gross_amount"] == 126
    assert item["net_amount"] == 107
    assert item["discount_lines"] == [
        {"amount": 19, "discount_type": "loyalty", "discount_id": "5123"}
    ]
    assert data["net_amount"] == 107
    assert data["total_discount"] == 19
    assert data["payments"] == [
        {
            "line_id": 1,
            "amount": 107,
            "type_id": "CreditDebit",
            "token_type": "DEBIT_CARD",  # CreditDebit with CardType="Debit"
            "reference_id": "344665",  # Authorization/ReferenceNumber
        }
    ]
    assert check_totals(data) == []
    assert isinstance(finish_receipt(records[1], source), ValidReceipt)


# --- bundled samples with their example configs ---------------------------------------------


@pytest.mark.parametrize(
    ("config", "sample", "receipt_ids", "skipped"),
    [
        (
            "poslog-visma.yaml",
            "poslog/visma-style-poslog6.xml",
            ["butikk-0417-2-1001", "butikk-0417-2-1002", "butikk-0417-2-1003"],
            ["non_sale", "voided", "training"],
        ),
        (
            "poslog-ncr.yaml",
            "poslog/ncr-style-2x.xml",
            ["us-store-9-34-20260313-161", "us-store-9-34-20260313-162"],
            ["non_sale"],
        ),
    ],
)
def test_poslog_example_config_converts_its_bundled_sample(
    config: str, sample: str, receipt_ids: list[str], skipped: list[str]
) -> None:
    """The shipped example config turns the bundled sample into valid receipts only."""
    agent = load_config(REPO / "config" / "examples" / config)
    (source,) = agent.sources
    parser = get_parser(source.format)
    with (REPO / "receipt_agent" / "samples" / sample).open("rb") as stream:
        records = list(parser(stream, source))
    finished = [finish_receipt(r, source) for r in records if isinstance(r, RawReceipt)]
    assert [type(r).__name__ for r in finished] == ["ValidReceipt"] * len(receipt_ids), finished
    assert [r.receipt_id for r in finished if isinstance(r, ValidReceipt)] == receipt_ids
    assert [r.reason for r in records if isinstance(r, SkippedRecord)] == skipped
    assert not [r for r in records if isinstance(r, InvalidRecord)]


def test_poslog_bundled_ncr_sample_keeps_void_pair_and_change_line() -> None:
    """The NCR-style void stays as an offsetting pair; change is a separate negative tender."""
    source = make_source(store_id="us-9", timezone="America/Chicago", tax_included=False)
    data = (REPO / "receipt_agent" / "samples" / "poslog" / "ncr-style-2x.xml").read_bytes()
    receipt = next(r.data for r in run(data, source) if isinstance(r, RawReceipt))
    bananas = [item for item in receipt["items"] if item["description"] == "BANANAS"]
    assert [item["gross_amount"] for item in bananas] == [130, -130]
    assert [item.get("voided") for item in bananas] == [None, True]
    assert receipt["net_amount"] == 549
    assert receipt["payments"] == [
        {"line_id": 1, "amount": 1000, "type_id": "Cash", "token_type": "CASH"},
        {"line_id": 2, "amount": -451, "type_id": "Cash", "token_type": "CASH"},
    ]
    assert receipt["purchase_at"] == "2026-03-13T08:02:54-05:00"


def test_poslog_us_transaction_tax_on_top_goes_to_amount_due() -> None:
    """US sales tax (LineItem/Tax) is added on top: items keep shelf prices, payments cover both."""
    sale_tx = transaction(
        sale("5.49") + "<LineItem><Tax><TaxableAmount>5.49</TaxableAmount><Amount>0.38</Amount>"
        "<Percent>7.000</Percent></Tax></LineItem>"
        + cash("5.87")
        + '<Total TotalType="TransactionGrandAmount">5.87</Total>'
        + '<Total TotalType="TransactionTaxAmount">0.38</Total>',
        sequence="1",
    )
    refund_tx = transaction(
        sale("3.49", kind="Return")
        + "<LineItem><Tax><TaxableAmount>-3.49</TaxableAmount><Amount>-0.24</Amount>"
        "<Percent>7.000</Percent></Tax></LineItem>"
        + cash("3.73", type_code="Refund")
        + '<Total TotalType="TransactionGrandAmount">-3.73</Total>',
        sequence="2",
    )
    source = make_source(tax_included=False)
    sold, refunded = [
        r.data for r in run(poslog(sale_tx, refund_tx), source) if isinstance(r, RawReceipt)
    ]
    assert (sold["net_amount"], sold["amount_due"]) == (549, 587)
    assert sold["tax_lines"] == [
        {"amount": 38, "included_in_price": False, "percentage": 7, "tax_basis": 549}
    ]
    assert (refunded["net_amount"], refunded["amount_due"]) == (-349, -373)
    assert refunded["payments"][0]["amount"] == -373
    with_vat_included = run(poslog(sale_tx), make_source(tax_included=True))
    assert isinstance(with_vat_included[0], InvalidRecord)
    assert "payments sum to 587 but net_amount is 549" in with_vat_included[0].errors[0]


# --- statuses and dialect rules ------------------------------------------------------------


def test_poslog_control_suspended_training_are_skipped_with_reasons() -> None:
    """Non-receipts are counted as skipped with the contract's reasons, never sent."""
    data = poslog(
        "<Transaction><BusinessUnit><UnitID>1</UnitID></BusinessUnit><ControlTransaction>"
        "<OperatorSignOn/></ControlTransaction></Transaction>",
        transaction(sale("1.00") + cash("1.00"), unit="1", status="Suspended"),
        transaction(sale("1.00") + cash("1.00"), unit="1", attributes='TrainingModeFlag="true"'),
        transaction(sale("1.00") + cash("1.00"), unit="1", attributes='CancelFlag="true"'),
    )
    assert [r.reason for r in run(data) if isinstance(r, SkippedRecord)] == [
        "non_sale",
        "non_sale",
        "training",
        "voided",
    ]
    sent = run(data, make_source(training="send", voided="send"))
    assert [r.data["entry_status"] for r in sent if isinstance(r, RawReceipt)] == [
        "Training",
        "Voided",
    ]


def test_poslog_cancelled_line_is_dropped_and_v6_voided_line_too() -> None:
    """A CancelFlag line and a VoidFlag line without an offsetting partner are not sold."""
    body = (
        sale("10.00")
        + sale("5.00", flags='CancelFlag="true"')
        + sale("7.00", flags='VoidFlag="true"')
        + cash("10.00")
    )
    data = one_receipt(run(poslog(transaction(body))))
    assert [item["gross_amount"] for item in data["items"]] == [1000]


def test_poslog_return_line_is_negative_whatever_sign_written() -> None:
    """A Return with positive amounts becomes a negative line, quantity and refund."""
    body = sale("12.50", quantity="2", kind="Return") + cash("12.50", type_code="Refund")
    data = one_receipt(run(poslog(transaction(body))))
    (item,) = data["items"]
    assert (item["gross_amount"], item["quantity"], item["is_return_item"]) == (-1250, -2, True)
    assert data["payments"][0]["amount"] == -1250
    assert data["net_amount"] == -1250


def test_poslog_several_stores_without_map_raises_parse_error() -> None:
    """Two UnitIDs and no mapping.stores quarantine the file instead of guessing a store."""
    data = poslog(
        transaction(sale("1.00") + cash("1.00"), unit="3004"),
        transaction(sale("1.00") + cash("1.00"), unit="3000"),
    )
    with pytest.raises(ParseError, match=r"several stores.*mapping\.stores"):
        run(data)


def test_poslog_stores_map_names_each_receipt_and_rejects_unknown_unit() -> None:
    """With a map each UnitID gets its store id; an unmapped one rejects only its receipt."""
    data = poslog(
        transaction(sale("1.00") + cash("1.00"), unit="3004", sequence="1"),
        transaction(sale("1.00") + cash("1.00"), unit="3000", sequence="2"),
        transaction(sale("1.00") + cash("1.00"), unit="9999", sequence="3"),
    )
    records = run(data, make_source(stores={"3004": "solna", "3000": "kista"}))
    assert [r.data["receipt_id"] for r in records if isinstance(r, RawReceipt)] == [
        "solna-2-1",
        "kista-2-2",
    ]
    assert isinstance(records[2], InvalidRecord)
    assert "'9999'" in records[2].errors[0]
    assert "mapping.stores" in records[2].errors[0]


def test_poslog_amount_finer_than_minor_unit_rejects_only_that_transaction() -> None:
    """1.00001 NOK cannot be sent exactly: that receipt is rejected naming the element."""
    data = poslog(
        transaction(sale("1.00001") + cash("1.00"), sequence="1"),
        transaction(sale("2.00000") + cash("2.00000"), sequence="2"),
    )
    first, second = run(data)
    assert isinstance(first, InvalidRecord)
    assert first.location == "/POSLog/Transaction[1]"
    assert "LineItem[1]/Sale/ExtendedAmount" in first.errors[0]
    assert "finer than" in first.errors[0]
    assert isinstance(second, RawReceipt)


def test_poslog_totals_that_do_not_add_up_are_rejected_naming_numbers() -> None:
    """A short payment or a wrong Total is reported with both numbers, never fixed."""
    short = transaction(sale("10.00") + cash("9.00"), sequence="1")
    wrong_total = transaction(
        sale("10.00") + cash("10.00") + '<Total TotalType="TransactionNetAmount">11.00</Total>',
        sequence="2",
    )
    first, second = run(poslog(short, wrong_total))
    assert isinstance(first, InvalidRecord)
    assert "payments sum to 900 but net_amount is 1000" in first.errors[0]
    assert isinstance(second, InvalidRecord)
    assert "TransactionNetAmount" in second.errors[0]
    assert "11.00" in second.errors[0]
    assert "10.00" in second.errors[0]


def test_poslog_tender_change_and_rounding_directions() -> None:
    """Change is taken off the tender; Up/Down rounding is signed into _rounding."""
    body = (
        sale("158.90")
        + '<LineItem><Tender TenderType="Cash" TypeCode="Sale"><Amount>200.00</Amount>'
        "<TenderChange><Amount>41.00</Amount></TenderChange></Tender></LineItem>"
        '<LineItem><Tender><Rounding RoundingDirection="Up">0.10</Rounding></Tender></LineItem>'
    )
    data = one_receipt(run(poslog(transaction(body))))
    assert data["payments"] == [
        {"line_id": 1, "amount": 15900, "type_id": "Cash", "token_type": "CASH"}
    ]
    assert data["_rounding"] == 10
    assert data["extra_info"][0] == {
        "key": "poslog.rounding",
        "value": "0.10",
        "value_type": "number",
    }
    down = (
        sale("384.15")
        + cash("384.00")
        + '<LineItem><Tender><Rounding RoundingDirection="Down">0.15</Rounding>'
        + "</Tender></LineItem>"
    )
    assert one_receipt(run(poslog(transaction(down))))["_rounding"] == -15


def test_poslog_transaction_discount_is_spread_over_items_pro_rata() -> None:
    """A receipt-level discount lands on the items so their net sums to the receipt's net."""
    body = (
        sale("30.00")
        + sale("10.00")
        + "<LineItem><Discount><Amount>4.01</Amount></Discount></LineItem>"
        + cash("35.99")
    )
    data = one_receipt(run(poslog(transaction(body))))
    assert [item["net_amount"] for item in data["items"]] == [3000 - 301, 1000 - 100]
    assert data["net_amount"] == 3599
    assert data["total_discount"] == 401


def test_poslog_offset_and_retalix_fractions_are_honoured() -> None:
    """An explicit offset with 7-digit fractions wins over the source time zone."""
    body = sale("1.00") + cash("1.00")
    text = transaction(body).replace(
        "<EndDateTime>2026-03-13T09:14:31</EndDateTime>",
        "<EndDateTime>2016-08-22T15:21:49.4509505+01:00</EndDateTime>",
    )
    data = one_receipt(run(poslog(text)))
    assert data["purchase_at"] == "2016-08-22T15:21:49.450950+01:00"


def test_poslog_single_transaction_root_and_wrong_root() -> None:
    """A file whose root is one Transaction is read; any other root is not POSLog."""
    data = transaction(sale("1.00") + cash("1.00")).replace("<Transaction >", f"<Transaction {NS}>")
    assert one_receipt(run(data.encode()))["receipt_id"] == "sc029-2-1"
    with pytest.raises(ParseError, match="not a POSLog export"):
        run(b"<auditfile><header/></auditfile>")


# --- hostile XML -------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<POSLog><Transaction><SequenceNumber>&lol3;</SequenceNumber></Transaction></POSLog>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE POSLog [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<POSLog><Transaction><SequenceNumber>&secret;</SequenceNumber></Transaction></POSLog>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE POSLog SYSTEM "http://example.invalid/poslog.dtd">
<POSLog><Transaction/></POSLog>"""
DEEP = b"<POSLog><Transaction>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</Transaction></POSLog>"


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, DTD_ONLY, DEEP],
    ids=["billion-laughs", "external-entity", "dtd", "10000-deep"],
)
def test_poslog_hostile_xml_raises_parse_error(data: bytes) -> None:
    """Entity bombs, XXE, DTDs and absurd nesting quarantine the file; nothing is expanded."""
    with pytest.raises(ParseError) as caught:
        run(data)
    assert "passwd" not in str(caught.value)
    assert "lollol" not in str(caught.value)


def test_poslog_truncated_file_raises_parse_error() -> None:
    """A file cut off mid-write cannot be parsed at all."""
    data = poslog(transaction(sale("1.00") + cash("1.00")))[:-40]
    with pytest.raises(ParseError):
        run(data)


# --- property test: parse(write(transactions)) == transactions ------------------------------

OSLO = ZoneInfo("Europe/Oslo")

_line = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["Sale", "Sale", "Return"]),
        "amount": st.integers(0, 10_000_000),
        "quantity": st.integers(1, 20),
        "id": st.text("0123456789", min_size=1, max_size=13),
    }
)
_transaction = st.fixed_dictionaries(
    {
        "workstation": st.integers(1, 99).map(str),
        "sequence": st.integers(1, 999999).map(str),
        "business_day": st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
        "at": st.datetimes(datetime(2000, 1, 1), datetime(2037, 12, 31)).map(
            lambda moment: moment.replace(microsecond=0)
        ),
        "lines": st.lists(_line, min_size=1, max_size=5),
        "rounding": st.integers(-49, 49),
    }
)


def _major5(amount_minor: int) -> str:
    """Øre → a 5-decimal major amount as Visma writes it (22041.88000)."""
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{abs(amount_minor) // 100}.{abs(amount_minor) % 100:02d}000"


def write_poslog(transactions: list[dict[str, Any]]) -> bytes:
    """The test writer: one POSLog 6 file holding every generated transaction."""
    parts = []
    for tx in transactions:
        net = sum(
            -line["amount"] if line["kind"] == "Return" else line["amount"] for line in tx["lines"]
        )
        lines = "".join(
            f"<LineItem><{line['kind']}><ItemID>{line['id']}</ItemID>"
            f"<ExtendedAmount>{_major5(line['amount'])}</ExtendedAmount>"
            f"<Quantity>{line['quantity']}.00000</Quantity></{line['kind']}></LineItem>"
            for line in tx["lines"]
        )
        direction = "Up" if tx["rounding"] >= 0 else "Down"
        lines += cash(_major5(net + tx["rounding"]))
        lines += (
            f'<LineItem><Tender><Rounding RoundingDirection="{direction}">'
            f"{_major5(abs(tx['rounding']))}</Rounding></Tender></LineItem>"
        )
        lines += f'<Total TotalType="TransactionNetAmount">{_major5(net)}</Total>'
        day = (
            f"<BusinessDayDate>{tx['business_day']}</BusinessDayDate>" if tx["business_day"] else ""
        )
        parts.append(
            f"<Transaction><BusinessUnit><UnitID>0417</UnitID></BusinessUnit>"
            f"<WorkstationID>{tx['workstation']}</WorkstationID>"
            f"<SequenceNumber>{tx['sequence']}</SequenceNumber>{day}"
            f"<CurrencyCode>NOK</CurrencyCode><RetailTransaction>{lines}</RetailTransaction>"
            f"<EndDateTime>{tx['at'].isoformat()}</EndDateTime></Transaction>"
        )
    return poslog(*parts)


@settings(max_examples=60, deadline=None)
@given(st.lists(_transaction, min_size=1, max_size=4))
def test_poslog_property_parse_of_written_transactions_round_trips(
    transactions: list[dict[str, Any]],
) -> None:
    """Whatever a till writes in POSLog, the parser reads back its ids, times, lines and money."""
    records = run(write_poslog(transactions))
    assert len(records) == len(transactions)
    for tx, record in zip(transactions, records, strict=True):
        assert isinstance(record, RawReceipt), record
        data = record.data
        day = tx["business_day"].replace("-", "") if tx["business_day"] else None
        parts = ["sc029", tx["workstation"], day, tx["sequence"]]
        assert data["receipt_id"] == "-".join(part for part in parts if part)
        assert data["purchase_at"] == tx["at"].replace(tzinfo=OSLO).isoformat()
        signs = [-1 if line["kind"] == "Return" else 1 for line in tx["lines"]]
        assert [item["gross_amount"] for item in data["items"]] == [
            sign * line["amount"] for sign, line in zip(signs, tx["lines"], strict=True)
        ]
        assert [item["quantity"] for item in data["items"]] == [
            sign * line["quantity"] for sign, line in zip(signs, tx["lines"], strict=True)
        ]
        assert [item["id"] for item in data["items"]] == [line["id"] for line in tx["lines"]]
        net = sum(item["gross_amount"] for item in data["items"])
        assert data["net_amount"] == net
        assert data["payments"][0]["amount"] == net + tx["rounding"]
        assert data.get("_rounding", 0) == tx["rounding"]
        assert check_totals(data) == []


def test_poslog_item_level_tax_on_top_is_added_once() -> None:
    """US tax written per item (no LineItem/Tax) is on top of prices and counted once."""
    body = (
        "<LineItem><Sale><ItemID>A</ItemID><ExtendedAmount>10.00</ExtendedAmount>"
        "<Quantity>1</Quantity><Tax><TaxableAmount>10.00</TaxableAmount><Amount>0.80</Amount>"
        "<Percent>8</Percent></Tax></Sale></LineItem>" + cash("10.80")
    )
    data = one_receipt(run(poslog(transaction(body)), make_source(tax_included=False)))
    assert data["net_amount"] == 1000
    assert data["amount_due"] == 1080
    assert data["items"][0]["tax_lines"] == [
        {"included_in_price": False, "percentage": 8, "amount": 80, "tax_basis": 1000}
    ]


def test_poslog_retail_transaction_without_items_or_tenders_is_a_non_sale() -> None:
    """An empty RetailTransaction (everything cancelled) is skipped, not sent as a 0 receipt."""
    data = poslog(transaction(sale("5.00", flags='CancelFlag="true"')))
    assert run(data) == [SkippedRecord("non_sale", "/POSLog/Transaction[1]")]


def test_poslog_second_store_in_a_skipped_transaction_still_raises() -> None:
    """A sign-on of another store shows the file mixes stores, even though it is not a sale."""
    data = poslog(
        transaction(sale("1.00") + cash("1.00"), unit="3004"),
        "<Transaction><BusinessUnit><UnitID>3000</UnitID></BusinessUnit>"
        "<ControlTransaction><OperatorSignOn/></ControlTransaction></Transaction>",
    )
    with pytest.raises(ParseError, match="several stores"):
        run(data)


def test_poslog_v6_tender_change_line_cashback_and_rounding_line() -> None:
    """ARTS 6 change and rounding as their own LineItems, and card cash back, are all reckoned."""
    body = (
        sale("99.60")
        + cash("200.00")
        + '<LineItem><TenderChange TenderType="Cash"><Amount>100.00</Amount></TenderChange>'
        "</LineItem>"
        + '<LineItem><Rounding RoundingDirection="Up"><Amount>0.40</Amount></Rounding></LineItem>'
    )
    data = one_receipt(run(poslog(transaction(body))))
    assert [p["amount"] for p in data["payments"]] == [20000, -10000]
    assert data["_rounding"] == 40
    cashback = sale("300.00") + (
        '<LineItem><Tender TenderType="CreditDebit" TypeCode="Sale"><Amount>500.00</Amount>'
        "<Cashback><Amount>200.00</Amount></Cashback></Tender></LineItem>"
    )
    data = one_receipt(run(poslog(transaction(cashback))))
    assert data["payments"] == [
        {"line_id": 1, "amount": 30000, "type_id": "CreditDebit", "token_type": "CARD"}
    ]
