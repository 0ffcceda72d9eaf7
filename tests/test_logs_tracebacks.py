"""Tracebacks in the JSON log carry frames but never frame locals (CONTRACT §6)."""

from __future__ import annotations

from pathlib import Path

import orjson
import structlog

from receipt_agent import logs

CANARY = "kari.nordmann.canary@example.no"


def _fail_with_customer_data_in_a_local() -> None:
    body = f'[{{"customer": {{"email": "{CANARY}"}}}}]'  # as a sender frame holds a batch
    raise RuntimeError("the state store refused the write " + str(len(body)))


def test_exception_line_has_frames_but_no_locals(tmp_path: Path) -> None:
    """An operator's log shows where a job failed, never the batch a frame was holding."""
    log_file = tmp_path / "agent.log"
    logs.configure(file=str(log_file), format="json", level="info")
    try:
        try:
            _fail_with_customer_data_in_a_local()
        except RuntimeError:
            structlog.get_logger("receipt_agent").exception("job.failed", job="flush")
    finally:
        logs.configure(file="-", format="console", level="warning")  # closes the file handler
    text = log_file.read_text()
    line = orjson.loads(text.splitlines()[-1])
    frames = line["exception"][0]["frames"]
    assert frames[-1]["name"] == "_fail_with_customer_data_in_a_local"
    assert all("locals" not in frame for frame in frames)
    assert CANARY not in text
