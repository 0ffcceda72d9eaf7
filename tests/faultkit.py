"""What the crash and reliability scenarios (issue 5) share: real processes, real files.

- `SandboxProcess`: the sandbox API in its own process (`python -m receipt_agent.sandbox
  --port 0 --port-file F`), driven through its `/_sandbox/*` hooks; it can be stopped (the
  API is then refused at the TCP level) and restarted on the same port.
- `AgentProcess`: one `receipt-agent run -c CFG` subprocess whose stdout/stderr go to
  files (a full pipe must never stall the daemon under test); `kill9()`, `term()`,
  `wait_exit()`.
- `db_check()`: `PRAGMA integrity_check` and the receipt counts, read with a separate
  SQLite connection, as an operator's sqlite3 shell would.
- `record_result()`: one JSON line of figures per scenario run, appended to the file
  named by `$RELIABILITY_RESULTS` (how tests/reliability/RESULTS.md was produced) and
  printed (shown with `-s` or `-rA`).
Nothing here mocks anything: these are handles on real processes and files.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from support import BIN, CLIENT_ID, SECRET, read_log, wait_until


class SandboxProcess:
    """The sandbox as a separate process on 127.0.0.1; faults set by flags or the hook."""

    def __init__(self, workdir: Path, **faults: Any) -> None:
        self.workdir = workdir
        self.faults = faults
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> SandboxProcess:
        """Start on port 0 the first time, on the same port after that; wait until listening."""
        port_file = self.workdir / f"sandbox-{self.starts}.port"
        argv = [
            sys.executable, "-m", "receipt_agent.sandbox", "--port", str(self.port),
            "--port-file", str(port_file), "--client-id", CLIENT_ID, "--client-secret", SECRET,
        ]  # fmt: skip
        for name, value in self.faults.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        stderr = (self.workdir / f"sandbox-{self.starts}.stderr").open("wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        self.starts += 1
        wait_until(port_file.exists, timeout=15)
        self.port = int(port_file.read_text().strip())
        return self

    def stop(self) -> None:
        """SIGTERM the sandbox and wait: from now on its port refuses connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _hook(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """`GET /_sandbox/stats`: requests by status, receipt_posts, duplicates, …"""
        return dict(self._hook("GET", "/_sandbox/stats"))

    def set_faults(self, **faults: Any) -> None:
        """`POST /_sandbox/faults`, applied atomically by the sandbox."""
        self._hook("POST", "/_sandbox/faults", content=orjson.dumps(faults))

    def receipt_ids(self, account: str) -> list[str]:
        """`GET /_sandbox/receipt-ids`: the accepted receipt_ids, in acceptance order."""
        return list(self._hook("GET", f"/_sandbox/receipt-ids?account={account}")["receipt_ids"])


class AgentProcess:
    """One `receipt-agent run` subprocess; output to files next to the config."""

    def __init__(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        folder = config.parent
        number = len(list(folder.glob("agent-*.stderr")))
        self.stderr_path = folder / f"agent-{number}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [str(BIN / "receipt-agent"), "run", "-c", str(config), *extra],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {})},
            )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no handler, no drain, no flush; the kernel drops the process."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def ensure_stopped(self) -> None:
        """Teardown: SIGKILL whatever is still running (a failed test must not leak it)."""
        if self.proc.poll() is None:
            self.kill9()


def wait_for_event(log: Path, name: str, count: int = 1, timeout: float = 20) -> list[Any]:
    """Wait until the JSON log holds at least `count` events named `name`; return them."""

    def found() -> list[Any]:
        lines = [line for line in read_log(log) if line.get("event") == name]
        return lines if len(lines) >= count else []

    return list(wait_until(found, timeout=timeout))


def db_check(db_path: Path) -> dict[str, Any]:
    """Return integrity_check, receipt counts by state and the number of files recorded."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM receipts GROUP BY state"))
        files = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        ids = [row[0] for row in conn.execute("SELECT receipt_id FROM receipts")]
    finally:
        conn.close()
    return {"integrity": integrity, "counts": counts, "files": files, "receipt_ids": ids}


def pending_count(db_path: Path) -> int:
    """Pending receipts, read as `status` reads them (read-only, WAL lets readers in)."""
    if not db_path.exists():
        return -1
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM receipts WHERE state = 'pending'").fetchone()[0]
        )
    except sqlite3.OperationalError:
        return -1  # the schema is not created yet
    finally:
        conn.close()


def all_files(folder: Path) -> list[str]:
    """Every entry in a folder, hidden and temporary ones included (sorted names)."""
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def record_result(scenario: str, **figures: Any) -> None:
    """Print the scenario's figures and append them to $RELIABILITY_RESULTS when set."""
    line = orjson.dumps({"scenario": scenario, "at": time.time(), **figures}).decode()
    print(f"RESULT {line}")
    target = os.environ.get("RELIABILITY_RESULTS")
    if target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
