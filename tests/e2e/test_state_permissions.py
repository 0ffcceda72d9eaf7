"""The state folder stays private under the usual umask 022 (CONTRACT §3).

The installed CLI runs as a subprocess with `umask 022` (cron, `run --once` during an
install, an operator's shell), and the test then walks the state folder as an auditor
would, reading every file's and folder's mode bits.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import support
from support import ACCOUNT, BIN, cli, drop, events, make_receipt, stop_agent, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

UMASK = 0o022


def _open_to_others(folder: Path) -> dict[str, str]:
    """Every path under `folder` (itself included) that others may read, write or enter."""
    found: dict[str, str] = {}
    for path in [folder, *folder.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # renamed or removed since the listing (a report's .tmp file, moved in)
        if mode & stat.S_IRWXO:
            found[str(path.relative_to(folder.parent))] = f"{mode:04o}"
    return found


def test_daemon_and_report_under_umask_022_leave_nothing_readable_by_others(
    tmp_path: Path, spool_dir: Path, state_dir: Path, sandbox: Sandbox,
    make_agent_config: Callable[..., Path],
) -> None:  # fmt: skip
    """Under umask 022 the database, WAL/SHM, lock, archive, quarantine and reports are private.

    1. Start `receipt-agent run` with umask 022; drop a valid file (archived) and a
       broken one (quarantined with its .error.json); wait until both are handled.
    2. While it runs (WAL and SHM exist), walk the state folder.
    3. Stop it; run `report generate` with umask 022; walk again.
    Result: no file or folder in the state folder has a single bit for others; files are
    0640 and folders 0750 (group kept for operators, as the systemd unit's UMask=0027).
    """
    config = make_agent_config(reports=[support.report_entry(output_dir=None)])
    drop(spool_dir, "good.json", [make_receipt(1)])
    drop(spool_dir, "broken.json", b'[{"receipt_id": "R2", "store"')
    process = subprocess.Popen(
        [str(BIN / "receipt-agent"), "run", "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, umask=UMASK,
    )  # fmt: skip
    try:
        wait_until(lambda: sandbox.receipt_ids(ACCOUNT) == ["R000001"], timeout=20)
        wait_until(lambda: list(state_dir.glob("quarantine/*/broken.json.error.json")))
        wait_until(lambda: list(state_dir.glob("archive/*/good.json")))
        running = {p.name for p in state_dir.iterdir()}
        assert {"state.db", "state.db-wal", "state.db-shm", "agent.lock"} <= running
        assert _open_to_others(state_dir) == {}
    finally:
        code, stderr = stop_agent(process)
    assert code == 0, stderr

    report = cli("report", "generate", "monthly", "--period-start", "2026-03-01",
                 "-c", str(config), umask=UMASK)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert list((state_dir / "reports").iterdir())
    assert _open_to_others(state_dir) == {}
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in (state_dir / "state.db", state_dir / "archive", state_dir / "reports")
    }
    assert modes == {"state.db": 0o640, "archive": 0o750, "reports": 0o750}


def test_run_once_closes_existing_open_state_and_says_so(
    tmp_path: Path, spool_dir: Path, state_dir: Path, make_agent_config: Callable[..., Path]
) -> None:
    """State left world-readable by an older version is closed at start, with `config.warning`.

    1. `run --once` creates the state; then an older install's modes are planted
       (folders 0755, database and quarantined file 0644, a sidecar 0666).
    2. `run --once` again, umask 022.
    Result: every path is closed to others, and the log has one `config.warning` per
    changed path naming its config key and the old and new mode.
    """
    config = make_agent_config()
    drop(spool_dir, "broken.json", b"[{")
    first = cli("run", "--once", "-c", str(config), umask=UMASK)
    assert first.returncode in (0, 3), first.stderr
    quarantined = state_dir / "quarantine" / "till-1" / "broken.json"
    sidecar = quarantined.with_name("broken.json.error.json")
    for path, mode in (
        (state_dir, 0o755), (state_dir / "quarantine", 0o755), (state_dir / "state.db", 0o644),
        (quarantined, 0o644), (sidecar, 0o666),
    ):  # fmt: skip
        path.chmod(mode)
    assert _open_to_others(state_dir)

    second = cli("run", "--once", "-c", str(config), umask=UMASK)
    assert second.returncode == 0, second.stderr
    assert _open_to_others(state_dir) == {}
    warnings = [line["error"] for line in events(tmp_path / "agent.log", "config.warning")]
    assert f"state_dir: {state_dir} was open to other users (mode 0755); changed to 0750" in (
        " ".join(warnings)
    )
    assert any(w.startswith(f"state_dir: {state_dir / 'state.db'} ") for w in warnings)
    assert any(
        w.startswith(f"sources[0].quarantine_dir: {sidecar} ") and "0666" in w for w in warnings
    )
    assert len(warnings) == 5
    assert orjson.loads(sidecar.read_bytes())["file"] == "broken.json"


def test_archived_file_from_a_world_readable_spool_loses_others_bits(
    spool_dir: Path, state_dir: Path, make_agent_config: Callable[..., Path]
) -> None:
    """A till file written 0644 is archived 0640: the archive never re-opens it to others."""
    config = make_agent_config()
    target = drop(spool_dir, "good.json", [make_receipt(1)])
    target.chmod(0o644)
    result = cli("run", "--once", "-c", str(config), umask=UMASK)
    assert result.returncode == 0, result.stderr
    (archived,) = state_dir.glob("archive/till-1/good.json")
    assert stat.S_IMODE(archived.stat().st_mode) == 0o640
    assert os.access(archived, os.R_OK)
