"""The state store's two locks: the agent lock on its folder, and the fair write lock.

`lock_dir`: one agent per state directory, by an flock on `agent.lock` holding the pid.
`FairLock`: StateDB's process-wide write lock, first come first served.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import IO

from receipt_agent import permissions
from receipt_agent.errors import AgentLockedError


def lock_dir(state_dir: Path) -> IO[str]:
    """Take the agent lock on `state_dir`; return the open lock file (keep it open).

    Raise AgentLockedError when another agent holds it.
    """
    permissions.make_dirs(state_dir)  # 0750/0640 whatever the umask (CONTRACT §3)
    permissions.create_file(state_dir / "agent.lock")
    handle = (state_dir / "agent.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise AgentLockedError(
            f"{state_dir}: another receipt-agent (pid {holder}) is running on this state "
            "directory; stop it first, or give this one its own state_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class FairLock:
    """A first-come, first-served lock for the store's writes (a ticket lock).

    threading.Lock lets the thread that releases it take it straight back: on one core
    the intake thread closed a 50 ms group and opened the next before a sender thread
    waiting to record its 2xx batches `sent` ever ran, so that batch waited out groups.
    """

    def __init__(self) -> None:
        self._turn = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0
        self._abandoned: set[int] = set()  # tickets whose threads stopped waiting

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._next
            self._next += 1
            try:
                while ticket != self._serving:
                    self._turn.wait()
            except BaseException:  # interrupted while queued: the turn must not stall
                if ticket == self._serving:
                    self._advance()
                else:
                    self._abandoned.add(ticket)
                raise

    def __exit__(self, *_: object) -> None:
        with self._turn:
            self._advance()

    def _advance(self) -> None:
        """Serve the next ticket still waiting (call with `_turn` held)."""
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._turn.notify_all()

    @property
    def waiting(self) -> int:
        """Threads queued behind the holder."""
        with self._turn:
            return max(0, self._next - self._serving - 1 - len(self._abandoned))
