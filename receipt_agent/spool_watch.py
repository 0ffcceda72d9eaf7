"""Spool folders' watches: watchdog observers whose only job is to wake the intake.

The folder listing is the truth (`spool.Spool.scan`); a watch only sets a wake-up event,
narrowed to created / moved / closed-after-write events so a burst of 10,000 writes cannot
overflow the kernel's queue with modify events, and tells the spool which files their
writer closed or renamed in (`Spool.note_closed`). Events can still be lost; the agent
rescans at start-up, after every wake-up and every minute. Never reads or moves files.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from receipt_agent.config import SourceBase


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
