"""Tracebacks in the JSON log carry frames but never frame locals (CONTRACT §6)."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import structlog

from receipt_agent import logs

CANARY = "kari.nordmann.canary@example.no"


def _fail_with_customer_data_in_a_local() -> None:
    body = f'[{{"customer": {{"email": "{CANARY}"}}}}]'  # as a sender frame holds a batch
    raise RuntimeError("the state store refused the write " + str(len(body)))


def _log_a_failed_job(log_file: Path, log_format: str) -> str:
    """Log `job.failed` with the traceback of a frame holding customer data; return the log."""
    logs.configure(file=str(log_file), format=log_format, level="info")
    try:
        try:
            _fail_with_customer_data_in_a_local()
        except RuntimeError:
            structlog.get_logger("receipt_agent").exception("job.failed", job="flush")
    finally:
        logs.configure(file="-", format="console", level="warning")  # closes the file handler
    return log_file.read_text()


def test_exception_line_has_frames_but_no_locals(tmp_path: Path) -> None:
    """An operator's log shows where a job failed, never the batch a frame was holding."""
    text = _log_a_failed_job(tmp_path / "agent.log", "json")
    line = orjson.loads(text.splitlines()[-1])
    frames = line["exception"][0]["frames"]
    assert frames[-1]["name"] == "_fail_with_customer_data_in_a_local"
    assert all("locals" not in frame for frame in frames)
    assert CANARY not in text


def test_expected_library_noise_is_dropped_but_other_library_warnings_stay(tmp_path: Path) -> None:
    """APScheduler's max-instances skip and watchdog's stop-time error never reach the log."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    logging.getLogger("apscheduler.scheduler").warning(
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
        "flush",
        1,
    )
    logging.getLogger("watchdog.observers.inotify").error(
        "InotifyEmitter.queue_events() called when the thread is inactive"
    )
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed by 0:01:00")
    logs.configure(file="-")  # close the file handler
    lines = [orjson.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["Run time of job was missed by 0:01:00"]


def test_console_format_traceback_has_no_locals(tmp_path: Path) -> None:
    """With `log.format: console` an operator's log shows the traceback, never frame locals."""
    text = _log_a_failed_job(tmp_path / "agent.log", "console")
    assert "job.failed" in text
    assert "_fail_with_customer_data_in_a_local" in text
    assert CANARY not in text
