"""Fault isolation with the daemon as an unprivileged user, as the systemd unit runs it (issue 12).

The agent runs as `nobody` (subprocess `user=`/`group=`) in a folder tree it owns, while
root, as a till writing its exports 0600 as another user would, drops files it cannot read.
Skipped with a reason when the test process cannot switch users (not root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from support import ACCOUNT, BIN, SECRET, base_config, drop, events, make_receipt, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

NOBODY = 65534


def _can_switch_users() -> bool:
    return hasattr(os, "setuid") and os.geteuid() == 0


# The console script's interpreter may sit where nobody cannot reach it (a pyenv build
# under /root); the system's python of the same version with this venv's site-packages
# runs the same installed package.
_SITE = next(iter(Path(sys.prefix).glob("lib/python*/site-packages")), None)
_LAUNCH = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); "
    "from receipt_agent.cli import main; sys.argv[0] = 'receipt-agent'; main()"
)


def _nobody_argv() -> list[str] | None:
    """Return how to start receipt-agent as nobody, or None when nothing works."""
    if not _can_switch_users():
        return None
    candidates = [[str(BIN / "receipt-agent")]]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if _SITE is not None and shutil.which(version, path="/usr/bin:/usr/local/bin"):
        candidates.append([str(shutil.which(version, path="/usr/bin:/usr/local/bin")),
                           "-c", _LAUNCH, str(_SITE)])  # fmt: skip
    for argv in candidates:
        try:
            probe = subprocess.run(
                [*argv, "--version"], user=NOBODY, group=NOBODY, extra_groups=[],
                capture_output=True, timeout=30, check=False, cwd="/",
            )  # fmt: skip
        except OSError:
            continue
        if probe.returncode == 0:
            return argv
    return None


NOBODY_ARGV = _nobody_argv()
needs_root = pytest.mark.skipif(
    NOBODY_ARGV is None,
    reason="running the agent as another user needs root and an interpreter nobody can run",
)


def _without_coverage(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if not name.startswith("COVERAGE_")}


class Workspace:
    """A folder tree owned by `nobody`, outside pytest's root-only tmp folder."""

    def __init__(self, root: Path, sandbox: Sandbox) -> None:
        self.root = root
        self.sandbox = sandbox
        self.log = root / "agent.log"
        self.state = root / "state"
        self.secret = root / "client_secret"
        self.secret.write_text(SECRET + "\n")
        self.secret.chmod(0o600)
        self.processes: list[subprocess.Popen[bytes]] = []

    def spool(self, name: str) -> Path:
        folder = self.root / "spool" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def config(self, sources: list[str], **source_settings: Any) -> Path:
        raw = base_config(
            base_url=self.sandbox.base_url, spool_dir=self.spool(sources[0]),
            state_dir=self.state, secret_file=self.secret, log_file=self.log,
        )  # fmt: skip
        template = raw["sources"][0] | source_settings
        raw["sources"] = [
            template | {"name": name, "path": str(self.spool(name)), "store": {"id": name}}
            for name in sources
        ]
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.give_to_nobody()
        return path

    def give_to_nobody(self) -> None:
        """chown -R nobody: the tree the service user owns on a store machine."""
        if not _can_switch_users():
            return
        for folder, dirs, names in os.walk(self.root):
            for path in [Path(folder), *(Path(folder) / name for name in dirs + names)]:
                with contextlib.suppress(OSError):  # a read-only mount in the tree
                    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)

    def as_nobody(self, *args: str, wait: bool = True) -> Any:
        """Run `receipt-agent ARGS` as nobody; a finished process, or a running one."""
        kwargs: dict[str, Any] = {
            "user": NOBODY, "group": NOBODY, "extra_groups": [], "cwd": self.root,
            # No coverage in processes run as nobody: it cannot write the data file in the
            # checkout, and coverage's at-exit traceback would land in the stderr we check.
            "env": {**_without_coverage(os.environ), "HOME": str(self.root)},
        }  # fmt: skip
        assert NOBODY_ARGV is not None
        argv = [*NOBODY_ARGV, *args]
        if wait:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=60, check=False, **kwargs
            )
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs
        )
        self.processes.append(process)
        return process

    def start_agent(self, config: Path) -> subprocess.Popen[bytes]:
        """`receipt-agent run` as nobody where the test can switch users, else as itself."""
        if NOBODY_ARGV is not None:
            process: subprocess.Popen[bytes] = self.as_nobody("run", "-c", str(config), wait=False)
        else:
            process = subprocess.Popen(
                [str(BIN / "receipt-agent"), "run", "-c", str(config)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            self.processes.append(process)
        wait_until(lambda: events(self.log, "agent.started"), timeout=15)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> tuple[int, str]:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=40)
        return process.returncode, stderr.decode(errors="replace")


@pytest.fixture
def workspace(sandbox: Sandbox) -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="receipt-agent-i12-"))
    root.chmod(0o755)
    space = Workspace(root, sandbox)
    try:
        yield space
    finally:
        for process in space.processes:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_daemon_as_nobody_with_an_unreadable_file_delivers_the_twenty_others(
    workspace: Workspace, sandbox: Sandbox
) -> None:
    """One export the service user cannot read holds back nothing else.

    1. Two sources; in `a` the oldest file is root's, mode 0600 (a till writing as
       another user); ten good files in `a` and ten in `b`.
    2. The daemon runs as nobody.
    Result: all 20 receipts at the sandbox within seconds; the bad file still in `a`;
    `file.unreadable` logged once (error names EACCES) though it is retried with backoff;
    no `intake.paused`.
    3. Stop the daemon; `status` as nobody.
    Result: exit 1 (degraded) naming `a/0-bad.json`; one file waiting in `a`.
    4. The state folder handed to root (group nobody, 0750/0640): a read-only operator.
    Result: `status` and `queue list` still work (the database is opened read-only).
    """
    config = workspace.config(["a", "b"])
    bad = drop(workspace.spool("a"), "0-bad.json", [make_receipt(999, store_id="a")])
    for number in range(20):
        name = "a" if number < 10 else "b"
        drop(workspace.spool(name), f"r-{number:02d}.json", [make_receipt(number, store_id=name)])
    workspace.give_to_nobody()
    os.chown(bad, 0, 0)
    bad.chmod(0o600)
    started = time.monotonic()
    agent = workspace.as_nobody("run", "-c", str(config), wait=False)
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 20, timeout=20)
    delivered_s = time.monotonic() - started
    # Two retries at least (2 s, then 4 s backoff) before looking at the log.
    wait_until(lambda: time.monotonic() - started > 7, timeout=10)
    code, stderr = workspace.stop(agent)
    assert code == 0, stderr
    assert sorted(sandbox.receipt_ids(ACCOUNT)) == [f"R{n:06d}" for n in range(20)]
    assert [p.name for p in workspace.spool("a").iterdir()] == ["0-bad.json"]
    unreadable = events(workspace.log, "file.unreadable")
    assert len(unreadable) == 1, unreadable
    assert (unreadable[0]["source"], unreadable[0]["file"]) == ("a", "0-bad.json")
    assert "EACCES" in unreadable[0]["error"]
    assert events(workspace.log, "intake.paused") == []

    # `status` as nobody after the daemon stopped: degraded, naming the file.
    status = workspace.as_nobody("status", "--json", "-c", str(config))
    assert status.returncode == 1, status.stderr
    report = orjson.loads(status.stdout)
    assert any("a/0-bad.json" in problem for problem in report["problems"]), report
    folders = {view["source"]: view for view in report["folders"]}
    assert folders["a"]["waiting"] == 1
    assert [fault["file"] for fault in folders["a"]["unreadable"]] == ["0-bad.json"]
    assert folders["b"]["waiting"] == 0
    assert folders["b"]["unreadable"] == []

    # A read-only operator (group member, the state owned by root, 0750/0640) can still
    # run `status` and `queue list`: the database is opened read-only.
    for folder, _, names in os.walk(workspace.state):
        os.chown(folder, 0, NOBODY)
        Path(folder).chmod(0o750)
        for name in names:
            os.chown(Path(folder) / name, 0, NOBODY)
            (Path(folder) / name).chmod(0o640)
    status = workspace.as_nobody("status", "--json", "-c", str(config))
    assert status.returncode == 1, status.stderr
    assert orjson.loads(status.stdout)["counts"]["sent"] == 20
    listing = workspace.as_nobody("queue", "list", "--json", "-c", str(config))
    assert listing.returncode == 0, listing.stderr
    assert len(orjson.loads(listing.stdout)) == 20
    assert sorted(p.name for p in workspace.state.iterdir()) == sorted(
        p.name for p in workspace.state.iterdir() if p.stat().st_uid == 0
    )  # nothing created by the read-only user
    print(f"FIGURE unreadable: 20 delivered in {delivered_s:.1f}s (agent start included)")


_APPENDER = """
import sys, time
path, bursts, per_burst, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with open(path, "ab", buffering=0) as out:
    for burst in range(bursts):
        rows = sys.stdin.readline().rstrip("\\n").split("\\t")
        out.write(b"".join(row.encode() + b"\\n" for row in rows))
        if burst < bursts - 1:
            time.sleep(pause)
"""


def test_daemon_with_a_slow_appender_delivers_every_row_exactly_once(
    workspace: Workspace, sandbox: Sandbox
) -> None:
    """A till that holds its export open and pauses 2 × settle between appends loses nothing.

    1. A writer process opens `slow.json` (NDJSON) and appends 5 bursts of 5 receipts,
       pausing 2 × settle (0.8 s) between them, 4 pauses; the daemon is running.
    Result: all 25 receipts at the sandbox, each exactly once (no duplicates sent); the
    file archived only after the last burst, whole; `file.changed` logged.
    """
    settle = 0.4
    config = workspace.config(["a"], settle=f"{settle}s")
    agent = workspace.start_agent(config)
    bursts = [
        "\t".join(orjson.dumps(make_receipt(b * 5 + i, store_id="a")).decode() for i in range(5))
        for b in range(5)
    ]
    target = workspace.spool("a") / "slow.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(target), "5", "5", str(2 * settle)],
        stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdin is not None
    writer.stdin.write("\n".join(bursts) + "\n")
    writer.stdin.close()
    assert writer.wait(30) == 0
    archive = workspace.state / "archive" / "a"
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) >= 25, timeout=20)
    wait_until((archive / "slow.json").exists, timeout=20)
    code, stderr = workspace.stop(agent)
    assert code == 0, stderr
    assert sorted(sandbox.receipt_ids(ACCOUNT)) == [f"R{n:06d}" for n in range(25)]
    assert sandbox.stats()["duplicates"] == 0
    assert len((archive / "slow.json").read_bytes().splitlines()) == 25
    assert list(workspace.spool("a").iterdir()) == []
    assert events(workspace.log, "file.changed")
    print(
        f"FIGURE slow appender: 25 rows, {len(events(workspace.log, 'file.accepted'))} reads, "
        f"{len(events(workspace.log, 'file.changed'))} file.changed, 0 lost, 0 sent twice"
    )


def test_daemon_watches_a_removed_and_recreated_folder_again_within_seconds(
    workspace: Workspace, sandbox: Sandbox
) -> None:
    """A spool folder removed and made again is reported and watched again at once.

    1. The daemon watches source `a`; one file is delivered.
    2. The folder is removed (a share unmounted, a till reinstalled).
    Result: `spool.missing` with the source and path, within seconds.
    3. The folder is made again; a file is dropped in it 1.5 s later.
    Result: that file delivered within 5 s of the mkdir (the new folder is watched; no
    waiting for the minutely rescan).
    """
    config = workspace.config(["a"])
    folder = workspace.spool("a")
    agent = workspace.start_agent(config)
    drop(folder, "first.json", [make_receipt(1, store_id="a")])
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 1, timeout=10)
    shutil.rmtree(folder)
    missing = wait_until(lambda: events(workspace.log, "spool.missing"), timeout=5)
    assert (missing[0]["source"], missing[0]["path"]) == ("a", str(folder))
    folder.mkdir()
    workspace.give_to_nobody()
    recreated = time.monotonic()
    # Drop the file a little later, so only a new watch (not the wake-up when the folder
    # is seen again) can make the agent find it before the minutely rescan.
    wait_until(lambda: time.monotonic() - recreated > 1.5, timeout=5)
    drop(folder, "second.json", [make_receipt(2, store_id="a")])
    wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 2, timeout=5)
    delivered_s = time.monotonic() - recreated
    wait_until(lambda: not list(folder.iterdir()), timeout=5)  # archived once held 3 × settle
    code, stderr = workspace.stop(agent)
    assert code == 0, stderr
    assert len(events(workspace.log, "spool.missing")) == 1
    assert list(folder.iterdir()) == []
    print(f"FIGURE folder recreated: new file delivered {delivered_s:.2f}s after mkdir")


@needs_root
def test_run_as_nobody_with_a_spool_it_cannot_write_exits_2_naming_the_key(
    workspace: Workspace,
) -> None:
    """`run` checks its folders as the user it runs as before taking anything in.

    1. Source `a`'s folder belongs to root (0755): nobody can list it, not move files out.
    Result: exit 2; stderr names `sources[0].path`; no traceback; nothing in the log
    about intake.
    """
    config = workspace.config(["a", "b"])
    os.chown(workspace.spool("a"), 0, 0)
    result = workspace.as_nobody("run", "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("sources[0].path: "), result.stderr
    assert "writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not events(workspace.log, "agent.started")


@pytest.fixture
def read_only_state(workspace: Workspace) -> Iterator[Path]:
    """The workspace's state folder as a read-only tmpfs mount; skip where mount is refused."""
    workspace.state.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=0755", "tmpfs", str(workspace.state)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
    try:
        yield workspace.state
    finally:
        subprocess.run(["umount", "-l", str(workspace.state)], check=False)


def test_run_with_state_folder_on_a_read_only_mount_exits_2_without_traceback(
    workspace: Workspace, read_only_state: Path
) -> None:
    """A state folder on a read-only mount is a configuration error, not a crash loop.

    1. state_dir is a read-only tmpfs; `run` and `run --once` start.
    Result: both exit 2 with `state_dir: … read-only file system …`; no traceback (a
    traceback exit 1 would make systemd restart the agent forever).
    """
    config = workspace.config(["a"])
    for once in ([], ["--once"]):
        result = subprocess.run(
            [str(BIN / "receipt-agent"), "run", "-c", str(config), *once],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("state_dir: "), result.stderr
        assert "read-only file system" in result.stderr
        assert "Traceback" not in result.stderr


def test_run_once_with_a_corrupt_file_among_good_ones_exits_3_with_a_summary(
    workspace: Workspace, sandbox: Sandbox
) -> None:
    """`run --once` delivers the good files and says on one line what needs a person.

    1. Ten good files and one corrupt one in source `a`; source `b`'s folder is missing.
    2. `run --once` (as nobody where the test can switch users).
    Result: exit 3; stdout is one summary line: 10 taken in, 1 quarantined, 0 left in the
    spool, 10 sent, 0 pending, the missing folder named; `spool.missing` logged for `b`.
    """
    config = workspace.config(["a", "b"])
    workspace.spool("b").rmdir()
    for number in range(10):
        drop(workspace.spool("a"), f"r-{number:02d}.json", [make_receipt(number, store_id="a")])
    drop(workspace.spool("a"), "corrupt.json", b'[{"receipt_id": "R1", ')
    old = time.time() - 60  # written a minute ago: settled, past the 3 x settle hold
    for path in workspace.spool("a").iterdir():
        os.utime(path, (old, old))
    workspace.give_to_nobody()
    argv = ("run", "--once", "-c", str(config))
    if NOBODY_ARGV is not None:
        result = workspace.as_nobody(*argv)
    else:
        result = subprocess.run(
            [str(BIN / "receipt-agent"), *argv], capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == [
        "files: 10 taken in, 1 quarantined, 0 left in the spool; receipts: 10 sent, "
        "0 duplicate, 0 rejected, 0 pending; missing source folders: b"
    ]
    assert len(sandbox.receipt_ids(ACCOUNT)) == 10
    missing = events(workspace.log, "spool.missing")
    assert [(e["source"], e["path"]) for e in missing] == [("b", str(workspace.root / "spool/b"))]
    print(f"FIGURE run --once: exit {result.returncode}: {result.stdout.strip()}")


def test_run_once_with_only_a_corrupt_file_exits_3_and_a_clean_pass_exits_0(
    workspace: Workspace, sandbox: Sandbox
) -> None:
    """A quarantine alone makes exit 3; the next pass, with nothing new, exits 0."""
    config = workspace.config(["a"])
    corrupt = drop(workspace.spool("a"), "corrupt.json", b"{")
    os.utime(corrupt, (time.time() - 60, time.time() - 60))
    first = subprocess.run(
        [str(BIN / "receipt-agent"), "run", "--once", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    assert "0 taken in, 1 quarantined" in first.stdout
    second = subprocess.run(
        [str(BIN / "receipt-agent"), "run", "--once", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("files: 0 taken in, 0 quarantined, 0 left in the spool;")
