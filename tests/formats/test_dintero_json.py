"""Tests of formats/dintero_json.py on real files: shapes, BOM, NDJSON and hostile input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from receipt_agent.config import DinteroJsonSource, SourceBase
from receipt_agent.errors import ParseError, UnsafeFileError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, get_parser
from receipt_agent.formats.dintero_json import parse
from receipt_agent.mapping import ValidReceipt, finish_receipt

EXAMPLE = Path(__file__).parent.parent / "data" / "dintero" / "example.post-receipts.request.json"
BOM = b"\xef\xbb\xbf"


def make_source(tmp_path: Path, **overrides: Any) -> SourceBase:
    settings: dict[str, Any] = {
        "name": "till-1",
        "path": tmp_path,
        "format": "dintero-json",
        "store": {"id": "sc029"},
    }
    settings.update(overrides)
    return DinteroJsonSource.model_validate(settings)


def parse_file(tmp_path: Path, content: bytes, **overrides: Any) -> list[Record]:
    path = tmp_path / "export.json"
    path.write_bytes(content)
    with path.open("rb") as stream:
        return list(parse(stream, make_source(tmp_path, **overrides)))


def parse_error(tmp_path: Path, content: bytes) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_file(tmp_path, content)
    return caught.value


def receipt(number: int) -> dict[str, Any]:
    return {
        "store": {"id": "sc029"},
        "receipt_id": str(number),
        "purchase_at": "2021-03-30T10:40:00+01:00",
    }


def summary(records: list[Record]) -> list[tuple[str, str]]:
    return [(type(record).__name__, record.location) for record in records]


# --- the three shapes -----------------------------------------------------------------------


def test_parse_single_object_yields_one_receipt_without_location(tmp_path: Path) -> None:
    """A file holding one receipt object gives one receipt, located by the file alone."""
    records = parse_file(tmp_path, orjson.dumps(receipt(1), option=orjson.OPT_INDENT_2))
    assert records == [RawReceipt(data=receipt(1), location="")]


def test_parse_array_yields_receipts_located_by_index(tmp_path: Path) -> None:
    """A file holding an array gives each receipt with its index, [0], [1], …."""
    records = parse_file(tmp_path, orjson.dumps([receipt(1), receipt(2), receipt(3)]))
    assert records == [RawReceipt(receipt(n + 1), f"[{n}]") for n in range(3)]


def test_parse_empty_array_yields_nothing(tmp_path: Path) -> None:
    """An export with an empty array holds no receipts and is not an error."""
    assert parse_file(tmp_path, b"[]\n") == []


def test_parse_ndjson_yields_receipts_located_by_line(tmp_path: Path) -> None:
    """NDJSON gives one receipt per line, named by line number; blank lines and CRLF are fine."""
    content = b"\r\n".join(
        [orjson.dumps(receipt(1)), b"", orjson.dumps(receipt(2)), b"  ", orjson.dumps(receipt(3))]
    )
    records = parse_file(tmp_path, content + b"\r\n")
    assert records == [
        RawReceipt(receipt(1), "line 1"),
        RawReceipt(receipt(2), "line 3"),
        RawReceipt(receipt(3), "line 5"),
    ]


def test_parse_through_registry_uses_this_parser(tmp_path: Path) -> None:
    """`format: dintero-json` resolves to this parser."""
    assert get_parser("dintero-json") is parse


@pytest.mark.parametrize(
    ("content", "locations"),
    [
        (orjson.dumps(receipt(1)), [""]),
        (orjson.dumps([receipt(1), receipt(2)]), ["[0]", "[1]"]),
        (orjson.dumps(receipt(1)) + b"\n" + orjson.dumps(receipt(2)), ["line 1", "line 2"]),
    ],
)
def test_parse_with_utf8_bom_reads_every_shape(
    tmp_path: Path, content: bytes, locations: list[str]
) -> None:
    """A UTF-8 byte-order mark in front of any of the three shapes is ignored."""
    records = parse_file(tmp_path, BOM + content)
    assert [record.location for record in records] == locations
    assert all(isinstance(record, RawReceipt) for record in records)


def test_parse_keeps_non_ascii_text(tmp_path: Path) -> None:
    """Norwegian letters in a UTF-8 export arrive unchanged."""
    data = dict(receipt(1), comment="Kunden ønsker mer for info, æøå ÆØÅ")
    records = parse_file(tmp_path, BOM + orjson.dumps(data))
    assert records == [RawReceipt(data, "")]


# --- elements that are not receipts ---------------------------------------------------------


def test_parse_array_element_not_an_object_is_invalid_and_others_go_on(tmp_path: Path) -> None:
    """An array element that is not an object is rejected alone; the receipts around it go on."""
    content = b"[" + orjson.dumps(receipt(1)) + b', "714118", ' + orjson.dumps(receipt(3)) + b"]"
    records = parse_file(tmp_path, content)
    assert summary(records) == [
        ("RawReceipt", "[0]"),
        ("InvalidRecord", "[1]"),
        ("RawReceipt", "[2]"),
    ]
    bad = records[1]
    assert isinstance(bad, InvalidRecord)
    assert bad.errors == [
        "expected a receipt object but found a string; "
        "each element of the array must be one receipt"
    ]


def test_parse_ndjson_line_not_an_object_is_invalid_and_others_go_on(tmp_path: Path) -> None:
    """An NDJSON line holding an array or number is rejected alone, named by its line."""
    content = orjson.dumps(receipt(1)) + b"\n[1, 2]\n42\n" + orjson.dumps(receipt(4)) + b"\n"
    records = parse_file(tmp_path, content)
    assert summary(records) == [
        ("RawReceipt", "line 1"),
        ("InvalidRecord", "line 2"),
        ("InvalidRecord", "line 3"),
        ("RawReceipt", "line 4"),
    ]
    assert isinstance(records[1], InvalidRecord)
    assert "found an array; each line must be one receipt" in records[1].errors[0]


# --- files that cannot be parsed ------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"   \n\n", BOM, BOM + b"\r\n"])
def test_parse_empty_file_raises_parse_error(tmp_path: Path, content: bytes) -> None:
    """An empty (or whitespace-only) file is quarantined as empty, located at line 1."""
    error = parse_error(tmp_path, content)
    assert error.location == "line 1, column 1"
    assert "the file is empty" in str(error)


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b'"714118"', "a string"), (b"\n  42", "a number"), (b"null", "null"), (b"true", "a boolean")],
)
def test_parse_scalar_instead_of_receipts_raises_parse_error(
    tmp_path: Path, content: bytes, kind: str
) -> None:
    """A file holding a JSON string or number instead of receipts says what it holds and where."""
    error = parse_error(tmp_path, content)
    assert f"the file holds {kind}, not receipts" in str(error)
    assert error.location is not None
    assert error.location.startswith("line ")


def test_parse_invalid_utf8_raises_parse_error_at_the_byte(tmp_path: Path) -> None:
    """A cp1252 export (ø as byte 0xF8) is quarantined with the line and column of that byte."""
    content = b'{\n  "store": {"id": "sc029"},\n  "comment": "Kunden \xf8nsker"\n}'
    error = parse_error(tmp_path, content)
    assert error.location == "line 3, column 22"
    assert "not valid UTF-8 (byte 0xF8)" in str(error)
    assert "Kunden" not in str(error)


def test_parse_utf16_file_raises_parse_error(tmp_path: Path) -> None:
    """A UTF-16 export is quarantined with a request to export UTF-8."""
    error = parse_error(tmp_path, '{"receipt_id": "1"}'.encode("utf-16"))
    assert "UTF-16" in str(error)


def test_parse_truncated_array_raises_parse_error_with_line_and_column(tmp_path: Path) -> None:
    """A file cut off mid-array is quarantined as truncated, with where the data ends."""
    content = orjson.dumps([receipt(1), receipt(2)], option=orjson.OPT_INDENT_2)[:-30]
    error = parse_error(tmp_path, content)
    assert error.location is not None
    assert error.location.startswith("line ")
    assert ", column " in error.location
    assert "truncated" in str(error)


def test_parse_truncated_single_object_raises_parse_error(tmp_path: Path) -> None:
    """A single receipt object cut off before its closing brace is quarantined as truncated."""
    error = parse_error(tmp_path, orjson.dumps(receipt(1))[:-1])
    assert "truncated" in str(error)


def test_parse_truncated_ndjson_line_raises_parse_error_naming_the_line(tmp_path: Path) -> None:
    """An NDJSON file whose last line is cut off is quarantined, naming that line."""
    content = orjson.dumps(receipt(1)) + b"\n" + orjson.dumps(receipt(2))[:-5]
    error = parse_error(tmp_path, content)
    assert error.location == "line 2"
    assert "truncated" in str(error)
    assert "one complete receipt object" in str(error)


def test_parse_invalid_json_syntax_raises_parse_error(tmp_path: Path) -> None:
    """JSON with a syntax error is quarantined with the line and column of the mistake."""
    error = parse_error(tmp_path, b'[\n  {"receipt_id": "1",}\n]')
    assert error.location == "line 2, column 21"  # the trailing comma
    assert "not valid JSON" in str(error)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000,
        orjson.dumps(receipt(1)) + b"\n" + b"[" * 100_000,
    ],
)
def test_parse_deeply_nested_brackets_raise_parse_error_not_crash(
    tmp_path: Path, content: bytes
) -> None:
    """100,000 nested brackets are quarantined as too deep; the agent does not crash."""
    error = parse_error(tmp_path, content)
    assert "nested deeper than 1024 levels" in str(error)


def test_parse_file_over_size_limit_raises_unsafe_file_error(tmp_path: Path) -> None:
    """A file larger than max_file_size is refused even if the intake missed it."""
    with pytest.raises(UnsafeFileError, match="larger than max_file_size"):
        parse_file(tmp_path, b"[" + b" " * 2000 + b"]", max_file_size=1024)


@pytest.mark.parametrize(("size", "refused"), [(204_800, False), (204_801, True)])
def test_parse_reads_a_file_of_many_chunks_up_to_the_limit_exactly(
    tmp_path: Path, size: int, refused: bool
) -> None:
    """A 200 KiB file (several read chunks) at max_file_size parses; one byte more is refused."""
    body = orjson.dumps([receipt(1), receipt(2)])
    content = body[:-1] + b" " * (size - len(body)) + b"]"
    assert len(content) == size
    if refused:
        with pytest.raises(UnsafeFileError, match="larger than max_file_size"):
            parse_file(tmp_path, content, max_file_size=204_800)
    else:
        records = parse_file(tmp_path, content, max_file_size=204_800)
        assert [r.data["receipt_id"] for r in records] == ["1", "2"]  # type: ignore[union-attr]


def test_parse_error_messages_never_contain_file_content(tmp_path: Path) -> None:
    """A broken file's error names a place, not the customer data around it."""
    content = b'[{"customer": {"first_name": "CANARY", "phone_number": "+4799999999"}'
    error = parse_error(tmp_path, content)
    assert "CANARY" not in str(error)
    assert "4799999999" not in str(error)


# --- through mapping ------------------------------------------------------------------------


def test_parse_documented_example_is_read_whole_and_held_to_the_invariants(
    tmp_path: Path,
) -> None:
    """Dintero's documented request body, dropped in as a file, is read exactly as written;
    its generated amounts contradict each other, so it is rejected, never sent."""
    records = parse_file(tmp_path, EXAMPLE.read_bytes())
    assert [record.location for record in records] == ["[0]"]
    assert isinstance(records[0], RawReceipt)
    assert records[0].data == orjson.loads(EXAMPLE.read_bytes())[0]
    result = finish_receipt(records[0], make_source(tmp_path))
    assert isinstance(result, InvalidRecord)
    assert result.errors
    assert all("invariant" in error for error in result.errors)


# --- local times without an offset (CONTRACT §3) ----------------------------------------------


def _purchase_at(tmp_path: Path, written: str, timezone: str = "Europe/Oslo") -> object:
    content = orjson.dumps({**receipt(1), "purchase_at": written})
    (record,) = parse_file(tmp_path, content, timezone=timezone)
    assert isinstance(record, RawReceipt)
    return record.data["purchase_at"]


def test_parse_purchase_at_without_offset_is_read_in_the_source_timezone(tmp_path: Path) -> None:
    """A till writing local time: winter +01:00, summer +02:00, Helsinki +02:00; before, such a
    receipt was refused ("the date-time has no offset")."""
    assert _purchase_at(tmp_path, "2026-01-15T12:00:00") == "2026-01-15T12:00:00+01:00"
    assert _purchase_at(tmp_path, "2026-07-15 12:00:00") == "2026-07-15T12:00:00+02:00"
    helsinki = _purchase_at(tmp_path, "2026-01-15T12:00:00", "Europe/Helsinki")
    assert helsinki == "2026-01-15T12:00:00+02:00"
    content = orjson.dumps({**receipt(1), "purchase_at": "2026-01-15T12:00:00"})
    (record,) = parse_file(tmp_path, content)
    assert isinstance(record, RawReceipt)
    assert isinstance(finish_receipt(record, make_source(tmp_path)), ValidReceipt)


def test_parse_purchase_at_dst_fold_and_gap_are_decided(tmp_path: Path) -> None:
    """Autumn 02:30 happens twice: the first (+02:00); spring 02:30 never happens: 03:30+02:00."""
    assert _purchase_at(tmp_path, "2026-10-25T02:30:00") == "2026-10-25T02:30:00+02:00"
    assert _purchase_at(tmp_path, "2026-03-29T02:30:00") == "2026-03-29T03:30:00+02:00"


def test_parse_purchase_at_with_offset_or_a_date_alone_is_left_as_written(tmp_path: Path) -> None:
    """An explicit offset or Z wins; a bare date is not a time and is left for validation."""
    assert _purchase_at(tmp_path, "2026-01-15T12:00:00Z") == "2026-01-15T12:00:00Z"
    assert _purchase_at(tmp_path, "2026-01-15T12:00:00-05:00") == "2026-01-15T12:00:00-05:00"
    assert _purchase_at(tmp_path, "2026-01-15") == "2026-01-15"


def test_parse_purchase_at_offset_is_told_from_a_date_separator(tmp_path: Path) -> None:
    """The offset is looked for in the time only: `2026-01-15-12:00` (a date, `-`, a local
    time, as `fromisoformat` reads it) is local; `+01` and a compact date keep their offset."""
    assert _purchase_at(tmp_path, "2026-01-15-12:00") == "2026-01-15T12:00:00+01:00"
    assert _purchase_at(tmp_path, "20260115T1200+01") == "20260115T1200+01"
    assert _purchase_at(tmp_path, "20260115T120000") == "2026-01-15T12:00:00+01:00"
