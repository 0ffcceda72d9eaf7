"""Format registry: a source's `format:` value → its parser (CONTRACT §2, §3 step 2).

A parser is a pure function `(stream, source) → iterator of records`:

- `stream` is a binary file object the intake opened safely (no symlink, size checked);
  parsers read it as a stream and never hold a whole large export in memory.
- `source` is the source's config (store defaults, currency, timezone, mapping).
- It yields, in file order, one record per transaction found:
  - `RawReceipt`: a Dintero-shaped dict (amounts already int minor units, `purchase_at`
    ISO-8601 with offset, `store.id` and `receipt_id` set where the format builds them);
    `mapping.finish_receipt` then merges store defaults and validates it.
  - `InvalidRecord`: a transaction that cannot become a receipt (does not add up, amount
    finer than the minor unit, …); it is stored `rejected` with its message.
  - `SkippedRecord`: a transaction that is not a receipt (non_sale, training, voided).
- It raises `ParseError` (with a location) when the file cannot be parsed at all; the
  intake then quarantines the whole file, and records yielded before are discarded.

Parsers do no filesystem, database, HTTP or logging work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO

from receipt_agent.config import SourceBase
from receipt_agent.records import InvalidRecord, RawReceipt, Record, SkippedRecord, SkipReason

Parser = Callable[[IO[bytes], SourceBase], Iterator[Record]]


# `format:` values whose file, cut after any line, still parses as a smaller whole: a CSV
# till often appends a receipt's lines one by one, closing the file after each, so its
# writer closing it does not prove it complete (the spool waits out `settle` unless it was
# renamed in). Half a JSON or XML export does not parse.
CUT_FILE_PARSES: frozenset[str] = frozenset({"csv"})


# `format:` value → its parser, once imported: intake asks once per file, and a
# function-level import is a trip through the import machinery each time.
_PARSERS: dict[str, Parser] = {}


def get_parser(format_name: str) -> Parser:
    """Given a `format:` value, return its parser (imported lazily, XML stacks are heavy)."""
    parser = _PARSERS.get(format_name)
    if parser is None:
        parser = _PARSERS[format_name] = _import_parser(format_name)
    return parser


def _import_parser(format_name: str) -> Parser:
    if format_name == "dintero-json":
        from receipt_agent.formats.dintero_json import parse as parse_dintero_json

        return parse_dintero_json
    if format_name == "csv":
        from receipt_agent.formats.csv_export import parse as parse_csv

        return parse_csv
    if format_name == "saft-cashregister":
        from receipt_agent.formats.saft import parse as parse_saft

        return parse_saft
    if format_name == "poslog":
        from receipt_agent.formats.poslog import parse as parse_poslog

        return parse_poslog
    raise KeyError(format_name)


__all__ = [
    "CUT_FILE_PARSES",
    "InvalidRecord",
    "Parser",
    "RawReceipt",
    "Record",
    "SkipReason",
    "SkippedRecord",
    "get_parser",
]
