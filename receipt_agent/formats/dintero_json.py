"""`format: dintero-json`: files that already hold receipts in Dintero's shape (CONTRACT §2).

A file holds one of:
- one receipt object (`{…}`), yielded with location `""`;
- a JSON array of receipt objects (`[{…}, …]`), each yielded with location `[3]`;
- NDJSON, one receipt object per line, each yielded with location `line 7`. Blank lines
  are ignored. A file whose only content is one object on one line is a single object.

UTF-8, with or without a BOM. The till's JSON is passed through unchanged, `receipt_id` as
given; `mapping.finish_receipt` merges the store defaults, validates and checks the
invariants every receipt keeps. One exception (CONTRACT §3): a `purchase_at` or
`transaction_date` written as local wall-clock time without an offset is read in the
source's `timezone` and sent with its offset (the autumn fold reads as the first
occurrence; a time in the spring gap moves forward to the wall time that instant had,
as SAF-T does).

What the operator gets:
- `ParseError` (the file is quarantined) when the file as a whole cannot be read: empty,
  not UTF-8, not JSON, truncated, nested deeper than orjson's 1024 levels, a JSON string
  or number instead of receipts, or an NDJSON line that is not complete JSON. Locations
  are `line 3, column 17` (single document) or `line 7` (NDJSON).
- `InvalidRecord` for an array element or NDJSON line that is valid JSON but not an
  object; the other receipts in the file go on.

Pure: reads only the stream it is given (at most the source's `max_file_size`), no
filesystem, no logging. Never puts the file's content into a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

from receipt_agent.config import SourceBase
from receipt_agent.errors import ParseError, UnsafeFileError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 LE/BE (and the UTF-32 ones begin alike)
_WHITESPACE = b" \t\r\n"
_CHUNK = 1 << 16  # bytes a read asks for at a time
_SHAPES = "one receipt object, an array of receipt objects, or one receipt object per line"


def parse(stream: IO[bytes], source: SourceBase) -> Iterator[Record]:
    """Given a dintero-json export, yield one record per receipt in file order.

    Raise ParseError when the file cannot be parsed at all, UnsafeFileError when it is
    larger than the source's `max_file_size` (the intake normally stops it first).
    """
    limit = source.size_limit_bytes
    raw = _read_at_most(stream, limit + 1)
    if len(raw) > limit:
        raise UnsafeFileError(
            f"the file is larger than max_file_size ({limit} bytes); "
            "export smaller files or raise sources[].max_file_size"
        )
    tz = source.tz  # a ZoneInfo cache lookup: once per file, not once per receipt
    yield from _records(raw, tz)


def _read_at_most(stream: IO[bytes], most: int) -> bytes:
    """Read `stream` to its end or to `most` bytes, whichever comes first.

    In chunks: `read(most)` would allocate (and give back) a buffer of the whole limit
    (50 MB by default) for every file, ~55 µs each for a file of one receipt.
    """
    chunks: list[bytes] = []
    left = most
    while left > 0 and (chunk := stream.read(min(_CHUNK, left))):
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# The locations of an array's first elements, written once ("[3]"), not once per receipt.
_INDEXED = 1024
_INDEXES = tuple(f"[{index}]" for index in range(_INDEXED))
_BOTH_TIMES = ("purchase_at", "transaction_date")
_PURCHASE_AT = ("purchase_at",)


def _localize(data: dict[str, Any], tz: ZoneInfo) -> None:
    """Local times without an offset → the source's timezone (module docstring)."""
    for key in _BOTH_TIMES if "transaction_date" in data else _PURCHASE_AT:
        written = data.get(key)
        if not isinstance(written, str) or len(written) <= len("YYYY-MM-DD"):  # a date alone
            continue
        if written.find("+", 11) > 0 or written.find("-", 11) > 0 or written.endswith("Z"):
            # Written with an offset (the common case), known without parsing it: every
            # date form `fromisoformat` reads is at most 10 characters, so from index 11 on
            # this is the time, and a time holding +, - or a final Z reads as aware (or
            # not at all, which validation names).
            continue
        try:
            moment = datetime.fromisoformat(written)
        except ValueError:
            continue  # validation names it
        if moment.tzinfo is None:
            local = moment.replace(tzinfo=tz, fold=0)
            data[key] = local.astimezone(UTC).astimezone(tz).isoformat()


def _records(raw: bytes, tz: ZoneInfo) -> Iterator[Record]:
    """The file's records, each receipt's local times read in `tz` (`_localize`)."""
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    elif raw.startswith(_OTHER_BOMS):
        raise ParseError(
            "the file is UTF-16 or UTF-32, not UTF-8; set the till's export encoding to UTF-8",
            location="line 1, column 1",
        )
    _check_utf8(raw)
    start = len(raw) - len(raw.lstrip(_WHITESPACE))
    if start == len(raw):
        raise ParseError(
            f"the file is empty; a dintero-json file holds {_SHAPES}",
            location="line 1, column 1",
        )
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if raw[start : start + 1] == b"{" and error.msg == "unexpected content after document":
            yield from _ndjson(raw, tz)
            return
        raise ParseError(
            _json_problem(error.msg), location=f"line {error.lineno}, column {error.colno}"
        ) from None
    if isinstance(document, dict):
        _localize(document, tz)
        yield RawReceipt(document, "")
    elif isinstance(document, list):
        for index, element in enumerate(document):
            if isinstance(element, dict):  # _record's receipt, without its frame
                _localize(element, tz)
                yield RawReceipt(element, _INDEXES[index] if index < _INDEXED else f"[{index}]")
            else:
                yield _record(element, f"[{index}]", "each element of the array")
    else:
        line, column = _line_column(raw, start)
        raise ParseError(
            f"the file holds {_kind(document)}, not receipts; it must hold {_SHAPES}",
            location=f"line {line}, column {column}",
        )


def _ndjson(raw: bytes, tz: ZoneInfo) -> Iterator[Record]:
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip(_WHITESPACE):
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise ParseError(
                f"column {error.colno}: {_json_problem(error.msg)}; in NDJSON each line "
                "must hold one complete receipt object",
                location=f"line {number}",
            ) from None
        record = _record(value, f"line {number}", "each line")
        if isinstance(record, RawReceipt):
            _localize(record.data, tz)
        yield record


def _record(value: Any, location: str, unit: str) -> Record:
    if isinstance(value, dict):
        return RawReceipt(data=value, location=location)
    return InvalidRecord(
        location=location,
        errors=[f"expected a receipt object but found {_kind(value)}; {unit} must be one receipt"],
    )


def _check_utf8(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw, error.start)
        raise ParseError(
            f"the file is not valid UTF-8 (byte 0x{raw[error.start]:02X}); export it as "
            "UTF-8 (a byte like 0xE6 or 0xF8 means the till wrote cp1252/latin-1)",
            location=f"line {line}, column {column}",
        ) from None


def _json_problem(message: str) -> str:
    if message == "unexpected end of data":
        return (
            "the JSON ends before it is complete (a truncated file?); "
            "export the file again and copy it only when the till has finished writing"
        )
    if message == "depth limit exceeded":
        return "brackets are nested deeper than 1024 levels; this is not a receipt export"
    if "empty" in message:
        return f"the file is empty; a dintero-json file holds {_SHAPES}"
    return f"not valid JSON ({message}); fix the export so that it is valid JSON"


def _line_column(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and byte column of a byte offset."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
