"""Intake: one ready spool file → the state store, then archive; or quarantine (CONTRACT §3).

For each file, in this order:
1. open it without following symlinks; refuse non-regular files and files over the
   source's `max_file_size` (UnsafeFileError, never read);
2. hash it; content already recorded → archive (or delete) it, queue nothing;
3. parse and map it record by record, inside ONE state-store transaction that records the
   receipts (valid → pending, invalid → rejected with field errors, already known →
   local duplicate) and the file's digest (`intake_record.write_records`);
4. only after that commit, archive or delete the file (CONTRACT §3.4). The folders'
   fsync that makes the move durable is batched: `sync_moves` once per intake pass, not
   two per file. Safe because the commit came first: a power cut that undoes a move puts
   the file back in the spool, and its committed digest makes the next pass archive it
   without queueing anything (`already_seen`). Nothing is lost or sent twice.
A file that changed between that open and the move (a till still appending) stays in the
spool (`file.changed`) and is read again once it settles; the daemon also keeps a file
whose mtime is younger than 3 × settle, for tills that pause longer than settle.
A file that cannot be parsed at all is quarantined (`quarantine`: its `.error.json`
first, then the file, STYLE §4). A state store that cannot be written
(disk full) leaves the file exactly where it was and raises StateStoreError.

Emits file.accepted, file.changed, file.quarantined, receipt.rejected (validation) and
receipt.duplicate (where=local). Never deletes a spool file before its commit.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from receipt_agent import files, logs, quarantine, statedb
from receipt_agent.config import AgentConfig, SourceBase
from receipt_agent.errors import InputFileError, UnsafeFileError
from receipt_agent.intake_record import NO_SKIPS, FileOutcome, write_records

# Per-receipt log lines per file; beyond this a file's outcome line carries the counts.
_MAX_RECEIPT_LINES = 100


def open_safely(path: Path, limit_bytes: int) -> IO[bytes]:
    """Given a spool path, return it opened for reading, never through a symlink.

    Raise UnsafeFileError for symlinks, non-regular files and files over `limit_bytes`.
    """
    fd, _ = _open_checked(path, limit_bytes)
    return os.fdopen(fd, "rb")


def _open_checked(
    path: Path, limit_bytes: int, where: str | None = None
) -> tuple[int, os.stat_result]:
    """`open_safely`'s checks; return the open descriptor and its fstat. `where`: the
    path as a string, when the caller has it (each system call given a Path converts it)."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path if where is None else where, flags)
    except OSError as error:
        if path.is_symlink():
            raise UnsafeFileError(
                "the file is a symbolic link; receipt-agent never follows links in a spool "
                "folder; copy the real file in instead",
                detail=f"refused before reading ({error.strerror})",
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(
                "not a regular file (a pipe, socket or device); tills must write plain files"
            )
        if info.st_size > limit_bytes:
            raise UnsafeFileError(
                f"the file is {info.st_size} bytes, over this source's max_file_size of "
                f"{limit_bytes} bytes; split the export or raise max_file_size",
                detail="refused without reading it",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, info


# A file up to this size is read once, whole, and parsed from memory: one or two read(2)
# calls instead of a buffered file object, a hashing pass, a seek and a second pass (most
# till exports are one receipt of ~1 KiB). Larger files stream (SAF-T/POSLog, up to 2 GB).
_READ_WHOLE_BYTES = 1 << 20


def _read_for_intake(fd: int, size_bytes: int) -> tuple[IO[bytes], str]:
    """Return the stream to parse (at its start) and the SHA-256 hex digest of its bytes.

    The digest covers every byte up to end of file, as the parser will see them.
    """
    if size_bytes <= _READ_WHOLE_BYTES:
        data = os.read(fd, size_bytes + 1)
        # Exactly its fstat size, one byte short of the request: end of file (no second
        # read to find it). A file that grows after this read fails the check before its
        # move (`_leave_in_spool`) and is read again.
        while len(data) != size_bytes and len(data) <= _READ_WHOLE_BYTES:
            more = os.read(fd, 1 << 16)
            if not more:
                break
            data += more  # grew since its fstat (or a short read)
        if len(data) <= _READ_WHOLE_BYTES:
            return io.BytesIO(data), files.digest_bytes(data)
        os.lseek(fd, 0, os.SEEK_SET)  # grew past the limit: stream it after all
    stream = os.fdopen(fd, "rb", closefd=False)
    return stream, files.digest_stream(stream)


def take_in(
    path: Path,
    source: SourceBase,
    db: statedb.StateDB,
    config: AgentConfig,
    *,
    hold_s: float = 0.0,
    unparsed_hold_s: float = 0.0,
    held_mtime: float | None = None,
    defer: Callable[[Callable[[], None]], None] | None = None,
    where: str | None = None,
    name: str | None = None,
) -> FileOutcome:
    """Given a ready spool file, record its receipts and archive it, or quarantine it.

    A file that changed since it was opened (a till still appending) is left in the spool
    (outcome `changed`, `file.changed` logged), and so is one whose mtime is younger than
    `hold_s` (outcome `held`): its receipts are queued, and it is archived or quarantined
    at a later visit, once it is old enough and unchanged (CONTRACT §3); one that does not
    parse is left so while younger than `unparsed_hold_s`, never quarantined. `held_mtime`:
    the caller held this file after reading it, with this mtime; another mtime now means
    it changed since (`file.changed`), and no second `file.accepted` line is logged.
    `defer`: inside a `GroupCommit` the records are not committed yet, so the move and
    the outcome lines are handed to it, to run after the group's commit. `where`: `path`
    as a string, and `name` its file name, when the caller has them (the spool's listing
    does).
    Return the outcome. Raise StateStoreError (the file stays in the spool) when the
    state store cannot be written, OSError when archive or quarantine cannot be written.
    """
    if name is None:
        name = path.name  # a Path computes it on every use
    if where is None:  # a Path converts itself again for every system call given it
        where = os.fspath(path)
    log = logs.bound(source=source.name, file=name)
    # In a group the file is checked once, after the commit (`_now_or_after_commit`): a
    # check before it would see the same inode, less late.
    check = defer is None
    try:
        folder, limit_bytes = _source_facts(config, source)
        fd, opened = _open_checked(path, limit_bytes, where)
        # Open to others: its archived copy is closed to them through this descriptor
        kept = (
            _KeptOpen(fd) if opened.st_mode & stat.S_IRWXO and source.after == "archive" else None
        )
        try:
            stream, digest = _read_for_intake(fd, opened.st_size)
            try:
                if db.has_file(digest):
                    if left := _leave_in_spool(path, opened, hold_s, log, check=check):
                        if left == "held" and held_mtime is None:  # its one line, as below
                            log.info(
                                "file.accepted", receipts=0, rejected=0, skipped=NO_SKIPS,
                                already_seen=True, archived=False,
                            )  # fmt: skip
                        return FileOutcome(source.name, name, left)
                    held = held_mtime is not None
                    seen = "archived" if held else "already_seen"

                    def archive_seen(changed: bool, st_mode: int | None) -> None:
                        if changed:  # file.changed was logged; it is read again
                            if kept is not None:
                                kept.close()
                            return
                        _finish(path, where, name, source, folder, kept, st_mode)
                        if held:  # held after its read: file.accepted was logged
                            log.debug("file.archived")
                        else:
                            log.info(
                                "file.accepted", receipts=0, rejected=0, skipped=NO_SKIPS,
                                already_seen=True,
                            )  # fmt: skip

                    _now_or_after_commit(archive_seen, defer, where, opened, log)
                    return FileOutcome(source.name, name, seen)
                if held_mtime is not None and held_mtime != opened.st_mtime:
                    # Read, held, and grown since: read again (§3)
                    log.info("file.changed", size_bytes=opened.st_size)
                outcome, rejections, duplicates = write_records(stream, path, source, db, digest)
            except InputFileError:
                # Half a file still being written does not parse: never quarantine it
                # while the till may append to it (the rows would land in quarantine).
                if left := _leave_in_spool(path, opened, max(hold_s, unparsed_hold_s), log):
                    return FileOutcome(source.name, name, left)
                raise
            finally:
                stream.close()
            left = _leave_in_spool(path, opened, hold_s, log, check=check)
        finally:
            if kept is None:
                os.close(fd)
    except InputFileError as error:
        return quarantine.quarantine(path, source, config, error, log)
    if left is not None:
        outcome.outcome = left

    def archive_recorded(changed: bool, st_mode: int | None) -> None:
        # Only after the commit may the file leave the spool (§3.4).
        left_now = "changed" if changed else left
        if left_now is None:
            _finish(path, where, name, source, folder, kept, st_mode)
        else:
            outcome.outcome = left_now
            if kept is not None:
                kept.close()
        for store_id, receipt_id, message in rejections[:_MAX_RECEIPT_LINES]:
            log.warning("receipt.rejected", store_id=store_id, receipt_id=receipt_id, error=message)
        for store_id, receipt_id in duplicates[:_MAX_RECEIPT_LINES]:
            log.info("receipt.duplicate", store_id=store_id, receipt_id=receipt_id, where="local")
        log.info(
            "file.accepted",
            receipts=outcome.receipts,
            rejected=outcome.rejected,
            duplicates=outcome.duplicates,
            skipped=outcome.skipped,
            **({} if left_now is None else {"archived": False}),
        )

    _now_or_after_commit(archive_recorded, defer, where, opened, log)
    return outcome


def _now_or_after_commit(
    action: Callable[[bool, int | None], None],
    defer: Callable[[Callable[[], None]], None] | None,
    where: str,
    opened: os.stat_result,
    log: Any,
) -> None:
    """Run `action` now (its commit is done), or hand it to the group to run after its commit.

    `action(changed, st_mode)`. Now: the caller has checked the file (`_leave_in_spool`).
    Deferred, the file is checked here, once, after the commit (the group skipped the check
    before it: this one is later, so it sees whatever that one would have): a till that
    appended to it, or replaced it, while the group was open gets `file.changed` and the
    file stays in the spool to be read again (its queued receipts come back as local
    duplicates, not resent), never archived half-read: `action(True, None)`. Unchanged,
    `st_mode` is its lstat's, for the archive move (no fstat of it again).
    """
    if defer is None:
        action(False, None)
        return
    read = (opened.st_dev, opened.st_ino, opened.st_size, opened.st_mtime_ns)  # _fingerprint

    def checked() -> None:
        try:
            listed = os.lstat(where)
        except FileNotFoundError:
            action(False, None)  # gone: the move reports it
            return
        if (listed.st_dev, listed.st_ino, listed.st_size, listed.st_mtime_ns) != read:
            log.info("file.changed", size_bytes=listed.st_size, read_bytes=opened.st_size)
            action(True, None)
            return
        action(False, listed.st_mode)

    defer(checked)


def _leave_in_spool(
    path: Path, opened: os.stat_result, hold_s: float, log: Any, *, check: bool = True
) -> str | None:
    """Return `changed` or `held` when the file must stay in the spool, else None.

    `changed`: its size, mtime or inode moved since it was opened: rows arrived after the
    read, so archiving it now would bury them (CONTRACT §3); it is read again once it
    settles, and the receipts already queued come back as local duplicates, not resent.
    `held`: its mtime is younger than `hold_s`: a till pausing between appends for longer
    than `settle` may still write to it (the daemon passes 3 × settle).
    One lstat of the path: while it names the inode that was read, it shows that inode's
    size and mtime now (an fstat of the open file would show the same); another inode
    there is a change too. `check=False` (a group's file, checked after the commit):
    `held` only.
    """
    if check:
        try:
            listed = os.lstat(path)
        except FileNotFoundError:
            return None  # gone: the move reports it
        if _fingerprint(listed) != _fingerprint(opened):
            log.info("file.changed", size_bytes=listed.st_size, read_bytes=opened.st_size)
            return "changed"
    if hold_s > 0.0 and 0.0 <= time.time() - opened.st_mtime < hold_s:
        return "held"
    return None


def _fingerprint(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _finish(
    path: Path,
    where: str,
    name: str,
    source: SourceBase,
    folder: str,
    kept: _KeptOpen | None,
    st_mode: int | None = None,
) -> None:
    # Not durable yet: the caller's sync_moves fsyncs the folders once per pass (step 4).
    if source.after == "delete":
        files.remove(path, durable=False)
        return
    try:
        files.move_away(
            where, folder, durable=False, opened=None if kept is None else kept.fd,
            mode=st_mode, name=name,
        )  # fmt: skip
    finally:
        if kept is not None:
            kept.close()


class _KeptOpen:
    """The descriptor intake read a file through, kept open until its archive move.

    The move then closes the archived copy to others with one fchmod on it (never through
    a path, so never through a link) instead of an lstat, open, fstat and close of the new
    path. Closed after the move, or when the move's action is dropped unrun (a group that
    was abandoned or could not commit): whoever drops the last reference closes it.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    __del__ = close


# id(source) → (source, config, config.archive_dir(source) as a string, its size limit).
# The Path joins cost ~10-20 µs per archived file, and the limit two properties per file;
# kept per source object, checked by identity (the entry holds both objects, so their ids
# cannot be reused while it exists; a SIGHUP reload brings new objects and new entries).
# Used by the one intake thread (or run --once's pass).
_SOURCE_FACTS: dict[int, tuple[SourceBase, AgentConfig, str, int]] = {}
_SOURCE_FACTS_MAX = 256  # sources × reloads; cleared past it


def _source_facts(config: AgentConfig, source: SourceBase) -> tuple[str, int]:
    """(the source's archive folder as a string, its max file size in bytes)."""
    known = _SOURCE_FACTS.get(id(source))
    if known is None or known[0] is not source or known[1] is not config:
        if len(_SOURCE_FACTS) >= _SOURCE_FACTS_MAX:
            _SOURCE_FACTS.clear()
        folder = os.fspath(config.archive_dir(source))
        known = (source, config, folder, source.size_limit_bytes)
        _SOURCE_FACTS[id(source)] = known
    return known[2], known[3]


def sync_moves(sources: list[Any], config: AgentConfig) -> None:
    """Given the sources of an intake pass, make its archive moves and deletions durable.

    Fsyncs each source folder and archive folder once. Raise OSError when one cannot be
    synced (the moves may then be undone by a power cut, which costs a re-archive only).
    """
    for source in sources:
        folders = [source.path]
        if source.after == "archive":
            folders.append(config.archive_dir(source))
        for folder in folders:
            if folder.is_dir():
                files.fsync_dir(folder)
