"""Our log lines keep their exact bytes through the cheaper per-line path (CONTRACT §6)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import time_machine
from hypothesis import example, given
from hypothesis import strategies as st

from receipt_agent import logs

# The redaction as it was written before its fast check: the reference the fast one must
# equal, value for value.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _reference_redact(event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if key.lower() in logs._SECRET_KEYS:
            event_dict[key] = logs.REDACTED
        else:
            value = event_dict[key]
            if isinstance(value, str) and key != "event" and re.search(r"[@\s]", value):
                event_dict[key] = _EMAIL.sub(logs.REDACTED, _BEARER.sub(logs.REDACTED, value))
    return event_dict


def _stock_processors() -> list[Any]:
    """The JSON chain as configured before the per-line shortcuts, from structlog's own parts."""

    def reference_redact(_: Any, __: str, event_dict: Any) -> Any:
        return _reference_redact(event_dict)

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        reference_redact,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.JSONRenderer(serializer=logs._orjson_dumps),
    ]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "agent.log"
    logs.configure(file=str(path), format="json", level="info")
    yield path
    logs.configure(file="-")  # closes the file handler


@pytest.mark.parametrize(
    "ns",
    [
        1_796_032_800_000_000_000,  # a whole second: isoformat() leaves the fraction out
        1_796_032_800_000_000_999,  # under a microsecond: still whole
        1_796_032_800_000_001_000,
        1_796_032_859_999_999_999,  # truncated, never rounded up into the next second
        1_796_032_860_123_456_789,  # the next minute: the cached second is replaced
        0,
    ],
)
def test_timestamp_is_written_as_datetime_isoformat_wrote_it(ns: int) -> None:
    """Each line's `timestamp` is UTC ISO-8601 with `Z`, microseconds only when not zero."""
    seconds, rest = divmod(ns, 1_000_000_000)
    expected = (
        datetime.fromtimestamp(seconds, UTC)
        .replace(microsecond=rest // 1000)
        .isoformat()
        .replace("+00:00", "Z")
    )
    assert logs.iso_utc(ns) == expected
    assert logs.iso_utc(ns) == expected  # the second time from the cached second


def test_same_second_different_microseconds_share_the_prefix_but_not_the_fraction() -> None:
    """Two lines in one second differ in their fraction, and a whole second has none."""
    base = 1_796_032_800 * 1_000_000_000
    assert logs.iso_utc(base + 250_000_000) == "2026-11-30T10:00:00.250000Z"
    assert logs.iso_utc(base) == "2026-11-30T10:00:00Z"
    assert logs.iso_utc(base + 1_000) == "2026-11-30T10:00:00.000001Z"


_PIECES = [*"abcAB019.-_@+%:/= ", "\t", "\n", "\x1c", "\u2003", "\xa0"]
_PIECES += ["Bearer ", "basic\t", "bearer\u2003"]  # whitespace but no space or "@"
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@example(values={"error": "basic\tabcdefghijkl"})
@example(values={"note": "bearer\u2003abcdefghijkl kari@example.no"})
@given(
    values=st.dictionaries(
        st.sampled_from(["file", "error", "source", "Token", "EMAIL", "note", "Client_Secret"]),
        st.one_of(_TEXT, st.integers(), st.none()),
        max_size=5,
    )
)
def test_redaction_masks_exactly_what_the_regex_check_masked(values: dict[str, Any]) -> None:
    """Every value, whitespace and e-mail lookalikes too, is masked as the old check masked it."""
    event = {**values, "event": "file.quarantined", "level": "warning", "timestamp": "t"}
    assert logs.redact(None, "warning", dict(event)) == _reference_redact(dict(event))


def test_keys_checked_without_lower_are_none_of_the_secret_keys() -> None:
    """No key that skips the secret-key lookup could ever hold a secret or personal data."""
    for key in logs._PLAIN_KEYS | logs._OWN_KEYS:
        assert key == key.lower()
        assert key not in logs._SECRET_KEYS


def test_file_accepted_line_has_the_bytes_of_the_stock_chain(log_file: Path) -> None:
    """A canonical line and an exception line are the bytes structlog's own processors wrote."""
    skipped = {"non_sale": 0, "training": 0, "voided": 0}
    with time_machine.travel(datetime(2026, 11, 30, 10, 0, 0, 123_456, tzinfo=UTC), tick=False):
        log = logs.bound(source="till-1", file="z-1.json")
        log.info("file.accepted", receipts=1, rejected=0, duplicates=0, skipped=skipped)
        log.warning("file.quarantined", error="mail kari@example.no; Bearer abcdefghijk")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("intake.failed")
        log.info("file.changed", size_bytes=3, stack_info=False)
        written = log_file.read_text().splitlines()

        stock = structlog.wrap_logger(
            _CollectingLogger(), processors=_stock_processors(), context_class=dict
        ).bind(source="till-1", file="z-1.json")
        stock.info("file.accepted", receipts=1, rejected=0, duplicates=0, skipped=skipped)
        stock.warning("file.quarantined", error="mail kari@example.no; Bearer abcdefghijk")
        try:
            raise ValueError("boom")
        except ValueError:
            stock.exception("intake.failed")
        stock.info("file.changed", size_bytes=3, stack_info=False)
    expected = stock._logger.lines
    assert written[0] == expected[0]
    assert written[0].endswith('"level":"info","timestamp":"2026-11-30T10:00:00.123456Z"}')
    assert written[1] == expected[1]
    assert "[redacted]" in written[1]
    # The traceback's line numbers differ (two raise sites); everything else is the same.
    assert re.sub(r'"lineno":\d+', "", written[2]) == re.sub(r'"lineno":\d+', "", expected[2])
    assert written[3] == expected[3]


class _CollectingLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def msg(self, line: str) -> None:
        self.lines.append(line)

    info = warning = error = exception = msg


def test_bound_logger_follows_capture_logs_and_a_new_level(log_file: Path) -> None:
    """A per-file logger honours a test's capture, then a reload that raises the level."""
    logs.bound(source="till-1").info("file.accepted")  # built and kept for this configuration
    with structlog.testing.capture_logs() as captured:
        logs.bound(source="till-1", file="a.json").info("file.accepted", receipts=1)
    assert captured == [
        {"source": "till-1", "file": "a.json", "receipts": 1, "event": "file.accepted",
         "log_level": "info"},
    ]  # fmt: skip
    logs.configure(file=str(log_file), format="json", level="warning")
    logs.bound(source="till-1").info("file.accepted")  # below the new level
    logs.bound(source="till-1").warning("file.quarantined")
    events = [line for line in log_file.read_text().splitlines() if "till-1" in line]
    assert len(events) == 2
    assert '"event":"file.quarantined"' in events[1]


def test_bound_logger_under_another_configuration_is_bound_the_usual_way() -> None:
    """Outside our configuration (a library user's own), the logger is structlog's usual one."""
    records: list[MutableMapping[str, Any]] = []

    def keep(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
        records.append(dict(event_dict))
        return ""

    previous = structlog.get_config()
    structlog.configure(
        processors=[keep],
        logger_factory=structlog.ReturnLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    try:
        logs.bound(source="till-1").info("file.accepted")
    finally:
        structlog.configure(**previous)
    assert records == [{"source": "till-1", "event": "file.accepted"}]


_LINE_TEXT = st.lists(st.sampled_from([*_PIECES, '"', "\\", "kari@example.no"]), max_size=12).map(
    "".join
)


@example(values={"file": "kari@example.no"})  # an e-mail: no whitespace, no escape
@example(values={"error": "basic\tabcdefghijkl"})  # whitespace the line shows escaped
@example(values={"note": "bearer\x1cabcdefghijkl"})  # whitespace to str.split and re, escaped
@example(values={"Token": "abc"})  # a secret key, however plain its value
@example(values={"error": 'quote " then basic\tabcdefghijkl'})
@example(values={"file": "a\\b.json", "note": "bearer abcdefghijkl"})
@given(
    values=st.dictionaries(
        st.sampled_from(["file", "error", "store_id", "receipt_id", "Token", "note", "count"]),
        st.one_of(
            _LINE_TEXT,
            st.integers(),
            st.none(),
            st.dictionaries(st.sampled_from(["a", "b"]), _LINE_TEXT, max_size=2),
        ),
        max_size=4,
    )
)
def test_configured_chain_writes_the_stock_chains_line_for_any_values(
    values: dict[str, Any],
) -> None:
    """Redaction checked once on the rendered line leaves exactly what the stock chain wrote."""
    logs.configure(file="-", format="json", level="info")
    ours, stock = structlog.get_config()["processors"], _stock_processors()
    lines = []
    with time_machine.travel(datetime(2026, 11, 30, 10, 0, 0, 5, tzinfo=UTC), tick=False):
        for chain in (ours, stock):
            event: Any = {"source": "till-1", **values, "event": "file.accepted"}
            for processor in chain:
                event = processor(None, "warning", event)
            lines.append(event)
    assert lines[0] == lines[1]
