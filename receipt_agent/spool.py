"""Spool folders: which files are ready to be taken in (CONTRACT §3 step 1).

The folder listing is the truth; inotify is only a wake-up (`spool_watch`). `Spool.scan()`
streams every source folder with `scandir` and returns the files that match the source's
pattern and have settled, the oldest first, at most `SCAN_LIMIT` at a time (a backlog of
100,000 files is taken in chunk by chunk, never held whole). Events can be lost; the
agent rescans at start-up, after every wake-up and every minute, so a lost event delays
a file, never loses it.

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

import fnmatch
import functools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import structlog

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

    Streams the folder (a backlog of 100,000 files is never a list of 100,000 entries).
    Raise OSError when the folder cannot be listed, also part-way through; an entry
    removed between listing and stat is skipped.
    """
    matches = _candidate_matcher(pattern)
    with os.scandir(folder) as entries:
        for entry in entries:
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
# (`ReadyFiles._ready`).
_CHILD_OF: Callable[[Path, str], Path] | None = getattr(Path, "_make_child_relpath", None)


@dataclass(slots=True)
class ReadyFile:
    """A settled file in a source folder. Read-only by convention: not frozen, whose
    `__init__` sets each field through `object.__setattr__` (one per file per scan)."""

    source: SourceBase
    path: Path
    mtime: float
    key: tuple[str, str]  # (source name, file name): the spool's and intake's key, no Path.name
    # `path` as a string (its folder's string and its name): a fresh Path's first str()
    # costs ~11,000 instructions (it formats its parts), more than building it
    where: str
    closed: bool = False  # its writer closed it (close-write seen) and it is unchanged since


# A scan keeps at most this many ready files, the oldest: a backlog of 100,000 files is
# taken in 10,000 at a time, the folder listed again for each chunk (~10 µs a file),
# instead of held whole.
SCAN_LIMIT = 10_000

# A ready file as a scan keeps it: (mtime, name, its source's index, closed by its writer).
# The first three order the files (oldest first) and are unique: a file name is unique
# in its folder.
_Found = tuple[float, str, int, bool]


class ReadyFiles(Sequence[ReadyFile]):
    """`Spool.scan`'s ready files, oldest first, kept as `_Found` tuples (~170 bytes each).

    Each `ReadyFile` (and its Path) is built when asked for: a ReadyFile with its Path,
    path string and key is ~1.4 KB, and a backlog of 100,000 files of one receipt held as
    ReadyFiles made `run --once` peak at 203 MB. `more`: ready files past the scan's
    `limit` were left out (scan again after these). `present`: the scan's `tracked` keys
    that belong to ready files, whether returned, skipped or past the limit.
    """

    __slots__ = ("_folders", "_found", "_sources", "more", "present")

    def __init__(
        self,
        found: list[_Found],
        sources: list[SourceBase],
        folders: list[str],
        *,
        more: bool = False,
        present: set[tuple[str, str]] | None = None,
    ) -> None:
        self._found, self._sources = found, sources
        self._folders = folders  # each source's folder as a string, ending in "/"
        self.more = more
        self.present: set[tuple[str, str]] = set() if present is None else present

    def __len__(self) -> int:
        return len(self._found)

    @overload
    def __getitem__(self, index: int) -> ReadyFile: ...

    @overload
    def __getitem__(self, index: slice) -> list[ReadyFile]: ...

    def __getitem__(self, index: int | slice) -> ReadyFile | list[ReadyFile]:
        if isinstance(index, slice):
            return [self._ready(one) for one in self._found[index]]
        return self._ready(self._found[index])

    def __iter__(self) -> Iterator[ReadyFile]:
        ready = self._ready
        for one in self._found:
            yield ready(one)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] # compares as a list does

    def last(self) -> tuple[float, str, int] | None:
        """The order of the newest file returned (a later scan's `after`), None if none."""
        return self._found[-1][:3] if self._found else None

    def keys_among(self, wanted: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Return the keys in `wanted` of the files returned (no ReadyFile built)."""
        if not wanted:
            return set()
        sources = self._sources
        return {
            key for _, name, index, _ in self._found
            if (key := (sources[index].name, name)) in wanted
        }  # fmt: skip

    def _ready(self, one: _Found) -> ReadyFile:
        mtime, name, index, closed = one
        source = self._sources[index]
        folder = source.path
        child = folder / name if _CHILD_OF is None else _CHILD_OF(folder, name)
        where = self._folders[index] + name
        return ReadyFile(source, child, mtime, (source.name, name), where, closed)


def _oldest(found: Iterable[_Found], limit: int | None) -> tuple[list[_Found], bool]:
    """(the `limit` oldest of `found`, sorted; whether any were left out), in memory for
    at most 2 × `limit` of them: sorted and cut each time that many are held."""
    kept: list[_Found] = []
    more = False
    for one in found:
        kept.append(one)
        if limit is not None and len(kept) >= 2 * limit:
            kept.sort()
            del kept[limit:]
            more = True
    kept.sort()
    if limit is not None and len(kept) > limit:
        del kept[limit:]
        more = True
    return kept, more


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

    def scan(
        self,
        *,
        ignore_settle: bool = False,
        limit: int | None = None,
        skip: Callable[[tuple[str, str], float, bool], bool] | None = None,
        tracked: Collection[tuple[str, str]] = (),
        after: tuple[float, str, int] | None = None,
    ) -> tuple[ReadyFiles, float | None]:
        """Return (ready files oldest first, seconds until the next unsettled one may be ready).

        Symlinks and non-regular entries that match the pattern are returned too, so the
        intake can quarantine them; sub-folders are ignored. `limit`: at most that many,
        the oldest (`ReadyFiles.more` says more were ready; the seconds are then 0).
        `skip(key, mtime, closed)`: leave a ready file out (in its backoff, held).
        `tracked`: keys to report in `ReadyFiles.present` when ready. `after`: only files
        newer in the scan's order than `ReadyFiles.last()` of an earlier scan.
        Memory: the listing is streamed, a ready file kept costs ~170 bytes, and only the
        files this spool tracks (settling, closed by their writer) are remembered as present.
        """
        present: set[tuple[str, str]] = set()
        next_due: list[float] = []
        found = self._found(ignore_settle, skip, tracked, after, present, next_due)
        ready, more = _oldest(found, limit)
        folders = [os.fspath(source.path) for source in self.sources]
        folders = [where if where.endswith("/") else f"{where}/" for where in folders]
        files = ReadyFiles(ready, self.sources, folders, more=more, present=present)
        if more:
            return files, 0.0
        return files, min(next_due, default=None)

    def _found(
        self,
        ignore_settle: bool,
        skip: Callable[[tuple[str, str], float, bool], bool] | None,
        tracked: Collection[tuple[str, str]],
        after: tuple[float, str, int] | None,
        present: set[tuple[str, str]],
        next_due: list[float],
    ) -> Iterator[_Found]:
        """`scan`'s listing: yield each ready file; note the tracked ones in `present` and
        the shortest settle wait left in `next_due`; forget what left the folders."""
        debug = logging.getLogger("receipt_agent").isEnabledFor(logging.DEBUG)
        now, mono = time.time(), time.monotonic()
        seen, told, closed_files = self._seen, self._told, self._closed
        still_present: set[tuple[str, str]] = set()
        present_paths: set[str] = set()
        wait_min: float | None = None
        for index, source in enumerate(self.sources):
            folder, settle, poll = source.path, source.settle, source.poll
            try:
                for entry, info in list_candidates(folder, source.glob):
                    name = entry.name
                    key = (source.name, name)
                    wait = self._settle_wait(key, info, settle, now, mono, poll)
                    if key in seen or key in told:
                        still_present.add(key)
                    was_closed = False
                    if closed_files and not poll:
                        closed = closed_files.get(entry.path)
                        if closed is not None:
                            present_paths.add(entry.path)
                            if closed[:2] == (info.st_size, info.st_mtime_ns) and (
                                closed[3] or source.format_name not in CUT_FILE_PARSES
                            ):
                                wait, was_closed = 0.0, True  # closed by its writer, unchanged
                    if ignore_settle or wait <= 0 or not stat.S_ISREG(info.st_mode):
                        mtime = info.st_mtime
                        if key in tracked:
                            present.add(key)
                        if debug:
                            self._tell(key, "spool.ready", size_bytes=info.st_size)
                        if after is not None and (mtime, name, index) <= after:
                            continue
                        if skip is None or not skip(key, mtime, was_closed):
                            yield mtime, name, index, was_closed
                    else:
                        wait_min = wait if wait_min is None else min(wait_min, wait)
                        if debug:
                            self._tell(key, "spool.settling", wait_s=round(wait, 2))
            except OSError:
                continue  # a vanished share; the next scan tries again
        for key in set(seen) - still_present:
            del seen[key]
        for key in set(told) - still_present:
            del told[key]
        if closed_files:
            with self._closed_lock:  # forget files gone since (noted before this scan)
                for path, (_, _, noted, _) in list(closed_files.items()):
                    if noted < mono and path not in present_paths:
                        del closed_files[path]
        if wait_min is not None:
            next_due.append(wait_min)

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
