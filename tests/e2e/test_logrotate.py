"""Log rotation under a running `receipt-agent run` loses no line (issue 6, logrotate).

The agent's file log is a WatchedFileHandler that also reopens on SIGHUP
(systemd/receipt-agent.logrotate relies on the former). These tests rotate the way
logrotate does — rename agent.log to agent.log.1 while the agent keeps logging — once
with a SIGHUP (`systemctl reload`) and once without, and check that every till file the
agent took in is logged exactly once across the two files.

Files are unparseable on purpose: each yields exactly one `file.quarantined` line
whatever the mappers accept, so the lines can be counted; the API is never reached
(base_url points at a closed port), which only adds `batch.*` lines nobody counts.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import support

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("receipt_agent.agent") is None,
        reason="receipt_agent.agent is not built yet",
    ),
]

CLI = Path(sys.executable).parent / "receipt-agent"
FILES_PER_PHASE = 15

# One polling helper for the whole suite (support.wait_until), with this file's deadline.
wait_until = functools.partial(support.wait_until, timeout=20)


def _events(*paths: Path) -> list[dict[str, object]]:
    """Every JSON log line in `paths` (missing files count as empty)."""
    events: list[dict[str, object]] = []
    for path in paths:
        if path.exists():
            events.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return events


def _logged_files(*paths: Path) -> list[str]:
    return [
        str(event["file"])
        for event in _events(*paths)
        if event.get("event") in {"file.quarantined", "file.accepted"}
    ]


@pytest.fixture
def agent_setup(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[str]]]:
    """A `receipt-agent run` subprocess logging JSON to tmp/log/agent.log; stopped after."""
    if not CLI.exists():
        pytest.skip(f"the console script is not installed at {CLI}")
    spool = tmp_path / "spool"
    spool.mkdir()
    log = tmp_path / "log" / "agent.log"
    log.parent.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
dintero:
  base_url: http://127.0.0.1:{support.free_port()}/v1
  account_id: T12345678
  client_id: rotation-test
  timeout: 2s
state_dir: {tmp_path / "state"}
log:
  file: {log}
  format: json
  level: info
sources:
  - name: till-1
    path: {spool}
    format: dintero-json
    settle: 100ms
    store: {{id: sc001}}
batch:
  flush_interval: 1s
retry:
  initial: 1s
  max: 5s
"""
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECEIPT_AGENT_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env["RECEIPT_AGENT_CLIENT_SECRET"] = "rotation-test-secret"
    process = subprocess.Popen(
        [str(CLI), "run", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: (
                process.poll() is not None
                or any(event.get("event") == "agent.started" for event in _events(log))
            )
        )
        assert process.poll() is None, process.communicate()[0]
        yield spool, log, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=45)  # also closes the output pipe
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _drop(spool: Path, names: list[str]) -> None:
    """Write each file under a temporary name and rename it in, as a till does."""
    for name in names:
        temporary = spool / f".{name}.part"
        temporary.write_text("this is not JSON\n")
        temporary.rename(spool / name)
        time.sleep(0.02)


@pytest.mark.parametrize("send_sighup", [True, False], ids=["mv+SIGHUP", "mv-only"])
def test_rotation_under_running_agent_loses_no_line(
    agent_setup: tuple[Path, Path, subprocess.Popen[str]], send_sighup: bool
) -> None:
    """1. The agent runs and logs one line per till file dropped into its spool.
    2. Drop files; while they are being taken in, `mv agent.log agent.log.1`
       (and SIGHUP the agent in one variant, as `systemctl reload` would).
    3. Drop more files, then SIGTERM the agent and wait for it to exit 0.
    Result: every file is logged exactly once across agent.log.1 and agent.log, the new
    agent.log holds the post-rotation lines and `agent.stopped`.
    """
    spool, log, process = agent_setup
    rotated = log.with_name("agent.log.1")
    before = [f"before-{index:02d}.json" for index in range(FILES_PER_PHASE)]
    after = [f"after-{index:02d}.json" for index in range(FILES_PER_PHASE)]

    _drop(spool, before[:5])
    wait_until(lambda: len(_logged_files(log)) >= 1)
    _drop(spool, before[5:])
    log.rename(rotated)
    if send_sighup:
        process.send_signal(signal.SIGHUP)
    _drop(spool, after)
    wait_until(lambda: len(_logged_files(rotated, log)) >= 2 * FILES_PER_PHASE)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=45)

    assert process.returncode == 0, output
    logged = _logged_files(rotated, log)
    assert sorted(logged) == sorted(before + after)
    new_lines = _events(log)
    assert set(after[-5:]) <= {str(event.get("file")) for event in new_lines}
    assert new_lines[-1]["event"] == "agent.stopped"
