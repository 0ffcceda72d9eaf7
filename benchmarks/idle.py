"""Benchmark 3: idle cost. The daemon with production settings (settle 2 s, flush 5 s) and
nothing to do: CPU seconds (utime+stime from /proc/<pid>/stat), RSS, and wake-ups
(context switches summed over /proc/<pid>/task/*/status) over the window.

    python benchmarks/idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import harness
from daemon import Daemon


def run_idle(seconds: float) -> dict[str, Any]:
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("idle") as work, harness.SandboxProcess(work) as sandbox:
        config = harness.write_config(work, sandbox.base_url, settle="2s", flush_interval="5s")
        with Daemon(config, work / "agent.log") as daemon:
            time.sleep(3.0)  # start-up and the first flush are not idling
            cpu_before = harness.cpu_s(daemon.pid)
            voluntary, involuntary, threads = harness.context_switches(daemon.pid)
            start = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            cpu = harness.cpu_s(daemon.pid) - cpu_before
            voluntary_after, involuntary_after, _ = harness.context_switches(daemon.pid)
            rss = harness.rss_mb(daemon.pid) or float("nan")
            daemon.stop()
    return {
        "seconds": elapsed,
        "cpu_s": cpu,
        "cpu_percent": cpu / elapsed * 100,
        "rss_mb": rss,
        "threads": threads,
        "wakeups_per_s": (voluntary_after - voluntary + involuntary_after - involuntary) / elapsed,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("idle window", f"{result['seconds']:.0f} s"),
        ("CPU", f"{result['cpu_s']:.3f} s ({result['cpu_percent']:.3f} % of one core)"),
        ("RSS", f"{result['rss_mb']:.1f} MB"),
        ("threads", str(result["threads"])),
        ("wake-ups (context switches, all threads)", f"{result['wakeups_per_s']:.1f} /s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    print(harness.table("Idle cost", rows(run_idle(arguments.seconds))))


if __name__ == "__main__":
    main()
