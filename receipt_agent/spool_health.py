"""What `status` shows of the folders (CONTRACT §1, issue 12): spools, quarantine, unreadable.

Per source: the files waiting in its spool (matching its pattern, as the agent sees them)
and the oldest one's age; the files in its quarantine and how many arrived within
`--max-age` (by their `.error.json`, written when they were quarantined); the files the
daemon could not read or move (its `file_faults` record in the state store's meta, kept
while the file is still in the spool). `problems()` turns those into the degraded
reasons of `status`: a file waiting longer than `--max-age`, a file quarantined within
it, an unreadable file, a missing source folder.

Looks only (scandir, stat); run as whoever runs `status`, so a folder this user cannot
list is reported as such rather than guessed. Never reads file contents or writes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from receipt_agent.config import AgentConfig
from receipt_agent.file_faults import FAULTS_META_KEY
from receipt_agent.spool import list_candidates

_SIDECAR = ".error.json"


@dataclass(frozen=True)
class SourceFolders:
    """One source's spool and quarantine as `status` sees them."""

    source: str
    path: str
    waiting: int
    oldest_waiting_age_s: float | None
    spool_error: str | None  # "missing", or why the folder cannot be listed
    quarantined: int
    quarantined_recent: int  # within --max-age
    quarantine_dir: str
    unreadable: list[dict[str, Any]]


def inspect(
    config: AgentConfig, meta: dict[str, str], *, max_age_s: float, now: float
) -> list[SourceFolders]:
    """Given the config and the state store's meta, return each source's folders."""
    faults = _faults(meta.get(FAULTS_META_KEY))
    views = []
    for source in config.sources:
        waiting, oldest_mtime, spool_error = _spool(source.path, source.glob)
        quarantine = config.quarantine_dir(source)
        quarantined, recent = _quarantine(quarantine, now - max_age_s)
        unreadable = [
            fault
            for fault in faults
            if fault.get("source") == source.name
            and (spool_error is not None or (source.path / str(fault.get("file"))).exists())
        ]
        views.append(
            SourceFolders(
                source=source.name,
                path=str(source.path),
                waiting=waiting,
                oldest_waiting_age_s=(
                    None if oldest_mtime is None else round(max(0.0, now - oldest_mtime), 1)
                ),
                spool_error=spool_error,
                quarantined=quarantined,
                quarantined_recent=recent,
                quarantine_dir=str(quarantine),
                unreadable=unreadable,
            )
        )
    return views


def problems(views: list[SourceFolders], *, max_age_s: float) -> list[str]:
    """Given the folder views, return the degraded reasons (one sentence each)."""
    found = []
    for view in views:
        if view.spool_error == "missing":
            found.append(f"{view.source}: the spool folder {view.path} is missing")
        age = view.oldest_waiting_age_s
        if age is not None and age > max_age_s:
            found.append(
                f"{view.source}: {view.waiting} file(s) waiting in {view.path}, the oldest for "
                f"{age:.0f}s (threshold {max_age_s:.0f}s)"
            )
        found.extend(
            f"{view.source}/{fault.get('file')}: cannot be read or moved (since "
            f"{fault.get('since')}): {fault.get('error')}"
            for fault in view.unreadable
        )
        if view.quarantined_recent:
            found.append(
                f"{view.source}: {view.quarantined_recent} file(s) quarantined in the last "
                f"{max_age_s:.0f}s; see {view.quarantine_dir} and each file's .error.json"
            )
    return found


def as_json(views: list[SourceFolders]) -> list[dict[str, Any]]:
    return [asdict(view) for view in views]


def _spool(folder: Path, pattern: str) -> tuple[int, float | None, str | None]:
    """(files waiting, the oldest one's mtime, or why the folder cannot be listed), counted
    as the folder streams past (a spool of 100,000 files is never a list of them)."""
    waiting, oldest = 0, None
    try:
        for _, info in list_candidates(folder, pattern):
            waiting += 1
            oldest = info.st_mtime if oldest is None else min(oldest, info.st_mtime)
    except FileNotFoundError:
        return 0, None, "missing"
    except OSError as error:
        return 0, None, f"cannot be listed by this user ({error.strerror})"
    return waiting, oldest, None


def _quarantine(folder: Path, since: float) -> tuple[int, int]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0, 0
    names = {entry.name for entry in entries}
    files = recent = 0
    for entry in entries:
        if entry.name.endswith(_SIDECAR) or entry.name.startswith("."):
            continue
        files += 1
        sidecar = entry.name + _SIDECAR
        try:
            at = (
                (folder / sidecar).stat().st_mtime
                if sidecar in names
                else entry.stat(follow_symlinks=False).st_mtime
            )
        except OSError:
            continue
        recent += at >= since
    return files, recent


def _faults(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    try:
        loaded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(loaded, list):
        return []
    faults = [fault for fault in loaded if isinstance(fault, dict)]
    for fault in faults:
        if isinstance(fault.get("since"), int | float):
            since = datetime.fromtimestamp(fault["since"], UTC)
            fault["since"] = since.isoformat(timespec="seconds")
    return faults
