"""Private modes for everything that holds customer data (CONTRACT §3), whatever the umask.

The state database (and its WAL/SHM), the agent lock, the archive, the quarantine (with
its `.error.json` sidecars) and report files are created readable by the service user
and its group only: files 0640, folders 0750. Group, not owner-only, on purpose: the
systemd unit runs the agent as `receipt-agent:receipt-agent` with `UMask=0027` and
`StateDirectoryMode=0750`, and operators in that group run `status` and `queue list`
against the same database. Others never get a bit. Outside systemd (cron, `run --once`
at install time, a second operator's shell) the usual umask 022 would otherwise make
all of it world-readable.

How, without touching the process umask (a global that tests and libraries share):
- folders are created one level at a time with mode 0750, and files with `os.open(…,
  0640)`; a umask can only remove bits from those, never add any;
- the database file is created here, empty, before SQLite opens it: SQLite gives its
  `-wal`, `-shm` and `-journal` files the database file's own mode;
- a file moved into the archive or quarantine keeps its owner but loses others' bits.

At start, `tighten_state` removes others' bits from what already exists (state folder,
database files, lock, archive and quarantine folders and the quarantined files, report
folders) and returns one warning per change, which `run` logs as `config.warning`.
Files already in an archive folder are protected by their folder's mode and are not
visited (an archive may hold hundreds of thousands of files).

Never deletes, moves or reads a file; only creates empty ones and changes modes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from receipt_agent.config import AgentConfig

FILE_MODE = 0o640
DIR_MODE = 0o750
_OTHERS = stat.S_IRWXO
_DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents as 0750 (or stricter under a strict umask)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)


def create_file(path: Path) -> None:
    """Create `path` empty with mode 0640 when it does not exist yet; leave it otherwise."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def close_to_others(path: Path | str) -> None:
    """Remove others' permission bits from a file the agent just moved in (best effort).

    Only a regular file, opened without following links (a quarantined symlink must not
    lead a chmod to its target). A file owned by another user (the till's) cannot be
    changed; its folder's 0750 mode keeps others out of it all the same.
    """
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            close_fd_to_others(fd)
        finally:
            os.close(fd)


def close_fd_to_others(fd: int, st_mode: int | None = None) -> None:
    """`close_to_others` through a descriptor of the file (best effort): an fchmod acts on
    the open inode itself, so no link can lead it elsewhere. `st_mode`: the file's st_mode
    from a stat of this inode just before (intake's check before the move), saving an fstat.
    """
    try:  # not contextlib.suppress: three calls per archived file for the same thing
        if st_mode is None:
            st_mode = os.fstat(fd).st_mode
        mode = stat.S_IMODE(st_mode)
        if stat.S_ISREG(st_mode) and mode & _OTHERS:
            os.fchmod(fd, mode & ~_OTHERS)
    except OSError:
        pass


def tighten_state(config: AgentConfig) -> list[str]:
    """Given the config, remove others' access from existing state; return one warning each.

    Each warning is `key: path was open to other users (mode 0755); changed to 0750`,
    or says how to fix it when this user may not change the mode.
    """
    warnings: list[str] = []
    seen: set[Path] = set()
    for key, path in _private_paths(config):
        if path in seen:
            continue
        seen.add(path)
        try:
            info = path.lstat()
        except OSError:
            continue  # not there (yet): created private when it is needed
        if stat.S_ISLNK(info.st_mode):
            continue  # the mode of a link is meaningless; its target is not ours to change
        mode = stat.S_IMODE(info.st_mode)
        if not mode & _OTHERS:
            continue
        try:
            path.chmod(mode & ~_OTHERS)
        except OSError as error:
            warnings.append(
                f"{key}: {path} is open to other users (mode {mode:04o}) and cannot be "
                f"changed ({error.strerror}); it holds customer data: run chmod o-rwx {path}"
            )
            continue
        warnings.append(
            f"{key}: {path} was open to other users (mode {mode:04o}); changed to "
            f"{mode & ~_OTHERS:04o} (it holds customer data)"
        )
    return warnings


def _private_paths(config: AgentConfig) -> Iterator[tuple[str, Path]]:
    state = config.state_dir
    yield "state_dir", state
    for suffix in _DB_SUFFIXES:
        yield "state_dir", config.db_path.with_name(config.db_path.name + suffix)
    yield "state_dir", state / "agent.lock"
    for folder in ("archive", "quarantine", "reports"):
        yield "state_dir", state / folder
    for index, source in enumerate(config.sources):
        if source.after == "archive":
            yield f"sources[{index}].archive_dir", config.archive_dir(source)
        quarantine = config.quarantine_dir(source)
        yield f"sources[{index}].quarantine_dir", quarantine
        with contextlib.suppress(OSError):
            for entry in os.scandir(quarantine):
                yield f"sources[{index}].quarantine_dir", Path(entry.path)
    for index, report in enumerate(config.reports):
        yield f"reports[{index}].output_dir", config.report_dir(report)
