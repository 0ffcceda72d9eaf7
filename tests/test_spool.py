"""Spool: the folder listing is the truth, watchdog only wakes, files are ready when settled."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import time_machine
from support import base_config, wait_until

from receipt_agent import spool_health
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.spool import Spool, is_candidate
from receipt_agent.spool_watch import build_observers


@pytest.fixture
def config(offline_config: Callable[..., AgentConfig]) -> AgentConfig:
    return offline_config(settle="0.3s")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.json", True), (".a.json", False), ("a.json.tmp", False), ("a.json.part", False),
     ("a.json~", False), ("a.csv", False), ("my file ø\n.json", True)],
)  # fmt: skip
def test_is_candidate_excludes_hidden_and_temporary_files(name: str, expected: bool) -> None:
    """Hidden and half-written files never match, whatever the pattern says."""
    assert is_candidate(name, "*.json") is expected


def _write(path: Path, text: str, at: float) -> None:
    """Write `text` to `path` and stamp its mtime `at` (what the kernel does at the clock's now)."""
    with path.open("a") as handle:
        handle.write(text)
    os.utime(path, (at, at))


def test_scan_returns_file_only_after_it_settled(config: AgentConfig, spool_dir: Path) -> None:
    """A fresh file waits `settle` (0.3 s) on the driven clock; the scan says how long.

    1. Freeze the clock and write a file stamped now: not ready, due in exactly 0.3 s.
    2. Move the clock 0.2 s: still not ready, due in 0.1 s.
    3. Move it past 0.3 s: the file is ready.
    """
    spool = Spool(config.sources)
    path = spool_dir / "a.json"
    with time_machine.travel(1_800_000_000.0, tick=False) as clock:
        _write(path, "[]", time.time())
        ready, next_due = spool.scan()
        assert (ready, next_due) == ([], pytest.approx(0.3))
        clock.shift(0.2)
        ready, next_due = spool.scan()
        assert (ready, next_due) == ([], pytest.approx(0.1))
        clock.shift(0.11)
        ready, next_due = spool.scan()
    assert [item.path for item in ready] == [path]
    assert next_due is None


def test_scan_ignores_a_file_still_being_written(config: AgentConfig, spool_dir: Path) -> None:
    """A file that keeps growing is not ready until it stops changing for `settle`.

    1. On a frozen clock, append to the file every 0.1 s for 2 s (4x settle): never ready.
    2. Stop writing and move the clock past 0.3 s: ready, with every byte written.
    """
    spool = Spool(config.sources)
    path = spool_dir / "slow.json"
    with time_machine.travel(1_800_000_000.0, tick=False) as clock:
        for _ in range(20):
            _write(path, " ", time.time())
            assert spool.scan()[0] == []
            clock.shift(0.1)
        clock.shift(0.25)
        ready, _ = spool.scan()
    assert [item.path for item in ready] == [path]
    assert path.stat().st_size == 20


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


@pytest.fixture
def slow_settle(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> Callable[[bool], AgentConfig]:  # fmt: skip
    def make(poll: bool) -> AgentConfig:
        raw = base_config(
            base_url="http://127.0.0.1:9/v1", spool_dir=spool_dir, state_dir=state_dir,
            secret_file=secret_file, log_file=tmp_path / "agent.log",
        )  # fmt: skip
        raw["sources"][0].update(settle="60s", poll=poll)
        return load_config(write_config(raw))

    return make


def _watching(config: AgentConfig, spool: Spool) -> list[object]:
    observers = build_observers(config.sources, threading.Event(), on_closed=spool.note_closed)
    for observer in observers:
        observer.start()  # type: ignore[attr-defined]
    return observers


def _stop(observers: list[object]) -> None:
    for observer in observers:
        observer.stop()  # type: ignore[attr-defined]
        observer.join()  # type: ignore[attr-defined]


def test_scan_takes_a_file_its_writer_closed_without_waiting_out_settle(
    slow_settle: Callable[[bool], AgentConfig], spool_dir: Path
) -> None:
    """With settle 60 s, a file written and closed (or renamed in) is ready within seconds."""
    config = slow_settle(False)
    spool = Spool(config.sources)
    observers = _watching(config, spool)
    try:
        (spool_dir / "closed.json").write_bytes(b"[]")
        (spool_dir / ".renamed.tmp").write_bytes(b"[]")
        (spool_dir / ".renamed.tmp").rename(spool_dir / "renamed.json")
        wait_until(lambda: len(spool.scan()[0]) == 2, timeout=5)
        assert sorted(r.path.name for r in spool.scan()[0]) == ["closed.json", "renamed.json"]
    finally:
        _stop(observers)


def test_scan_waits_settle_for_a_file_still_open_or_changed_after_close(
    slow_settle: Callable[[bool], AgentConfig], spool_dir: Path
) -> None:
    """A file its writer keeps open, or appended to after a close, still waits out settle."""
    config = slow_settle(False)
    spool = Spool(config.sources)
    observers = _watching(config, spool)
    try:
        with (spool_dir / "open.json").open("wb") as handle:
            handle.write(b"[")
            handle.flush()
            (spool_dir / "marker.json").write_bytes(b"[]")
            wait_until(lambda: [r.path.name for r in spool.scan()[0]] == ["marker.json"])
            ready, next_due = spool.scan()
            assert [r.path.name for r in ready] == ["marker.json"]
            assert next_due is not None
            assert next_due > 50
        # Closed now; then changed behind the agent's back with no close seen (utime).
        wait_until(lambda: len(spool.scan()[0]) == 2)
        os.utime(spool_dir / "open.json", ns=(0, time.time_ns() + 10**9))
        assert [r.path.name for r in spool.scan()[0]] == ["marker.json"]
    finally:
        _stop(observers)


def test_scan_waits_settle_for_a_csv_file_only_closed_but_not_for_one_renamed_in(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """A CSV till may close its file between a receipt's lines: a CSV file only closed
    waits out settle (its first lines would parse as a whole receipt); one renamed in is
    complete and goes at once."""
    raw = base_config(
        base_url="http://127.0.0.1:9/v1", spool_dir=spool_dir, state_dir=state_dir,
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    columns = {"receipt_number": "n", "purchase_at": "t", "item_gross_amount": "g"}
    raw["sources"][0].update(
        settle="60s", format="csv", pattern="*.csv", mapping={"columns": columns}
    )
    config = load_config(write_config(raw))
    spool = Spool(config.sources)
    observers = _watching(config, spool)
    try:
        with (spool_dir / "journal.csv").open("ab") as handle:  # header and a first line
            handle.write(b"n,t,g\n1,2026-11-30T10:00:00+01:00,100\n")
        (spool_dir / ".whole.tmp").write_bytes(b"n,t,g\n2,2026-11-30T10:01:00+01:00,100\n")
        (spool_dir / ".whole.tmp").rename(spool_dir / "whole.csv")
        wait_until(lambda: [r.path.name for r in spool.scan()[0]] == ["whole.csv"], timeout=5)
        with (spool_dir / "journal.csv").open("ab") as handle:  # the receipt's second line
            handle.write(b"1,2026-11-30T10:00:00+01:00,50\n")
        # A marker renamed in after it: inotify keeps order, so once the marker is ready
        # the journal's close was heard too.
        (spool_dir / ".marker.tmp").write_bytes(b"n,t,g\n")
        (spool_dir / ".marker.tmp").rename(spool_dir / "marker.csv")
        wait_until(lambda: len(spool.scan()[0]) == 2, timeout=5)
        ready, next_due = spool.scan()
        assert sorted(r.path.name for r in ready) == ["marker.csv", "whole.csv"]
        assert next_due is not None
        assert next_due > 50
    finally:
        _stop(observers)


def test_scan_of_a_polled_share_ignores_close_and_waits_settle(
    slow_settle: Callable[[bool], AgentConfig], spool_dir: Path
) -> None:
    """A `poll: true` share has no close events: its files wait out settle as before."""
    config = slow_settle(True)
    spool = Spool(config.sources)
    spool.note_closed(str(spool_dir / "a.json"))  # even if one were heard
    (spool_dir / "a.json").write_bytes(b"[]")
    spool.note_closed(str(spool_dir / "a.json"))
    assert spool.scan()[0] == []


def test_polling_observer_wakes_on_a_file_in_a_share(
    spool_dir: Path, offline_config: Callable[..., AgentConfig]
) -> None:
    """A `poll: true` folder (SMB/NFS, no inotify) is watched by the real PollingObserver."""
    config = offline_config(settle="0.5s", poll=True)  # polls every max(0.5 s, settle)
    wake = threading.Event()
    observers = build_observers(config.sources, wake)
    assert [type(o).__name__ for o in observers] == ["PollingObserver"]
    for observer in observers:
        observer.start()
    try:
        (spool_dir / "from-the-share.json").write_bytes(b"[]")
        assert wake.wait(10)
    finally:
        _stop(observers)


def test_a_share_with_a_clock_behind_still_waits_settle_by_observation(
    slow_settle: Callable[[bool], AgentConfig], spool_dir: Path
) -> None:
    """On a share, an mtime an hour old proves nothing: the file waits 60 s of no change.

    1. Frozen clock; the file is stamped an hour ago (a file server an hour behind).
    2. Scan: not ready, due in 60 s. The share's writer appends: the wait starts again.
    """
    config = slow_settle(True)
    spool = Spool(config.sources)
    path = spool_dir / "late.json"
    with time_machine.travel(1_800_000_000.0, tick=False):
        _write(path, "[", time.time() - 3600)
        ready, next_due = spool.scan()
        assert (ready, next_due) == ([], pytest.approx(60, abs=1))
        _write(path, "]", time.time() - 3600)
        ready, next_due = spool.scan()
        assert (ready, next_due) == ([], pytest.approx(60, abs=1))


def test_scan_offers_symlinks_and_fifos_for_quarantine_and_skips_folders(
    config: AgentConfig, spool_dir: Path, tmp_path: Path
) -> None:
    """What matches the pattern but is no regular file is returned at once (the intake
    quarantines it unread); a sub-folder, even one named like a file, is not."""
    target = tmp_path / "elsewhere.json"
    target.write_text("[]")
    (spool_dir / "link.json").symlink_to(target)
    os.mkfifo(spool_dir / "pipe.json")
    (spool_dir / "folder.json").mkdir()
    ready, _ = Spool(config.sources).scan()
    assert sorted(item.path.name for item in ready) == ["link.json", "pipe.json"]


def test_a_vanished_source_folder_does_not_stop_the_others(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """One source's folder disappearing (an unmounted share) leaves the other's files ready."""
    gone = tmp_path / "gone"
    gone.mkdir()
    raw = base_config(
        base_url="http://127.0.0.1:9/v1", spool_dir=spool_dir, state_dir=state_dir,
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    raw["sources"].append(raw["sources"][0] | {"name": "till-2", "path": str(gone)})
    config = load_config(write_config(raw))
    gone.rmdir()
    path = spool_dir / "a.json"
    _write(path, "[]", time.time() - 60)
    ready, _ = Spool(config.sources).scan()
    assert [(item.source.name, item.path) for item in ready] == [("till-1", path)]


def test_ignore_settle_returns_fresh_files_at_once(config: AgentConfig, spool_dir: Path) -> None:
    """A drain that must not wait (`ignore_settle`) gets a file written this instant."""
    path = spool_dir / "fresh.json"
    _write(path, "[]", time.time())
    spool = Spool(config.sources)
    assert spool.scan()[0] == []
    assert [item.path for item in spool.scan(ignore_settle=True)[0]] == [path]


def test_scan_names_each_ready_file_by_the_same_path_as_its_folder_joined_with_its_name(
    config: AgentConfig, spool_dir: Path
) -> None:
    """A listed file's path is exactly `folder / name` (its text, parts, parent, hash), so
    the intake opens, archives and reports the file the operator sees."""
    names = ["z 0412.json", "a.b.c.json", "ø-kvittering.json"]
    for name in names:
        _write(spool_dir / name, "[]", time.time() - 60)
    ready, _ = Spool(config.sources).scan()
    got = {item.path.name: item.path for item in ready}
    assert sorted(got) == sorted(names)
    for name, path in got.items():
        expected = spool_dir / name
        assert (path, str(path), path.parts, path.parent) == (
            expected, str(expected), expected.parts, expected.parent,
        )  # fmt: skip
        assert hash(path) == hash(expected)
        assert os.fspath(path) == os.path.join(spool_dir, name)  # noqa: PTH118 - the text os sees
    # The text intake opens and moves, and the key it files the file under, are the same
    assert {(item.where, item.key) for item in ready} == {
        (str(spool_dir / name), ("till-1", name)) for name in names
    }


def test_scan_with_a_limit_gives_the_oldest_and_the_next_scan_goes_on_after_them(
    config: AgentConfig, spool_dir: Path
) -> None:
    """A backlog comes a chunk at a time, oldest first, nothing twice, nothing left out.

    1. Seven settled files with mtimes 7, 6, …, 1 minutes ago (named against that order).
    2. Scans of at most 3, each after the last file of the one before.
    Result: chunks of 3, 3 and 1 file, oldest first; the first two say more are ready
    (next scan at once), the last does not; every file exactly once.
    """
    now = time.time()
    for number in range(7):
        path = spool_dir / f"{number}.json"
        path.write_text("{}")
        os.utime(path, (now - 60 * (7 - number), now - 60 * (7 - number)))
    spool = Spool(config.sources)
    chunks, after = [], None
    while True:
        ready, next_due = spool.scan(limit=3, after=after)
        chunks.append([item.path.name for item in ready])
        assert (next_due == 0.0) is ready.more
        if not ready.more:
            break
        after = ready.last()
    assert chunks == [["0.json", "1.json", "2.json"], ["3.json", "4.json", "5.json"], ["6.json"]]
    assert [item.path.name for item in spool.scan()[0]] == [n for chunk in chunks for n in chunk]


def test_scan_leaves_out_skipped_files_before_the_limit_and_reports_tracked_ones(
    config: AgentConfig, spool_dir: Path
) -> None:
    """Files the caller skips (in their backoff) never fill a chunk, and still count as there.

    1. Five settled files; the three oldest are skipped; a limit of 2.
    Result: the two others are returned (no chunk of skipped files), no more; the skipped
    and tracked `0.json` is reported present, the tracked but deleted `gone.json` is not.
    """
    now = time.time()
    for number in range(5):
        path = spool_dir / f"{number}.json"
        path.write_text("{}")
        os.utime(path, (now - 60 * (5 - number), now - 60 * (5 - number)))
    skipped = {("till-1", f"{number}.json") for number in range(3)}
    ready, next_due = Spool(config.sources).scan(
        limit=2,
        skip=lambda key, mtime, closed: key in skipped,
        tracked={("till-1", "0.json"), ("till-1", "gone.json")},
    )
    assert [item.path.name for item in ready] == ["3.json", "4.json"]
    assert [item.where for item in ready] == [str(spool_dir / "3.json"), str(spool_dir / "4.json")]
    assert not ready.more
    assert next_due is None
    assert ready.present == {("till-1", "0.json")}


def test_status_counts_a_spool_as_it_streams_and_names_a_missing_folder(
    config: AgentConfig, spool_dir: Path
) -> None:
    """`status`'s spool view: files waiting and the oldest one's age; "missing" when gone.

    1. Three files, the oldest stamped 100 s before `now`; a sub-folder and a hidden file.
    2. The spool folder removed.
    Result: 3 waiting, the oldest 100 s old; then 0 waiting and "missing".
    """
    now = time.time()
    for number in range(3):
        path = spool_dir / f"{number}.json"
        path.write_text("{}")
        os.utime(path, (now - 100 + number, now - 100 + number))
    (spool_dir / "sub.json").mkdir()
    (spool_dir / ".hidden.json").write_text("{}")
    (view,) = spool_health.inspect(config, {}, max_age_s=3600, now=now)
    assert (view.waiting, view.oldest_waiting_age_s, view.spool_error) == (3, 100.0, None)
    shutil.rmtree(spool_dir)
    (view,) = spool_health.inspect(config, {}, max_age_s=3600, now=now)
    assert (view.waiting, view.oldest_waiting_age_s, view.spool_error) == (0, None, "missing")
