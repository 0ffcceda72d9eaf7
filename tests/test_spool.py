"""Spool: the folder listing is the truth, watchdog only wakes, files are ready when settled."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import base_config, wait_until

from receipt_agent.config import AgentConfig, load_config
from receipt_agent.spool import Spool, build_observers, is_candidate


@pytest.fixture
def config(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> AgentConfig:  # fmt: skip
    raw = base_config(
        base_url="http://127.0.0.1:9/v1", spool_dir=spool_dir, state_dir=state_dir,
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    raw["sources"][0]["settle"] = "0.3s"
    return load_config(write_config(raw))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.json", True), (".a.json", False), ("a.json.tmp", False), ("a.json.part", False),
     ("a.json~", False), ("a.csv", False), ("my file ø\n.json", True)],
)  # fmt: skip
def test_is_candidate_excludes_hidden_and_temporary_files(name: str, expected: bool) -> None:
    """Hidden and half-written files never match, whatever the pattern says."""
    assert is_candidate(name, "*.json") is expected


def test_scan_returns_file_only_after_it_settled(config: AgentConfig, spool_dir: Path) -> None:
    """A fresh file waits `settle`; the scan says how long until it may be ready."""
    spool = Spool(config.sources)
    path = spool_dir / "a.json"
    path.write_text("[]")
    ready, next_due = spool.scan()
    assert ready == []
    assert next_due is not None
    assert 0 < next_due <= 0.3
    wait_until(lambda: spool.scan()[0], timeout=3)
    assert [item.path for item in spool.scan()[0]] == [path]


def test_scan_ignores_a_file_still_being_written(config: AgentConfig, spool_dir: Path) -> None:
    """A file that keeps growing is not ready until it stops changing for `settle`."""
    spool = Spool(config.sources)
    path = spool_dir / "slow.json"
    stop = threading.Event()

    def writer() -> None:
        with path.open("a") as handle:
            while not stop.is_set():
                handle.write(" ")
                handle.flush()
                stop.wait(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert spool.scan()[0] == []
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    wait_until(lambda: spool.scan()[0], timeout=3)


def test_scan_lists_old_files_at_once_oldest_first(config: AgentConfig, spool_dir: Path) -> None:
    """A backlog found at start-up is ready at once, oldest receipts first."""
    for index, name in enumerate(["c.json", "a.json", "b.json"]):
        path = spool_dir / name
        path.write_text("[]")
        os.utime(path, (1_000_000 + index, 1_000_000 + index))
    ready, _ = Spool(config.sources).scan()
    assert [item.path.name for item in ready] == ["c.json", "a.json", "b.json"]


def test_observer_wakes_on_rename_into_folder(
    config: AgentConfig, spool_dir: Path, tmp_path: Path
) -> None:
    """The real watchdog observer sets the wake-up event when a till renames a file in."""
    wake = threading.Event()
    observers = build_observers(config.sources, wake)
    for observer in observers:
        observer.start()
    try:
        outside = tmp_path / "x.json"
        outside.write_text("[]")
        outside.rename(spool_dir / "x.json")
        assert wake.wait(5)
    finally:
        for observer in observers:
            observer.stop()
            observer.join()
