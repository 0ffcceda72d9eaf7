"""End to end: tills that close the file between writes (the daemon against the sandbox).

A file its writer closed is taken in at once; one that does not parse yet is left in the
spool until unchanged for `settle` (CONTRACT §3's settled), and read again when its writer
closes it again. Tills that write a file in pieces and close it between them are common;
before, the first piece alone was quarantined at once.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import ACCOUNT, base_config, events, make_receipt, start_agent, stop_agent, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

SETTLE_S = 3.0  # far longer than the pauses below, even on a loaded machine
PAUSE_S = 0.2


@pytest.fixture
def daemon(
    tmp_path: Path,
    sandbox: Sandbox,
    spool_dir: Path,
    state_dir: Path,
    secret_file: Path,
    write_config: Callable[..., Path],
) -> Iterator[subprocess.Popen[str]]:
    raw: dict[str, Any] = base_config(
        base_url=sandbox.base_url, spool_dir=spool_dir, state_dir=state_dir,
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    raw["sources"][0]["settle"] = f"{SETTLE_S}s"
    process = start_agent(write_config(raw))
    wait_until(lambda: events(tmp_path / "agent.log", "agent.started"))
    yield process
    assert stop_agent(process, timeout=40)[0] == 0


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:  # opened, written, closed: one IN_CLOSE_WRITE each
        handle.write(data)


def test_a_file_written_in_two_halves_with_a_close_between_is_not_quarantined(
    daemon: subprocess.Popen[str], tmp_path: Path, spool_dir: Path, state_dir: Path,
    sandbox: Sandbox,
) -> None:  # fmt: skip
    """Half a JSON array written and closed, the rest appended 0.2 s later (settle 3 s).

    Result: both receipts reach the API, the whole file is archived, nothing is
    quarantined and no `file.quarantined` is logged.
    """
    path = spool_dir / "sale.json"
    whole = orjson.dumps([make_receipt(1), make_receipt(2)])
    _append(path, whole[: len(whole) // 2])
    time.sleep(PAUSE_S)
    _append(path, whole[len(whole) // 2 :])
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 2)
    wait_until(lambda: not path.exists())
    archived = [p for p in (state_dir / "archive" / "till-1").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in archived] == [whole]
    assert not events(tmp_path / "agent.log", "file.quarantined")
