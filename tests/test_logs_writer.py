"""Our events are written straight through the log handler: same lines, same file (CONTRACT §6)."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import orjson
import structlog

from receipt_agent import logs


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def test_event_and_library_warning_share_the_file_in_order(tmp_path: Path) -> None:
    """An operator reads our events and a library's warning in one file, in the order logged."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    try:
        log = structlog.get_logger("receipt_agent").bind(source="till-1", file="a.json")
        log.info("file.accepted", receipts=1, rejected=0)
        logging.getLogger("httpx").warning("a library warning")
        log.warning("file.quarantined", error="not JSON")
        log.debug("spool.ready")  # below the level: not written
    finally:
        logs.configure(file="-")  # closes the file handler
    lines = _lines(log_file)
    assert [line["event"] for line in lines] == [
        "file.accepted",
        "a library warning",
        "file.quarantined",
    ]
    assert lines[0] == {
        "source": "till-1",
        "file": "a.json",
        "receipts": 1,
        "rejected": 0,
        "event": "file.accepted",
        "level": "info",
        "timestamp": lines[0]["timestamp"],
    }
    assert str(lines[0]["timestamp"]).endswith("Z")
    assert lines[2]["level"] == "warning"


def test_renamed_log_file_is_followed_at_the_next_line(tmp_path: Path) -> None:
    """After logrotate renames agent.log, the very next event goes to a new agent.log."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    try:
        log = structlog.get_logger("receipt_agent")
        log.info("agent.started")
        log_file.rename(tmp_path / "agent.log.1")
        log.info("agent.stopping")
    finally:
        logs.configure(file="-")
    assert [line["event"] for line in _lines(tmp_path / "agent.log.1")] == ["agent.started"]
    assert [line["event"] for line in _lines(log_file)] == ["agent.stopping"]


def test_logger_bound_before_a_reconfigure_writes_to_the_new_file(tmp_path: Path) -> None:
    """A reload that moves `log.file` takes every later line, also from loggers bound before."""
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    logs.configure(file=str(first), format="json", level="info")
    try:
        log = structlog.get_logger("receipt_agent").bind(source="till-1")
        log.info("file.accepted")
        logs.configure(file=str(second), format="json", level="info")
        log.info("file.changed")
    finally:
        logs.configure(file="-")
    assert [line["event"] for line in _lines(first)] == ["file.accepted"]
    assert [line["event"] for line in _lines(second)] == ["file.changed"]


def test_batched_lines_are_written_together_at_the_end_of_the_block(tmp_path: Path) -> None:
    """A group's lines reach the file in one piece when its block ends, in order, none lost."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    other = threading.Thread(target=lambda: logs.bound(source="b").info("spool.missing"))
    try:
        with logs.batched():
            for name in ("1.json", "2.json"):
                logs.bound(source="a", file=name).info("file.accepted", receipts=1)
            with logs.batched():  # nested: written with the outer block
                logs.bound(source="a", file="3.json").warning("file.quarantined")
            logging.getLogger("httpx").warning("a library warning")  # not held
            other.start()
            other.join()  # another thread's line: not held either
            held = [line["event"] for line in _lines(log_file)]
        written = _lines(log_file)
    finally:
        logs.configure(file="-")
    assert held == ["a library warning", "spool.missing"]
    assert [(line["event"], line.get("file")) for line in written] == [
        ("a library warning", None),
        ("spool.missing", None),
        ("file.accepted", "1.json"),
        ("file.accepted", "2.json"),
        ("file.quarantined", "3.json"),
    ]
    assert [line["level"] for line in written[2:]] == ["info", "info", "warning"]


def test_batched_block_that_raises_still_writes_its_lines(tmp_path: Path) -> None:
    """An exception inside the block does not swallow the lines logged before it."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    try:
        with contextlib.suppress(RuntimeError), logs.batched():
            logs.bound(source="a", file="1.json").info("file.accepted")
            raise RuntimeError("move failed")
        logs.bound(source="a", file="2.json").info("file.accepted")  # not held any more
    finally:
        logs.configure(file="-")
    assert [line["file"] for line in _lines(log_file)] == ["1.json", "2.json"]
