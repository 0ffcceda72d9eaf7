"""Benchmark 2: steady-state latency. Files of 1 receipt put into the spool of a running
daemon at a fixed rate; p50/p95/p99 from each file's arrival to the sandbox's
acknowledgement (the `created_at` it stored the receipt with, matched by receipt_id).

Two modes: `rename` (settle 0.2 s, flush 0.5 s, files renamed in: issue 8's figure) and
`--default-config` (the shipped defaults: settle 2 s, flush 5 s, concurrency 4; files
written in place and closed, as a till writes them; timed from the close: issue 17's
"QR code at the till" figure).

    python benchmarks/latency.py [--files 600] [--rate 20] [--default-config]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

import harness
from daemon import Daemon


def run_latency(files: int, rate: float, *, default_config: bool = False) -> dict[str, Any]:
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("latency") as work, harness.SandboxProcess(work) as sandbox:
        if default_config:
            config = harness.write_config(work, sandbox.base_url, settle="2s", flush_interval="5s")
        else:
            config = harness.write_config(
                work, sandbox.base_url, settle="0.2s", flush_interval="0.5s"
            )
        spool = work / "spool"
        renamed: dict[str, float] = {}
        with Daemon(config, work / "agent.log") as daemon:
            time.sleep(1.0)  # let the first flush and the token request pass
            start = time.monotonic()
            for number in range(files):
                time.sleep(max(0.0, start + number / rate - time.monotonic()))
                if default_config:
                    (spool / f"lat-{number:06d}.json").write_bytes(harness.file_body(number, 1))
                else:
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
        "mode": "default config, closed in place" if default_config else "rename",
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
        (f"files of 1 receipt, {result['mode']}", f"{result['files']} at {result['rate']:g}/s"),
        ("acknowledged", f"{result['acknowledged']} in {result['posts']} POSTs"),
        ("p50 arrival → acknowledged", f"{result['p50']:.3f} s"),
        ("p95", f"{result['p95']:.3f} s"),
        ("p99", f"{result['p99']:.3f} s"),
        ("max", f"{result['max']:.3f} s"),
        ("daemon CPU", f"{result['cpu_s']:.2f} s over {result['wall_s']:.1f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--default-config", action="store_true")
    arguments = parser.parse_args()
    result = run_latency(arguments.files, arguments.rate, default_config=arguments.default_config)
    print(harness.table(f"Steady-state latency ({result['mode']})", rows(result)))


if __name__ == "__main__":
    main()
