"""What every benchmark shares: the sandbox as its own process, configs, spools, /proc readers.

The agent under test and the sandbox run as separate processes pinned to different cores
(the agent on CPU 0, the sandbox and this driver on CPU 1), so the agent is measured as a
store machine runs it: one core for us, the other for everything else. Not a test module.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AGENT = str(BIN / "receipt-agent")
ACCOUNT = "T12345678"
CLIENT_ID = "bench"
SECRET = "bench-secret"  # noqa: S105 - the sandbox's credentials for this run only
AGENT_CPU = 0
OTHER_CPU = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpus() -> int:
    return os.cpu_count() or 1


def pin(cpu: int) -> None:
    """Pin the calling process to `cpu` when the machine has it (no-op on one core)."""
    if cpus() > cpu:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def machine() -> dict[str, str]:
    """Return nproc, CPU model name and kernel for RESULTS.md."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(cpus()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- receipts and spools -------------------------------------------------------------------


def make_receipt(number: int, *, store_id: str = "sc029", amount: int = 12500) -> dict[str, Any]:
    """A realistic receipt: the shape of tests/support.py's make_receipt (one item, VAT 25 %)."""
    basis = amount * 4 // 5  # before VAT; amounts are VAT-inclusive (the totals rule)
    return {
        "store": {"id": store_id},
        "receipt_id": f"R{number:07d}",
        "purchase_at": "2026-11-20T10:15:00+01:00",
        "currency": "NOK",
        "gross_amount": amount,
        "net_amount": amount,
        "items": [
            {
                "id": "A1",
                "line_id": 1,
                "description": "Kaffe",
                "quantity": 1,
                "gross_amount": amount,
                "net_amount": amount,
                "tax_percent": 25,
                "tax_lines": [{"amount": amount - basis, "percentage": 25, "tax_basis": basis}],
            }
        ],
        "payments": [{"amount": amount, "type_id": "CARD", "line_id": 1}],
    }


def file_body(first: int, count: int) -> bytes:
    """A dintero-json file of `count` receipts numbered from `first` (an array, or one object)."""
    receipts = [make_receipt(n) for n in range(first, first + count)]
    return orjson.dumps(receipts if count > 1 else receipts[0])


def fill_spool(folder: Path, receipts: int, per_file: int, *, first: int = 0) -> int:
    """Write `receipts` receipts in files of `per_file`, settled (mtime 10 s ago); return files."""
    folder.mkdir(parents=True, exist_ok=True)
    past = time.time() - 10
    files = 0
    for start in range(first, first + receipts, per_file):
        count = min(per_file, first + receipts - start)
        path = folder / f"z-{start:08d}.json"
        path.write_bytes(file_body(start, count))
        os.utime(path, (past, past))
        files += 1
    return files


# --- the sandbox ---------------------------------------------------------------------------


class SandboxProcess:
    """`python -m receipt_agent.sandbox` in its own process on the other core."""

    def __init__(self, workdir: Path, *flags: str) -> None:
        self.workdir = workdir
        self.flags = flags  # fault flags, e.g. ("--delay-s", "0.05") for an API 50 ms away
        self.port_file = workdir / "sandbox.port"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> SandboxProcess:
        command = [
            sys.executable, "-m", "receipt_agent.sandbox", "--port", "0",
            "--port-file", str(self.port_file), "--client-id", CLIENT_ID,
            "--client-secret", SECRET, *self.flags,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: pin(OTHER_CPU),  # noqa: PLW1509 - no threads yet in the driver
        )
        deadline = time.monotonic() + 20
        while not self.port_file.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text().strip())
        self._http = httpx.Client(base_url=self.url, timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.get("/_sandbox/stats").json()
        return answer

    def receipts(self) -> list[dict[str, Any]]:
        answer = self._http.get("/_sandbox/receipts", params={"account": ACCOUNT}).json()
        receipts: list[dict[str, Any]] = answer["receipts"]
        return receipts

    def reset(self) -> None:
        self._http.post("/_sandbox/reset")

    def token(self) -> str:
        answer = httpx.post(
            f"{self.base_url}/accounts/{ACCOUNT}/auth/token",
            auth=(CLIENT_ID, SECRET),
            json={
                "grant_type": "client_credentials",
                "audience": f"https://api.dintero.com/v1/accounts/{ACCOUNT}",
            },
        )
        return str(answer.json()["access_token"])


def closed_port() -> int:
    """A loopback port nobody listens on (the API "down": connection refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the agent -----------------------------------------------------------------------------


def write_config(workdir: Path, base_url: str, **overrides: Any) -> Path:
    """Write a one-source dintero-json config into `workdir`; return its path."""
    secret = workdir / "client_secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    (workdir / "spool").mkdir(exist_ok=True)
    source = {
        "name": "till-1",
        "path": str(workdir / "spool"),
        "format": "dintero-json",
        "settle": overrides.pop("settle", "0.5s"),
        "store": {"id": "sc029", "name": "SC Oslo"},
    }
    config: dict[str, Any] = {
        "dintero": {
            "base_url": base_url,
            "account_id": ACCOUNT,
            "client_id": CLIENT_ID,
            "client_secret_file": str(secret),
            "timeout": "30s",
        },
        "state_dir": str(workdir / "state"),
        "log": {"file": str(workdir / "agent.log"), "format": "json", "level": "info"},
        "sources": [source],
        "batch": {"max_receipts": 100, "flush_interval": overrides.pop("flush_interval", "5s")},
        "retry": {"initial": "0.2s", "max": "2s"},
    }
    config.update(overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(config: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `receipt-agent run -c CONFIG ARGS` pinned to the agent's core."""
    return subprocess.Popen(
        [AGENT, "run", "-c", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: pin(AGENT_CPU),  # noqa: PLW1509 - no threads yet in the driver
    )


@dataclass
class Finished:
    """A finished child: exit code and its own rusage (from wait4, not RUSAGE_CHILDREN)."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    voluntary_switches: int
    stderr: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


def wait_child(process: subprocess.Popen[bytes], started: float) -> Finished:
    """Reap `process` with wait4 and return its own resource usage."""
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Finished(
        returncode=process.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        voluntary_switches=usage.ru_nvcsw,
        stderr=stderr,
    )


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def log_time(line: dict[str, Any]) -> float:
    """A log line's `timestamp` (ISO-8601 UTC) as unix seconds."""
    from datetime import datetime

    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


# --- /proc ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Current VmRSS of `pid` in MB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    """utime + stime of `pid` (all threads) in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid: int) -> tuple[int, int, int]:
    """(voluntary, involuntary, threads) summed over every thread of `pid`."""
    voluntary = involuntary = threads = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
            threads += 1
    return voluntary, involuntary, threads


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder on a disk (/var/tmp, never a tmpfs where fsync is free), removed."""
    with tempfile.TemporaryDirectory(prefix=f"ra-bench-{prefix}-", dir="/var/tmp") as name:
        yield Path(name)


# --- output --------------------------------------------------------------------------------


def table(title: str, rows: list[tuple[str, str]]) -> str:
    """Render two-column rows as a small Markdown table under a title."""
    width = max(len(name) for name, _ in rows)
    lines = [
        f"### {title}",
        "",
        f"| {'metric'.ljust(width)} | value |",
        f"|{'-' * (width + 2)}|---|",
    ]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
