"""Spool folders: which files are ready to be taken in (CONTRACT §3 step 1).

The folder listing is the truth; inotify is only a wake-up. `Spool.scan()` lists every
source folder with `scandir` (0.6 µs a file) and returns the files that match the
source's pattern and have settled; `build_observers()` makes watchdog observers whose
only job is to set a wake-up event, narrowed to created / moved / closed-after-write
events so a burst of 10,000 writes cannot overflow the kernel's queue with modify events.
Events can still be lost; the agent rescans at start-up, after every wake-up and every
minute, so a lost event delays a file, never loses it.

A file is ready when it has not been modified for `settle` seconds: by its mtime, or —
for clocks that disagree (network shares) — by our own observation of an unchanged size
and mtime for that long. On a local (inotify) folder a file is ready at once when its
writer renamed it in, or closed it after writing (IN_CLOSE_WRITE), and it has not changed
since: the writer said it is done, so waiting out `settle` only adds latency. `settle`
stays for polled shares (no close events), for writers that keep a file open, and for a
CSV file its writer only closed: CSV tills often append a receipt's lines one by one,
opening and closing the file each time, and a CSV cut after any line still parses (the
first lines would go out as a whole receipt), where half a JSON or XML file does not.
Never reads contents, never moves files.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import operator
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from receipt_agent.config import SourceBase
from receipt_agent.formats import CUT_FILE_PARSES

_TEMPORARY_SUFFIXES = (".tmp", ".part", "~", ".swp", ".partial", ".crdownload")


def is_candidate(name: str, pattern: str) -> bool:
    """Given a file name and a glob, return whether the spool should consider it."""
    return _candidate_matcher(pattern)(name)


@functools.lru_cache(maxsize=64)
def _candidate_matcher(pattern: str) -> Callable[[str], bool]:
    """`is_candidate` for one glob, its regex compiled once (a scan asks for every file)."""
    # What fnmatch.fnmatch does on POSIX (normcase is the identity there), minus its two
    # normcase calls and its cache lookup per name.
    match = re.compile(fnmatch.translate(pattern)).match

    def matches(name: str) -> bool:
        if name.startswith(".") or name.lower().endswith(_TEMPORARY_SUFFIXES):
            return False
        return match(name) is not None

    return matches


def list_candidates(
    folder: Path | str, pattern: str
) -> Iterator[tuple[os.DirEntry[str], os.stat_result]]:
    """Yield (entry, lstat) of each entry the spool considers, sub-folders left out.

    Raise OSError when the folder cannot be listed; an entry removed between listing and
    stat is skipped.
    """
    matches = _candidate_matcher(pattern)
    for entry in list(os.scandir(folder)):
        if not matches(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # removed between listing and stat
        if not stat.S_ISDIR(info.st_mode):
            yield entry, info


# `folder / name` parses `name` (pathlib's splitroot and parse_parts: half of a scan's
# ~57,000 instructions per file). A name scandir listed is one part without a separator,
# which pathlib's own shortcut for listings (what Path.iterdir builds its paths with)
# appends unparsed: the same Path. Private, so looked up once; `/` where it is missing
# (`Spool.scan`, inline).
_CHILD_OF: Callable[[Path, str], Path] | None = getattr(Path, "_make_child_relpath", None)


@dataclass(slots=True)
class ReadyFile:
    """A settled file in a source folder. Read-only by convention: not frozen, whose
    `__init__` sets each field through `object.__setattr__` (one per file per scan)."""

    source: SourceBase
    path: Path
    mtime: float
    key: tuple[str, str]  # (source name, file name): the spool's and intake's key, no Path.name
    # `path` as a string, as the listing gave it: a fresh Path's first str() costs ~11,000
    # instructions (it formats its parts), more than building it
    where: str
    closed: bool = False  # its writer closed it (close-write seen) and it is unchanged since


class Spool:
    """Lists source folders and tracks settle times; used by the intake thread only."""

    def __init__(self, sources: list[Any]) -> None:
        self.sources: list[SourceBase] = list(sources)
        # (source name, file name) → (size, mtime_ns, monotonic time first seen so)
        self._seen: dict[tuple[str, str], tuple[int, int, float]] = {}
        # `log.level: debug` only: the last settle decision logged per file, so a file
        # waiting through ten scans is one `spool.settling` line, not ten.
        self._told: dict[tuple[str, str], str] = {}
        # path → (size, mtime_ns, monotonic time noted, renamed in) when its writer closed
        # it or renamed it in (inotify only)
        self._closed: dict[str, tuple[int, int, float, bool]] = {}
        self._closed_lock = threading.Lock()

    def note_closed(self, path: str, renamed: bool = False) -> None:
        """A writer closed `path` after writing, or renamed it in: remember how it looked.

        Called from the watchdog observer's thread; the scan treats the file as settled
        while its size and mtime are still what they were then (a CSV file only when it
        was `renamed` in: see the module docstring).
        """
        try:
            info = Path(path).lstat()
        except OSError:
            return
        if stat.S_ISREG(info.st_mode):
            with self._closed_lock:
                self._closed[path] = (info.st_size, info.st_mtime_ns, time.monotonic(), renamed)

    def scan(self, *, ignore_settle: bool = False) -> tuple[list[ReadyFile], float | None]:
        """Return (ready files oldest first, seconds until the next unsettled one may be ready).

        Symlinks and non-regular entries that match the pattern are returned too, so the
        intake can quarantine them; sub-folders are ignored.
        """
        next_due: float | None = None
        debug = logging.getLogger("receipt_agent").isEnabledFor(logging.DEBUG)
        now, mono = time.time(), time.monotonic()
        still_present: set[tuple[str, str]] = set()
        present_paths: set[str] = set()
        # (mtime, name, file): sorted on the first two, oldest first (stable, as before)
        found: list[tuple[float, str, ReadyFile]] = []
        for source in self.sources:
            try:
                candidates = list(list_candidates(source.path, source.glob))
            except OSError:
                continue  # a vanished share; the next scan tries again
            folder, settle, poll = source.path, source.settle, source.poll
            for entry, info in candidates:
                name = entry.name
                key = (source.name, name)
                still_present.add(key)
                present_paths.add(entry.path)
                wait = self._settle_wait(key, info, settle, now, mono, poll)
                was_closed = False
                if self._closed and not poll:
                    closed = self._closed.get(entry.path)
                    if (
                        closed is not None
                        and closed[:2] == (info.st_size, info.st_mtime_ns)
                        and (closed[3] or source.format_name not in CUT_FILE_PARSES)
                    ):
                        wait, was_closed = 0.0, True  # closed by its writer and unchanged since
                if ignore_settle or wait <= 0 or not stat.S_ISREG(info.st_mode):
                    child = folder / name if _CHILD_OF is None else _CHILD_OF(folder, name)
                    ready_file = ReadyFile(
                        source, child, info.st_mtime, key, entry.path, was_closed
                    )
                    found.append((info.st_mtime, name, ready_file))
                    if debug:
                        self._tell(key, "spool.ready", size_bytes=info.st_size)
                else:
                    next_due = wait if next_due is None else min(next_due, wait)
                    if debug:
                        self._tell(key, "spool.settling", wait_s=round(wait, 2))
        for key in set(self._seen) - still_present:
            del self._seen[key]
        for key in set(self._told) - still_present:
            del self._told[key]
        if self._closed:
            with self._closed_lock:  # forget files gone since (noted before this scan)
                for path, (_, _, noted, _) in list(self._closed.items()):
                    if noted < mono and path not in present_paths:
                        del self._closed[path]
        found.sort(key=operator.itemgetter(0, 1))
        return [ready_file for _, _, ready_file in found], next_due

    def _tell(self, key: tuple[str, str], event: str, **details: Any) -> None:
        """Log a file's settle decision (`event`) at debug level when it changed."""
        if self._told.get(key) != event:
            self._told[key] = event
            structlog.get_logger("receipt_agent").debug(
                event, source=key[0], file=key[1], **details
            )

    def _settle_wait(
        self,
        key: tuple[str, str],
        info: os.stat_result,
        settle: float,
        now: float,
        mono: float,
        is_share: bool = False,
    ) -> float:
        by_mtime = settle - (now - info.st_mtime)
        if by_mtime <= 0.0 and not is_share:
            return by_mtime  # settled by its mtime: the min() below is this whatever was seen
        seen = self._seen.get(key)
        if seen is None or seen[:2] != (info.st_size, info.st_mtime_ns):
            self._seen[key] = (info.st_size, info.st_mtime_ns, mono)
            by_observation = settle
        else:
            by_observation = settle - (mono - seen[2])
        if is_share:
            # `poll: true` folders are shares stamped by another machine's clock: an old
            # mtime proves nothing (a file server an hour behind stamps a file still being
            # written an hour ago, and it was read after its first lines, losing the rest:
            # tests/reliability/test_hostile_files.py). Both must agree there; an mtime in
            # the future (a clock ahead) is ignored rather than waited out.
            return by_observation if by_mtime > settle else max(by_mtime, by_observation)
        return min(by_mtime, by_observation)

    def adopt(self, previous: Spool) -> None:
        """Carry settle observations over from the spool this one replaces (SIGHUP)."""
        names = {source.name for source in self.sources}
        self._seen.update({k: v for k, v in dict(previous._seen).items() if k[0] in names})

    def forget(self, ready: ReadyFile) -> None:
        """Drop settle tracking for a file the intake has moved away."""
        self._seen.pop(ready.key, None)
        if self._closed:  # `run --once` and polled shares note none
            with self._closed_lock:
                self._closed.pop(ready.where, None)


class _WakeHandler(FileSystemEventHandler):
    def __init__(
        self, wake: threading.Event, on_closed: Callable[[str, bool], None] | None = None
    ) -> None:
        self._wake = wake
        self._on_closed = on_closed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self._on_closed is not None:
            if isinstance(event, FileClosedEvent):
                self._on_closed(os.fsdecode(event.src_path), False)
            elif isinstance(event, FileMovedEvent):
                self._on_closed(os.fsdecode(event.dest_path), True)
        self._wake.set()


def build_observers(
    sources: list[Any], wake: threading.Event, on_closed: Callable[[str, bool], None] | None = None
) -> list[Any]:
    """Given sources and a wake-up event, return unstarted watchdog observers.

    One inotify observer for all `poll: false` sources, one PollingObserver for the
    `poll: true` ones (SMB/NFS shares, where inotify sees nothing). `on_closed` hears
    each file an inotify source's writer closed after writing or renamed in.
    """
    from watchdog.observers import Observer  # the daemon only; `run --once` never watches
    from watchdog.observers.polling import PollingObserver

    handler = _WakeHandler(wake)
    native_handler = _WakeHandler(wake, on_closed)
    wanted = [FileCreatedEvent, FileMovedEvent, FileClosedEvent]
    observers: list[Any] = []
    native = [s for s in sources if not s.poll]
    polled = [s for s in sources if s.poll]
    if native:
        observer = Observer()
        for source in native:
            observer.schedule(
                native_handler, str(source.path), recursive=False, event_filter=wanted
            )
        observers.append(observer)
    if polled:
        observer = PollingObserver(timeout=max(0.5, min(s.settle for s in polled)))
        for source in polled:
            observer.schedule(handler, str(source.path), recursive=False, event_filter=wanted)
        observers.append(observer)
    return observers


class SpoolWatcher:
    """The observers of every source folder, re-armed when a folder goes and comes back.

    CONTRACT §3: a source folder that disappears (a share unmounted, a till reinstalled)
    is reported once by `check()`, and watched again as soon as it is back, without
    waiting for the minutely rescan: inotify drops a watch whose folder was deleted, and
    a new folder at the same path is a new inode nobody watches. `check()` is cheap (one
    stat per source) and meant for the agent's 0.5 s tick. Never reads or moves files.
    """

    def __init__(
        self,
        sources: list[Any],
        wake: threading.Event,
        on_closed: Callable[[str, bool], None] | None = None,
    ) -> None:
        from watchdog.observers import Observer  # the daemon only; `run --once` never watches
        from watchdog.observers.polling import PollingObserver

        self._sources: list[SourceBase] = list(sources)
        self._handler = _WakeHandler(wake)
        # inotify folders also report files closed after writing (see Spool.note_closed)
        self._native_handler = _WakeHandler(wake, on_closed)
        self._wanted = [FileCreatedEvent, FileMovedEvent, FileClosedEvent]
        self._wake = wake
        self.observers: list[Any] = []
        self._observer_of: dict[str, Any] = {}
        native = [s for s in self._sources if not s.poll]
        polled = [s for s in self._sources if s.poll]
        if native:
            observer = Observer()
            self.observers.append(observer)
            self._observer_of.update({s.name: observer for s in native})
        if polled:
            observer = PollingObserver(timeout=max(0.5, min(s.settle for s in polled)))
            self.observers.append(observer)
            self._observer_of.update({s.name: observer for s in polled})
        self._watches: dict[str, Any] = {}
        # source name → (device, inode) of its folder, None while it is missing: a folder
        # removed and made again between two checks is a new inode with no watch on it.
        self._folder: dict[str, tuple[int, int] | None] = {}

    def start(self) -> list[tuple[SourceBase, OSError]]:
        """Start the observers and watch every folder that exists.

        Return the folders whose watch failed (e.g. the inotify watch limit; the rescan
        still finds their files). Missing folders are left to `check()`.
        """
        for observer in self.observers:
            observer.start()
        failed = []
        for source in self._sources:
            self._folder[source.name] = _identity(source.path)
            if self._folder[source.name] is not None and (error := self._watch(source)):
                failed.append((source, error))
        return failed

    def check(self) -> tuple[list[SourceBase], list[SourceBase]]:
        """Return (folders that went missing, folders that came back) since the last call.

        A folder that came back is watched again and the intake is woken to list it.
        """
        gone, back = [], []
        for source in self._sources:
            now = _identity(source.path)
            before = self._folder.get(source.name)
            if now == before:
                continue
            self._folder[source.name] = now
            if before is not None:
                self._unwatch(source)
                gone.append(source)
            if now is not None:
                self._watch(source)
                back.append(source)
                self._wake.set()
        return gone, back

    def missing(self) -> list[SourceBase]:
        """Return the sources whose folder is missing (as of the last start or check)."""
        return [s for s in self._sources if self._folder.get(s.name) is None]

    def _watch(self, source: SourceBase) -> OSError | None:
        self._unwatch(source)
        try:
            self._watches[source.name] = self._observer_of[source.name].schedule(
                self._handler if source.poll else self._native_handler,
                str(source.path),
                recursive=False,
                event_filter=self._wanted,
            )
        except OSError as error:  # gone again, or the inotify watch limit
            return error
        return None

    def _unwatch(self, source: SourceBase) -> None:
        watch = self._watches.pop(source.name, None)
        if watch is not None:
            with contextlib.suppress(KeyError, OSError):
                self._observer_of[source.name].unschedule(watch)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        info = folder.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None
