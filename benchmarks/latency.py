"""Benchmark 2: steady-state latency. Files of 1 receipt renamed into the spool of a running
daemon at a fixed rate (`settle: 0.2s`, `flush_interval: 0.5s`); p50/p95/p99 from each
file's rename to the sandbox's acknowledgement (the `created_at` it stored the receipt
with, matched by receipt_id).

    python benchmarks/latency.py [--files 600] [--rate 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

import harness
from daemon import Daemon


def run_latency(files: int, rate: float) -> dict[str, Any]:
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("latency") as work, harness.SandboxProcess(work) as sandbox:
        config = harness.write_config(work, sandbox.base_url, settle="0.2s", flush_interval="0.5s")
        spool = work / "spool"
        renamed: dict[str, float] = {}
        with Daemon(config, work / "agent.log") as daemon:
            time.sleep(1.0)  # let the first flush and the token request pass
            start = time.monotonic()
            for number in range(files):
                time.sleep(max(0.0, start + number / rate - time.monotonic()))
                tmp = spool / f".lat-{number:06d}.json.tmp"
                tmp.write_bytes(harness.file_body(number, 1))
                tmp.rename(spool / f"lat-{number:06d}.json")
                renamed[f"R{number:07d}"] = time.time()
            deadline = time.monotonic() + 30
            while sandbox.stats()["unique_receipt_ids"] < files and time.monotonic() < deadline:
                time.sleep(0.1)
            acknowledged = {
                receipt["receipt_id"]: datetime.fromisoformat(
                    receipt["created_at"].replace("Z", "+00:00")
                ).timestamp()
                for receipt in sandbox.receipts()
            }
            posts = sandbox.stats()["receipt_posts"]
            finished = daemon.stop()
    latencies = [acknowledged[key] - at for key, at in renamed.items() if key in acknowledged]
    return {
        "files": files,
        "rate": rate,
        "acknowledged": len(latencies),
        "posts": posts,
        "p50": harness.percentile(latencies, 0.50),
        "p95": harness.percentile(latencies, 0.95),
        "p99": harness.percentile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
        "cpu_s": finished.cpu_s,
        "wall_s": finished.wall_s,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("files of 1 receipt, by rename", f"{result['files']} at {result['rate']:g}/s"),
        ("acknowledged", f"{result['acknowledged']} in {result['posts']} POSTs"),
        ("p50 rename → acknowledged", f"{result['p50']:.3f} s"),
        ("p95", f"{result['p95']:.3f} s"),
        ("p99", f"{result['p99']:.3f} s"),
        ("max", f"{result['max']:.3f} s"),
        ("daemon CPU", f"{result['cpu_s']:.2f} s over {result['wall_s']:.1f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0)
    arguments = parser.parse_args()
    result = run_latency(arguments.files, arguments.rate)
    print(harness.table("Steady-state latency (settle 0.2 s, flush 0.5 s)", rows(result)))


if __name__ == "__main__":
    main()
