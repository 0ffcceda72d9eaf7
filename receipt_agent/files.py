"""File primitives that never lose data: atomic writes, durable moves, sidecars, digests.

Owns how bytes reach the disk. `atomic_write` writes a temporary file in the target
folder, fsyncs it, renames it over the target and fsyncs the folder, so a reader sees the
old file or the new one, never half of one. `move_into` moves a file into a folder without
overwriting anything there (a name collision gets a numbered suffix) and makes the rename
durable; across filesystems it copies, fsyncs, and only then removes the source
(`move_away`: the same, for a caller that needs no Path of the new name). With
`durable=False` a same-filesystem move or a removal skips the folder fsyncs: for callers
that fsync the folders themselves, once for many files (`intake.sync_moves`). Folders it
creates are 0750 and files 0640, and a moved file loses others' bits: everything written
here holds customer data (CONTRACT §3, `permissions`). Stdlib and `permissions` only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from receipt_agent.permissions import FILE_MODE, close_fd_to_others, close_to_others, make_dirs

_CHUNK = 1 << 20
# An empty SHA-256 to copy: `hashlib.sha256()` looks the algorithm up in OpenSSL on every
# call (EVP fetch, ~12,000 instructions under callgrind), a copy does not. Never updated
# itself, so threads may copy it at once.
_SHA256 = hashlib.sha256()


def fsync_dir(folder: Path) -> None:
    """Make a rename or create in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_then_rename(
    tmp: Path, target: Path, fill: Callable[[IO[bytes]], object], *, mode: int = FILE_MODE
) -> None:
    """Write `tmp` with `fill`, fsync it, rename it to `target`; never leave `tmp` behind.

    A write that fails half-way (ENOSPC) removes its temporary file and re-raises; the
    target is untouched (found by tests/reliability/test_disk_full.py).
    """
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Given a path and bytes, replace the file atomically and durably.

    Missing folders are created 0750 and the file 0640 (or stricter, by the umask).
    """
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_then_rename(tmp, path, lambda handle: handle.write(data), mode=mode)
    fsync_dir(path.parent)


def free_name(folder: Path, name: str) -> Path:
    """Given a folder and a file name, return a path in it that does not exist yet.

    Taken means anything `lstat` finds there: a file, a folder, a link (dangling too).
    """
    return Path(_free_name(os.fspath(folder), name))


def _free_name(folder: str, name: str) -> str:
    """`free_name` on strings (intake's archive move needs no Path of it)."""
    # `name` is one file name (no separator): joined as os.path.join would, without its
    # ~5,000 instructions per archived file
    folder = folder if folder.endswith("/") else f"{folder}/"
    candidate = f"{folder}{name}"
    counter = 1
    # Taken: one faccessat(F_OK, AT_SYMLINK_NOFOLLOW) for `exists() or is_symlink()`, what
    # an lstat finds there, a dangling link too, answered without raising FileNotFoundError
    # for the usual free name (~7,800 -> ~1,600 instructions per archived file), and
    # inline (a call more per file). Any error counts as free; the rename that follows
    # then fails the same way.
    while os.access(candidate, os.F_OK, follow_symlinks=False):
        candidate = f"{folder}{name}.{counter}"
        counter += 1
    return candidate


def move_into(source: Path, folder: Path, *, name: str | None = None, durable: bool = True) -> Path:
    """Given a file and a folder, move the file there durably; return its new path.

    Never overwrites: a name already taken gets a `.1`, `.2`, … suffix. Across
    filesystems the copy is fsynced before the source is removed. With `durable=False`
    a rename within one filesystem leaves both folders for the caller to fsync.
    """
    return Path(_move_into(source, folder, name or source.name, durable))


def move_away(
    source: Path | str,
    folder: Path | str,
    *,
    durable: bool = True,
    opened: int | None = None,
    mode: int | None = None,
    name: str | None = None,
) -> None:
    """`move_into` for a caller that does not need the new path (intake's archive move).

    The same move; the new path stays a string (building its Path and then its string
    again cost ~22,000 instructions of pathlib per archived file). `opened`: a descriptor
    of `source`, through which the moved file loses others' bits (see `close_fd_to_others`;
    `mode`: its st_mode from a stat just before the move, when the caller has one).
    `name`: `source`'s file name, when the caller has it already. Both paths may be
    strings (a Path converts itself again for each system call given it).
    """
    _move_into(source, folder, name or Path(source).name, durable, opened, mode)


def _move_into(
    source: Path | str,
    folder: Path | str,
    name: str,
    durable: bool,
    opened: int | None = None,
    mode: int | None = None,
) -> str:
    target = _free_name(os.fspath(folder), name)
    try:
        _rename_into(source, target, folder)
        if opened is None:
            close_to_others(target)
        else:
            close_fd_to_others(opened, mode)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        # The source stays in place until the copy is durable under its final name.
        final, source, folder = Path(target), Path(source), Path(folder)
        with source.open("rb") as reader:
            _write_then_rename(
                folder / f".{final.name}.part",
                final,
                lambda writer: shutil.copyfileobj(reader, writer, _CHUNK),
            )
        fsync_dir(folder)
        source.unlink()
        fsync_dir(source.parent)
        return target
    if durable:
        fsync_dir(Path(folder))
        if Path(folder) != Path(source).parent:
            fsync_dir(Path(source).parent)
    return target


def _rename_into(source: Path | str, target: Path | str, folder: Path | str) -> None:
    """Rename `source` to `target`, creating `folder` (0750) when it is missing.

    The folder exists for all but the first file moved there, so it is made only when the
    rename says ENOENT (one stat per file less than checking first); a source that is gone
    fails the second rename the same way.
    """
    try:
        os.rename(source, target)  # noqa: PTH104 - Path.rename builds a Path nobody uses
    except FileNotFoundError:
        make_dirs(Path(folder))
        os.rename(source, target)  # noqa: PTH104 - as above


def remove(path: Path, *, durable: bool = True) -> None:
    """Delete a file and make the deletion durable (or leave the folder fsync to the caller)."""
    path.unlink()
    if durable:
        fsync_dir(path.parent)


def digest_bytes(data: bytes) -> str:
    """The SHA-256 hex digest of `data` (a file's whole content)."""
    hasher = _SHA256.copy()
    hasher.update(data)
    return hasher.hexdigest()


def digest_stream(stream: IO[bytes]) -> str:
    """Given a binary stream, return its SHA-256 hex digest and rewind it."""
    hasher = _SHA256.copy()
    while chunk := stream.read(_CHUNK):
        hasher.update(chunk)
    stream.seek(0)
    return hasher.hexdigest()
