"""CSV exports (CONTRACT §2 `format: csv`): grouping, encodings, amounts, times and bad rows."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_agent.config import CsvSource, load_config
from receipt_agent.errors import ParseError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, get_parser
from receipt_agent.formats.csv_export import parse
from receipt_agent.mapping import ValidReceipt, finish_receipt

OSLO = ZoneInfo("Europe/Oslo")
REPO = Path(__file__).resolve().parents[2]

NORWEGIAN_COLUMNS = {
    "receipt_number": "Kvitteringsnr",
    "purchase_at": "Tidspunkt",
    "item_gross_amount": "Linjebeløp",
    "register_id": "Kasse",
    "item_id": "Varenr",
    "item_description": "Varetekst",
    "item_quantity": "Antall",
    "item_tax_percent": "MVA",
    "payment_type": "Betalingsmåte",
    "payment_amount": "Betalt",
}

NORWEGIAN = (
    "Kvitteringsnr;Tidspunkt;Kasse;Varenr;Varetekst;Antall;MVA;Linjebeløp;Betalingsmåte;Betalt\r\n"
    "1001;31.01.2026 14:05:00;1;2001;Brød grovt;1;15;39,90;;\r\n"
    "1001;31.01.2026 14:05:00;1;3001;Blåbærsyltetøy;2;15;119,80;;\r\n"
    "1001;31.01.2026 14:05:00;1;;;;;;Kort;159,70\r\n"
    "1002;31.01.2026 14:07:12;1;4001;Ølglass «Fjord»;1;25;1 249,00;Vipps;1 249,00\r\n"
)


def make_source(**mapping: Any) -> CsvSource:
    """A csv source for Norwegian exports; keyword arguments override mapping keys."""
    settings_: dict[str, Any] = {
        "delimiter": ";",
        "decimal_separator": ",",
        "encoding": "cp1252",
        "datetime_format": "%d.%m.%Y %H:%M:%S",
        "columns": NORWEGIAN_COLUMNS,
    }
    settings_.update(mapping)
    return CsvSource.model_validate(
        {
            "name": "till-csv",
            "path": "/srv/pos/csv",
            "format": "csv",
            "store": {"id": "sc029"},
            "mapping": settings_,
        }
    )


def run(data: bytes, source: CsvSource) -> list[Record]:
    return list(parse(io.BytesIO(data), source))


def receipts(records: list[Record]) -> list[dict[str, Any]]:
    return [record.data for record in records if isinstance(record, RawReceipt)]


def test_csv_norwegian_cp1252_maps_to_same_receipts_as_utf8_bom_twin(tmp_path: Path) -> None:
    """A cp1252 export and its UTF-8-with-BOM twin give the operator identical receipts."""
    (tmp_path / "cp1252.csv").write_bytes(NORWEGIAN.encode("cp1252"))
    (tmp_path / "utf8.csv").write_bytes(NORWEGIAN.encode("utf-8-sig"))
    from_cp1252 = run((tmp_path / "cp1252.csv").read_bytes(), make_source(encoding="cp1252"))
    from_utf8 = run((tmp_path / "utf8.csv").read_bytes(), make_source(encoding="utf-8"))
    assert from_cp1252 == from_utf8
    first, second = receipts(from_cp1252)
    assert first["receipt_id"] == "sc029-1-1001"
    assert first["store"] == {"id": "sc029", "terminal_id": "1"}
    assert first["purchase_at"] == "2026-01-31T14:05:00+01:00"
    assert first["currency"] == "NOK"
    assert [item["gross_amount"] for item in first["items"]] == [3990, 11980]
    assert first["items"][1]["description"] == "Blåbærsyltetøy"
    assert first["items"][1]["quantity"] == 2
    assert first["items"][0]["tax_lines"] == [
        {"percentage": 15, "amount": 520, "tax_basis": 3470, "included_in_price": True}
    ]
    assert first["gross_amount"] == first["net_amount"] == 15970
    assert first["tax_lines"] == [
        {
            "percentage": 15,
            "amount": 520 + 1563,
            "tax_basis": 3470 + 10417,
            "included_in_price": True,
        }
    ]
    assert first["payments"] == [
        {"line_id": 1, "amount": 15970, "type_id": "Kort", "token_type": "CARD"}
    ]
    assert second["items"][0]["description"] == "Ølglass «Fjord»"
    assert second["gross_amount"] == 124900
    assert second["payments"] == [
        {"line_id": 1, "amount": 124900, "type_id": "Vipps", "token_type": "VIPPS"}
    ]


def test_csv_scattered_rows_are_grouped_in_order_of_first_appearance() -> None:
    """Rows of one receipt spread over the file still become one receipt, in file order."""
    text = (
        "Kvitteringsnr;Tidspunkt;Linjebeløp\n"
        "7;2026-03-01T10:00:00;10,00\n"
        "5;2026-03-01T09:00:00;1,00\n"
        "7;;20,00\n"
        "5;;2,00\n"
        "7;;30,00\n"
    )
    source = make_source(
        datetime_format=None,
        columns={"receipt_number": "Kvitteringsnr", "purchase_at": "Tidspunkt",
                 "item_gross_amount": "Linjebeløp"},
    )  # fmt: skip
    seven, five = receipts(run(text.encode("cp1252"), source))
    assert seven["receipt_id"] == "sc029-7"
    assert [item["gross_amount"] for item in seven["items"]] == [1000, 2000, 3000]
    assert [item["line_id"] for item in seven["items"]] == [1, 2, 3]
    assert seven["gross_amount"] == 6000
    assert five["receipt_id"] == "sc029-5"
    assert five["gross_amount"] == 300
    assert "terminal_id" not in seven["store"]


def test_csv_same_number_on_two_registers_gives_two_receipts() -> None:
    """Receipt numbers are per register, so register 1 and 2 each keep their own 1001."""
    text = (
        "Kvitteringsnr;Tidspunkt;Kasse;Linjebeløp\n"
        "1001;31.01.2026 10:00:00;1;10,00\n"
        "1001;31.01.2026 10:00:00;2;20,00\n"
    )
    source = make_source(
        columns={"receipt_number": "Kvitteringsnr", "purchase_at": "Tidspunkt",
                 "item_gross_amount": "Linjebeløp", "register_id": "Kasse"},
    )  # fmt: skip
    ids = [data["receipt_id"] for data in receipts(run(text.encode("cp1252"), source))]
    assert ids == ["sc029-1-1001", "sc029-2-1001"]


def test_csv_missing_column_raises_parse_error_naming_header() -> None:
    """A configured column absent from the header quarantines the file with both lists named."""
    text = "Kvitteringsnr;Tidspunkt;Beløp\n1;31.01.2026 10:00:00;1,00\n"
    with pytest.raises(ParseError) as caught:
        run(text.encode("cp1252"), make_source())
    message = str(caught.value)
    assert "'Linjebeløp'" in message
    assert "item_gross_amount" in message
    assert "'Beløp'" in message
    assert caught.value.location == "line 1"


def test_csv_wrong_delimiter_raises_parse_error() -> None:
    """A comma file read with ';' shows one big header column, and the error says so."""
    text = "Kvitteringsnr,Tidspunkt,Linjebeløp\n1,2026-01-01T10:00:00,1.00\n"
    with pytest.raises(ParseError, match="delimiter"):
        run(text.encode("cp1252"), make_source())


def test_csv_empty_file_raises_parse_error() -> None:
    """A file without a header row cannot be read at all."""
    with pytest.raises(ParseError, match="no header row"):
        run(b"\r\n\r\n", make_source())


def test_csv_undecodable_byte_raises_parse_error_with_line_and_hint() -> None:
    """cp1252 bytes read as UTF-8 quarantine the file, naming the line and mapping.encoding."""
    data = NORWEGIAN.encode("cp1252")
    with pytest.raises(ParseError) as caught:
        run(data, make_source(encoding="utf-8"))
    assert caught.value.location == "line 1"  # 'ø' in the header
    assert "mapping.encoding" in str(caught.value)
    later = ("A;B;C\n1;2;3\n" + "1;x;ø\n").encode("cp1252")
    with pytest.raises(ParseError) as caught:
        run(later, make_source(encoding="utf-8"))
    assert caught.value.location == "line 3"


def test_csv_bad_amount_rejects_only_its_receipt() -> None:
    """An unparseable amount names its line and column; the other receipts still go on."""
    text = NORWEGIAN.replace("119,80", "119,8O")
    records = run(text.encode("cp1252"), make_source())
    assert isinstance(records[0], InvalidRecord)
    assert records[0].receipt_id == "sc029-1-1001"
    assert records[0].location == "line 2"
    assert len(records[0].errors) == 1
    assert "line 3" in records[0].errors[0]
    assert "'Linjebeløp'" in records[0].errors[0]
    assert isinstance(records[1], RawReceipt)


def test_csv_amount_finer_than_ore_rejects_receipt() -> None:
    """12,345 kr cannot be sent exactly, so the receipt is rejected, never rounded."""
    text = NORWEGIAN.replace("39,90", "39,905")
    first = run(text.encode("cp1252"), make_source())[0]
    assert isinstance(first, InvalidRecord)
    assert "finer than" in first.errors[0]
    assert "line 2" in first.errors[0]


def test_csv_bad_date_rejects_receipt_naming_column() -> None:
    """A time that does not match datetime_format names the column and the setting."""
    text = NORWEGIAN.replace("31.01.2026 14:07:12", "2026-01-31 14:07")
    records = run(text.encode("cp1252"), make_source())
    assert isinstance(records[0], RawReceipt)
    assert isinstance(records[1], InvalidRecord)
    assert "'Tidspunkt'" in records[1].errors[0]
    assert "datetime_format" in records[1].errors[0]


def test_csv_empty_receipt_number_rejects_that_row() -> None:
    """A line without a receipt number cannot be grouped and is rejected on its own."""
    text = NORWEGIAN + ";31.01.2026 14:09:00;1;1;x;1;25;10,00;;\r\n"
    records = run(text.encode("cp1252"), make_source())
    assert len(records) == 3
    assert isinstance(records[2], InvalidRecord)
    assert "'Kvitteringsnr'" in records[2].errors[0]


def test_csv_iso_times_keep_offsets_and_localise_naive_ones() -> None:
    """Naive times get Oslo's offset (summer and winter); an explicit Z or offset wins."""
    text = (
        "nr,at,amount\n"
        "1,2026-07-01T12:00:00,1.00\n"
        "2,2026-01-01T12:00:00,1.00\n"
        "3,2026-07-01T12:00:00Z,1.00\n"
        "4,2026-07-01 12:00:00+05:30,1.00\n"
    )
    source = make_source(
        delimiter=",", decimal_separator=".", encoding="utf-8", datetime_format=None,
        columns={"receipt_number": "nr", "purchase_at": "at", "item_gross_amount": "amount"},
    )  # fmt: skip
    times = [data["purchase_at"] for data in receipts(run(text.encode(), source))]
    assert times == [
        "2026-07-01T12:00:00+02:00",
        "2026-01-01T12:00:00+01:00",
        "2026-07-01T12:00:00+00:00",
        "2026-07-01T12:00:00+05:30",
    ]


def test_csv_minor_amounts_and_currency_column() -> None:
    """amounts: minor takes øre as written; a currency column sets the receipt currency."""
    text = "nr,at,amount,cur\n1,2026-07-01T12:00:00,12345,SEK\n2,2026-07-01T12:00:00,1.5,SEK\n"
    source = make_source(
        delimiter=",", decimal_separator=".", encoding="utf-8", datetime_format=None,
        amounts="minor",
        columns={"receipt_number": "nr", "purchase_at": "at", "item_gross_amount": "amount",
                 "currency": "cur"},
    )  # fmt: skip
    first, second = run(text.encode(), source)
    assert isinstance(first, RawReceipt)
    assert first.data["currency"] == "SEK"
    assert first.data["gross_amount"] == 12345
    assert isinstance(second, InvalidRecord)
    assert "whole number" in second.errors[0]


def test_csv_row_without_amount_or_payment_rejects_receipt() -> None:
    """A row that is neither a line nor a payment is named, not silently dropped."""
    text = NORWEGIAN + "1002;31.01.2026 14:07:12;1;;;;;;;\r\n"
    records = run(text.encode("cp1252"), make_source())
    assert isinstance(records[1], InvalidRecord)
    assert "neither 'Linjebeløp' nor 'Betalt'" in records[1].errors[0]


# --- property test: parse(write(receipts)) == receipts -------------------------------------

_line = st.fixed_dictionaries(
    {
        "id": st.text("0123456789", min_size=1, max_size=6),
        "description": st.text(
            st.characters(codec="cp1252", exclude_characters='\r\n;"', exclude_categories=["Cc"]),
            min_size=1,
            max_size=20,
        )
        .map(str.strip)
        .filter(bool),
        "quantity": st.integers(1, 50),
        "gross": st.integers(-1_000_000, 10_000_000),
        "rate": st.sampled_from([0, 12, 15, 25]),
    }
)
_receipt = st.fixed_dictionaries(
    {
        "register": st.sampled_from(["1", "2", "K3"]),
        "number": st.integers(1, 99999).map(str),
        "at": st.datetimes(datetime(2000, 1, 1), datetime(2037, 12, 31)).map(
            # fold=0: an ambiguous autumn wall time is its first occurrence, as the parser
            # documents; hypothesis would otherwise draw fold=1 now and then.
            lambda moment: moment.replace(microsecond=0, fold=0)
        ),
        "lines": st.lists(_line, min_size=1, max_size=4),
    }
)


def _major(amount_minor: int) -> str:
    """Øre → '1 234,50' with a Norwegian thousands space and decimal comma."""
    sign = "-" if amount_minor < 0 else ""
    kroner, ore = divmod(abs(amount_minor), 100)
    return f"{sign}{kroner:,}".replace(",", " ") + f",{ore:02d}"


def _paid(receipt: dict[str, Any]) -> int:
    return sum(line["gross"] for line in receipt["lines"])


def write_csv(generated: list[dict[str, Any]], order: list[int]) -> bytes:
    """The test writer: one row per line plus one payment row, rows in the given order."""
    rows: list[str] = []
    for receipt in generated:
        stamp = receipt["at"].strftime("%d.%m.%Y %H:%M:%S")
        rows.extend(
            f"{receipt['number']};{stamp};{receipt['register']};{line['id']};"
            f"{line['description']};{line['quantity']};{line['rate']};"
            f"{_major(line['gross'])};;"
            for line in receipt["lines"]
        )
        rows.append(
            f"{receipt['number']};{stamp};{receipt['register']};;;;;;Kort;{_major(_paid(receipt))}"
        )
    header = (
        "Kvitteringsnr;Tidspunkt;Kasse;Varenr;Varetekst;Antall;MVA;Linjebeløp;Betalingsmåte;Betalt"
    )
    body = [rows[index] for index in order if index < len(rows)]
    return ("\r\n".join([header, *body]) + "\r\n").encode("cp1252")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_receipt, min_size=1, max_size=5, unique_by=lambda r: (r["register"], r["number"])),
    st.randoms(use_true_random=False),
)
def test_csv_property_parse_of_written_receipts_round_trips(
    generated: list[dict[str, Any]], random: Any
) -> None:
    """Whatever receipts a till writes, in any row order, the parser reads the same back."""
    row_count = sum(len(receipt["lines"]) + 1 for receipt in generated)
    order = list(range(row_count))
    random.shuffle(order)
    parsed = {
        data["receipt_id"]: data
        for data in receipts(run(write_csv(generated, order), make_source()))
    }
    assert len(parsed) == len(generated)
    for receipt in generated:
        data = parsed[f"sc029-{receipt['register']}-{receipt['number']}"]
        assert data["purchase_at"] == receipt["at"].replace(tzinfo=OSLO).isoformat()
        expected = sorted(line["gross"] for line in receipt["lines"])
        assert sorted(item["gross_amount"] for item in data["items"]) == expected
        assert {
            (i["id"], i["description"], i["quantity"], i["tax_percent"]) for i in data["items"]
        } == {
            # a negative amount is a return: its quantity is negative too (sign_convention auto)
            (
                line["id"],
                line["description"],
                -line["quantity"] if line["gross"] < 0 else line["quantity"],
                line["rate"],
            )
            for line in receipt["lines"]
        }
        for item in data["items"]:
            (tax,) = item["tax_lines"]
            assert tax["amount"] + tax["tax_basis"] == item["gross_amount"]
        assert data["gross_amount"] == sum(line["gross"] for line in receipt["lines"])
        assert data["payments"] == [
            {"line_id": 1, "amount": _paid(receipt), "type_id": "Kort", "token_type": "CARD"}
        ]


def test_csv_fractional_quantity_is_exact_decimal() -> None:
    """A weighed item's 0,425 kg stays exact; it is never turned into a float."""
    text = NORWEGIAN.replace(";2;15;119,80", ";0,425;15;119,80")
    first = receipts(run(text.encode("cp1252"), make_source()))[0]
    assert first["items"][1]["quantity"] == Decimal("0.425")


def test_csv_payment_repeated_on_every_line_row_rejects_receipt() -> None:
    """A payment written on each line row is not silently de-duplicated: totals say why."""
    text = (
        "Kvitteringsnr;Tidspunkt;Linjebeløp;Betalingsmåte;Betalt\n"
        "1;31.01.2026 10:00:00;10,00;Kort;30,00\n"
        "1;31.01.2026 10:00:00;20,00;Kort;30,00\n"
    )
    source = make_source(
        columns={"receipt_number": "Kvitteringsnr", "purchase_at": "Tidspunkt",
                 "item_gross_amount": "Linjebeløp", "payment_type": "Betalingsmåte",
                 "payment_amount": "Betalt"},
    )  # fmt: skip
    (record,) = run(text.encode("cp1252"), source)
    assert isinstance(record, InvalidRecord)
    assert "payments sum to 6000 but net_amount is 3000" in record.errors[0]


def test_csv_receipt_id_format_override_uses_register_and_number() -> None:
    """A source's receipt_id_format is applied by mapping from the parser's private keys."""
    source = CsvSource.model_validate(
        {**make_source().model_dump(), "receipt_id_format": "{register_id}/{number}"}
    )
    raw = run(NORWEGIAN.encode("cp1252"), source)[0]
    assert isinstance(raw, RawReceipt)
    finished = finish_receipt(raw, source)
    assert isinstance(finished, ValidReceipt)
    assert finished.receipt_id == "1/1001"


def test_csv_example_config_converts_its_bundled_sample() -> None:
    """config/examples/csv.yaml turns the bundled cp1252 sample into valid receipts only."""
    agent = load_config(REPO / "config" / "examples" / "csv.yaml")
    (source,) = agent.sources
    parser = get_parser(source.format)
    with (REPO / "receipt_agent" / "samples" / "csv" / "kvitteringer-cp1252.csv").open("rb") as f:
        records = list(parser(f, source))
    finished = [finish_receipt(r, source) for r in records if isinstance(r, RawReceipt)]
    assert len(finished) == len(records) == 4
    assert all(isinstance(r, ValidReceipt) for r in finished), finished
    assert [r.receipt_id for r in finished if isinstance(r, ValidReceipt)] == [
        "butikk-0417-1-5001",
        "butikk-0417-1-5002",
        "butikk-0417-2-5003",
        "butikk-0417-2-5004",
    ]


def test_csv_unreadable_row_raises_parse_error_with_line() -> None:
    """A field the csv module refuses (over its size limit) quarantines the file at its line."""
    text = NORWEGIAN + "1003;31.01.2026 14:09:00;1;1;" + "x" * 200_000 + ";1;25;10,00;;\r\n"
    with pytest.raises(ParseError) as caught:
        run(text.encode("cp1252"), make_source())
    assert caught.value.location == "line 6"
