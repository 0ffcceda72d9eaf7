"""The 10,000-file burst: files of 1 receipt written straight (open, write, close; no rename)
into the watched folder of a running daemon. Every file must be picked up, none left
behind by a lost inotify event; reports the write time and the drain time.

    python benchmarks/burst.py [--files 10000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import harness
from daemon import Daemon


def run_burst(files: int, *, timeout_s: float = 600.0) -> dict[str, Any]:
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("burst") as work, harness.SandboxProcess(work) as sandbox:
        config = harness.write_config(work, sandbox.base_url, settle="0.5s", flush_interval="1s")
        spool = work / "spool"
        with Daemon(config, work / "agent.log") as daemon:
            time.sleep(1.0)
            start = time.monotonic()
            for number in range(files):
                (spool / f"burst-{number:06d}.json").write_bytes(harness.file_body(number, 1))
            written_s = time.monotonic() - start
            deadline = start + timeout_s
            acknowledged = 0
            while time.monotonic() < deadline:
                acknowledged = sandbox.stats()["unique_receipt_ids"]
                if acknowledged >= files:
                    break
                time.sleep(0.1)
            drain_s = time.monotonic() - start
            time.sleep(0.5)
            left = len(list(spool.glob("*.json")))
            archived = len(list((work / "state" / "archive" / "till-1").glob("*.json")))
            rss = harness.rss_mb(daemon.pid)
            finished = daemon.stop()
    return {
        "files": files,
        "written_s": written_s,
        "drain_s": drain_s,
        "acknowledged": acknowledged,
        "left": left,
        "archived": archived,
        "rate": acknowledged / drain_s,
        "rss_after_mb": rss,
        "peak_rss_mb": finished.peak_rss_mb,
        "cpu_s": finished.cpu_s,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    written = f"{result['files']:,} in {result['written_s']:.2f} s"
    drained = f"{result['drain_s']:.1f} s ({result['rate']:,.0f} files/s)"
    rss = f"{result['rss_after_mb']:.1f} / {result['peak_rss_mb']:.1f} MB"
    return [
        ("files written straight into the spool", written),
        ("picked up (archived) / left in spool", f"{result['archived']:,} / {result['left']:,}"),
        ("acknowledged by the sandbox", f"{result['acknowledged']:,}"),
        ("drain time (first write → all acknowledged)", drained),
        ("daemon CPU", f"{result['cpu_s']:.2f} s"),
        ("RSS after the burst / peak", rss),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    arguments = parser.parse_args()
    result = run_burst(arguments.files)
    print(harness.table(f"{arguments.files:,}-file burst into a watched folder", rows(result)))


if __name__ == "__main__":
    main()
