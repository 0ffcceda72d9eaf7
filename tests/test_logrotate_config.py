"""The shipped logrotate config (systemd/receipt-agent.logrotate) with a real logrotate.

The config relies on logging.handlers.WatchedFileHandler (no postrotate signal), so the
test rotates a file that a WatchedFileHandler writer is filling, twice (the second
rotation compresses the first), and checks that every numbered line survives exactly
once. The agent itself is exercised the same way in tests/e2e/test_logrotate.py (the real agent).
logrotate is Debian's package `logrotate`; the tests skip where it is not installed.
"""

from __future__ import annotations

import functools
import getpass
import grp
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import support

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "systemd" / "receipt-agent.logrotate"
LOGROTATE = shutil.which("logrotate") or (
    "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
)
pytestmark = pytest.mark.skipif(
    LOGROTATE is None, reason="logrotate is not installed (Debian: apt-get install logrotate)"
)

# A stand-in for the agent's file logging: WatchedFileHandler, one numbered line at a
# time, until the stop file appears; then it prints how many lines it wrote.
_WRITER = """
import logging, logging.handlers, sys, time
from pathlib import Path
log_path, stop_path = sys.argv[1], Path(sys.argv[2])
handler = logging.handlers.WatchedFileHandler(log_path)
logger = logging.getLogger("writer")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
count = 0
while not stop_path.exists():
    logger.info("line %d", count)
    count += 1
    time.sleep(0.001)
handler.close()
print(count)
"""

# One polling helper for the whole suite (support.wait_until), with this file's deadline.
wait_until = functools.partial(support.wait_until, timeout=10)


def _config_for(log_dir: Path, target: Path) -> None:
    """Write the shipped config with its paths and owner pointed at this test."""
    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    lines = []
    for shipped in CONFIG.read_text(encoding="utf-8").splitlines():
        line = shipped.replace("/var/log/receipt-agent", str(log_dir))
        line = line.replace("receipt-agent receipt-agent", f"{user} {group}")
        if line.strip().startswith("su ") and os.geteuid() != 0:
            continue  # only root may switch users; an unprivileged run needs no su
        lines.append(line)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target.chmod(0o644)  # logrotate ignores group- or world-writable configs


def _logrotate(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    assert LOGROTATE is not None
    return subprocess.run(
        [LOGROTATE, "--force", "--state", str(state), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _lines(path: Path) -> list[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as file:
            return file.read().splitlines()
    return path.read_text(encoding="utf-8").splitlines()


def test_logrotate_config_parses_cleanly(tmp_path: Path) -> None:
    """`logrotate --debug` reads the shipped config without an error or warning."""
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "agent.log").write_text("x\n")
    config = tmp_path / "receipt-agent"
    _config_for(log_dir, config)
    assert LOGROTATE is not None

    result = subprocess.run(
        [LOGROTATE, "--debug", "--state", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    output = [
        line
        for line in (result.stdout + result.stderr).lower().splitlines()
        if "logrotate in debug mode does nothing" not in line
    ]
    assert not [line for line in output if "error" in line or "warning" in line], output


def test_rotation_under_a_watched_file_writer_loses_no_line(tmp_path: Path) -> None:
    """1. A WatchedFileHandler writer fills agent.log with numbered lines.
    2. logrotate --force rotates it (rename + create, no signal); the writer goes on.
    3. logrotate --force again: agent.log.1 becomes agent.log.2.gz (delaycompress).
    4. Stop the writer.
    Result: agent.log, agent.log.1 and agent.log.2.gz hold every line exactly once, and
    the writer moved on to each new file without being told.
    """
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    log = log_dir / "agent.log"
    config = tmp_path / "receipt-agent"
    _config_for(log_dir, config)
    state = tmp_path / "state"
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(log), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: log.exists() and log.stat().st_size > 1000)
        first = _logrotate(config, state)
        assert first.returncode == 0, first.stderr
        wait_until(lambda: log.exists() and log.stat().st_size > 1000)
        second = _logrotate(config, state)
        assert second.returncode == 0, second.stderr
        wait_until(lambda: log.exists() and log.stat().st_size > 1000)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=30)
    written = int(out)

    files = [log, log_dir / "agent.log.1", log_dir / "agent.log.2.gz"]
    assert sorted(p.name for p in log_dir.iterdir()) == sorted(p.name for p in files)
    per_file = [_lines(path) for path in files]
    assert all(per_file), "each generation must have received lines"
    # Oldest generation first: together they must be 0, 1, … written-1, in order.
    numbers = [int(line.split()[1]) for lines in reversed(per_file) for line in lines]
    assert numbers == list(range(written))
