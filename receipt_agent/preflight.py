"""`run`'s own checks before it takes in anything (CONTRACT §1, issue 12).

As the user the agent runs as: every spool folder readable and writable (files are moved
out of it), every archive, quarantine and state folder writable or creatable, the log
file writable, the state database and its lock writable when they exist, and the state
folder not on a read-only mount. Each problem is `(path.to.key, message)`; `cli` turns
them into exit 2, so systemd sees a configuration error instead of a traceback exit 1
that it would restart forever. `run --once` reports a missing source folder itself
(`spool.missing`, exit 3), so `once=True` leaves that one to it.

Looks only (stat, access, statvfs); never creates, writes or deletes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from receipt_agent.config import AgentConfig
from receipt_agent.config.environment import environment_problems

Problem = tuple[str, str]
_STATE_FILES = ("state.db", "state.db-wal", "state.db-shm", "agent.lock")


def run_problems(config: AgentConfig, *, once: bool = False) -> list[Problem]:
    """Given a config, return every problem that stops `run` from working as this user."""
    problems, _ = environment_problems(config)
    if once:
        missing = {
            f"sources[{index}].path"
            for index, source in enumerate(config.sources)
            if not source.path.exists()
        }
        problems = [(key, message) for key, message in problems if key not in missing]
    read_only = _read_only_mount(config.state_dir)
    if read_only is not None:
        # Say why the folder cannot be written; "not writable by this user" would send
        # the operator to chmod, which cannot help on a read-only mount.
        problems = [(key, message) for key, message in problems if key != "state_dir"]
        problems.insert(
            0,
            (
                "state_dir",
                f"{config.state_dir} is on a read-only file system; the queue database is "
                "written there: mount it read-write or choose another state_dir",
            ),
        )
    elif config.state_dir.is_dir():
        for name in _STATE_FILES:
            path = config.state_dir / name
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                problems.append(
                    (
                        "state_dir",
                        f"{path} is not readable and writable by this user; give it to the "
                        "service user (chown)",
                    )
                )
    return list(dict.fromkeys(problems))


def _read_only_mount(folder: Path) -> str | None:
    """Return the nearest existing folder when `folder` is on a read-only file system."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        flags = os.statvfs(probe).f_flag
    except OSError:
        return None
    return str(probe) if flags & os.ST_RDONLY else None
