"""Scenario 5 of issue 5: a full disk pauses intake loudly, loses nothing, and heals itself.

The state directory (database, archive, quarantine) is a real, tiny filesystem: a tmpfs
mounted with `size=`, which needs root (CAP_SYS_ADMIN). There the test is skipped rather
than faked; the machine that produced RESULTS.md is root. The spool and the log stay on
the ordinary disk, as on a store machine whose /var/lib filled up, so archiving is a
cross-filesystem copy. The disk is filled by a filler file written until ENOSPC and
emptied by deleting it: no injected errors, the kernel says "No space left on device".
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import AgentProcess, all_files, db_check, record_result, wait_for_event
from support import ACCOUNT, base_config, drop, events, make_receipt, read_log, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.reliability


def _mount_tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """Mount a size-limited tmpfs at `mountpoint`, yield it, unmount; skip where refused."""
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs at tmp_path/state, unmounted afterwards; skip where mount is refused."""
    yield from _mount_tmpfs(tmp_path / "state", "4m")


def _fill(folder: Path) -> Path:
    """Write a filler file until the filesystem says ENOSPC; return it."""
    filler = folder / "filler.bin"
    chunk = b"\xff" * 65536
    # Unbuffered: a buffered writer keeps the part of a chunk that did not fit and raises
    # ENOSPC again when the file is closed (depending on how full the disk already was).
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
                handle.flush()
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    # Small writes may still fit in a partly used page; use up the last bytes too.
    with filler.open("ab", buffering=0) as handle:
        for size in (4096, 512, 1):
            with contextlib.suppress(OSError):
                while handle.write(b"\xff" * size):
                    pass
    return filler


def test_full_state_disk_pauses_intake_keeps_spool_files_and_resumes_when_space_returns(
    tmp_path: Path,
    tiny_fs: Path,
    sandbox: Sandbox,
    write_config: Callable[..., Path],
    secret_file: Path,
) -> None:
    """With the state disk full, intake stops with an error event; freed space resumes it.

    1. Agent with its state dir on a 4 MB tmpfs; one file delivered.
    2. Fill the tmpfs; drop 5 files of 50 receipts.
    Result: `intake.paused` at error level naming free disk space; the 5 files still in
    the spool; no partial file in the archive or quarantine; integrity_check ok.
    3. Delete the filler.
    Result: `intake.resumed` without a restart; all 260 receipts at the sandbox; spool
    empty; each file archived once.
    """
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    spool.mkdir()
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=spool, state_dir=tiny_fs,
        secret_file=secret_file, log_file=log,
    )  # fmt: skip
    agent = AgentProcess(write_config(settings))
    archive = tiny_fs / "archive" / "till-1"
    try:
        wait_for_event(log, "agent.started")
        drop(spool, "a-000.json", [make_receipt(n) for n in range(10)])
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 10, timeout=60)
        wait_until(lambda: all_files(archive) == ["a-000.json"])

        filler = _fill(tiny_fs)
        names = [f"a-{n:03d}.json" for n in range(1, 6)]
        for number, name in enumerate(names, start=1):
            drop(spool, name, [make_receipt(number * 100 + i) for i in range(50)])
        paused = wait_for_event(log, "intake.paused", timeout=30)[0]
        paused_at = time.monotonic()
        assert paused["level"] == "error"
        assert "No space left on device" in paused["error"] or "disk" in paused["error"]
        # Give the paused agent a few retries (every 5 s) while the disk stays full.
        wait_until(lambda: time.monotonic() - paused_at > 6, timeout=10)
        assert agent.alive(), agent.stderr()
        during = {
            "spool": all_files(spool),
            "archive": all_files(archive),
            "quarantine": all_files(tiny_fs / "quarantine"),
            "db": db_check(tiny_fs / "state.db"),
        }
        assert during["spool"] == names  # the files stay where they are
        assert [n for n in during["archive"] if n != "a-000.json"] == []  # nothing half-copied
        assert during["quarantine"] == []
        assert during["db"]["integrity"] == "ok"

        filler.unlink()
        resumed = wait_for_event(log, "intake.resumed", timeout=30)[0]
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 260, timeout=30)
        drained_s = time.monotonic() - paused_at
        wait_until(lambda: all_files(spool) == [], timeout=10)
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(40) == 0, agent.stderr()
    finally:
        agent.ensure_stopped()

    assert all_files(archive) == ["a-000.json", *names]
    after = db_check(tiny_fs / "state.db")
    assert after["integrity"] == "ok"
    assert after["counts"] == {"sent": 260}
    assert not [e for e in read_log(log) if e.get("event") in {"intake.failed", "job.failed"}]
    record_result(
        "disk_full",
        fed=260,
        delivered=len(sandbox.receipt_ids(ACCOUNT)),
        lost=260 - len(set(sandbox.receipt_ids(ACCOUNT))),
        resent=sandbox.stats()["duplicates"],
        posts=sandbox.receipt_posts,
        receipts_in_db_while_full=sum(during["db"]["counts"].values()),
        paused_error=paused["error"],
        paused_s=resumed["paused_s"],
        drain_s=round(drained_s, 1),
    )


@pytest.fixture
def tiny_archive_fs(tmp_path: Path) -> Iterator[Path]:
    """A second 1 MB tmpfs, for an archive_dir on its own (full) filesystem."""
    yield from _mount_tmpfs(tmp_path / "archive", "1m")


def test_full_archive_disk_leaves_no_partial_copy_and_archives_once_space_returns(
    tmp_path: Path,
    tiny_archive_fs: Path,
    sandbox: Sandbox,
    write_config: Callable[..., Path],
    secret_file: Path,
) -> None:
    """With only the archive disk full, the receipts are queued but no half copy is left.

    1. Agent whose `archive_dir` is its own 1 MB tmpfs; fill it; drop 3 files.
    Result: `file.unreadable` (ENOSPC) for each file, never `intake.paused` (the state
    store is fine, issue 12); the 3 files still in the spool; nothing but the filler in
    the archive (no `.part` leftovers); all 150 receipts recorded once and delivered.
    2. Delete the filler.
    Result: the 3 files archived once each (as already seen, at their next retry),
    spool empty.
    """
    spool, state, log = tmp_path / "spool", tmp_path / "state", tmp_path / "agent.log"
    spool.mkdir()
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=spool, state_dir=state,
        secret_file=secret_file, log_file=log,
    )  # fmt: skip
    settings["sources"][0]["archive_dir"] = str(tiny_archive_fs)
    agent = AgentProcess(write_config(settings))
    try:
        wait_for_event(log, "agent.started")
        filler = _fill(tiny_archive_fs)
        names = [f"b-{n:03d}.json" for n in range(3)]
        for number, name in enumerate(names):
            drop(spool, name, [make_receipt(number * 100 + i) for i in range(50)])
        paused = wait_for_event(log, "file.unreadable", timeout=30)[0]
        assert paused["level"] == "error"
        assert "ENOSPC" in paused["error"]
        # One file's archive failure does not hold the others back (issue 12).
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 150, timeout=30)
        assert all_files(tiny_archive_fs) == ["filler.bin"]  # no half-written copy
        assert set(all_files(spool)) == set(names)
        assert not events(log, "intake.paused")
        filler.unlink()
        wait_until(lambda: all_files(spool) == [], timeout=20)
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(40) == 0, agent.stderr()
    finally:
        agent.ensure_stopped()
    assert all_files(tiny_archive_fs) == names
    checked = db_check(state / "state.db")
    assert checked["integrity"] == "ok"
    assert checked["counts"] == {"sent": 150}
    record_result(
        "archive_disk_full",
        fed=150,
        delivered=len(set(sandbox.receipt_ids(ACCOUNT))),
        lost=150 - len(set(sandbox.receipt_ids(ACCOUNT))),
        resent=sandbox.stats()["duplicates"],
        posts=sandbox.receipt_posts,
        paused_error=paused["error"],
    )


def test_full_state_disk_while_sending_backs_off_instead_of_resending_every_flush(
    tmp_path: Path,
    tiny_fs: Path,
    sandbox: Sandbox,
    write_config: Callable[..., Path],
    secret_file: Path,
) -> None:
    """A full state disk that refuses `mark_sent` costs a few duplicate POSTs, not a storm.

    1. The API fails every POST while 150 receipts are queued; fill the state disk.
    2. The API recovers: its 200s cannot be recorded (the disk is full).
    Result: over 6 s at most a handful of POSTs (the sender backs off, as for a transient
    failure); after the filler is deleted every receipt is `sent` and at the sandbox once.
    """
    spool, log = tmp_path / "spool", tmp_path / "agent.log"
    spool.mkdir()
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=spool, state_dir=tiny_fs,
        secret_file=secret_file, log_file=log,
    )  # fmt: skip
    settings["batch"] = {"max_receipts": 50, "flush_interval": "0.2s"}
    settings["retry"] = {"initial": "0.5s", "max": "2s"}
    sandbox.set_faults(error_rate=1.0)
    agent = AgentProcess(write_config(settings))
    try:
        wait_for_event(log, "agent.started")
        for number in range(3):
            drop(spool, f"c-{number}.json", [make_receipt(number * 100 + i) for i in range(50)])
        wait_until(lambda: db_check(tiny_fs / "state.db")["counts"].get("pending") == 150)
        wait_for_event(log, "batch.failed")
        filler = _fill(tiny_fs)
        sandbox.set_faults(error_rate=0.0)
        posts_before = sandbox.receipt_posts
        full_since = time.monotonic()
        wait_until(lambda: time.monotonic() - full_since > 6, timeout=10)
        posts_while_full = sandbox.receipt_posts - posts_before
        assert agent.alive(), agent.stderr()
        filler.unlink()
        wait_until(lambda: db_check(tiny_fs / "state.db")["counts"] == {"sent": 150}, timeout=30)
        agent.signal(signal.SIGTERM)
        assert agent.wait_exit(40) == 0, agent.stderr()
    finally:
        agent.ensure_stopped()
    assert len(set(sandbox.receipt_ids(ACCOUNT))) == 150
    assert posts_while_full <= 8, posts_while_full
    lines = read_log(log)
    assert not [e for e in lines if e.get("event") == "job.failed"]
    unrecorded = [e for e in lines if e.get("action") == "not_recorded"]
    assert unrecorded
    assert unrecorded[0]["level"] == "error"
    record_result(
        "disk_full_while_sending",
        fed=150,
        delivered=len(set(sandbox.receipt_ids(ACCOUNT))),
        lost=0,
        resent=sandbox.stats()["duplicates"],
        posts_while_full_6s=posts_while_full,
    )
