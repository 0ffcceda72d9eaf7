"""Benchmark 4: memory under backlog. RSS of `run --once` sampled every 100 ms while the
100,000-receipt backlog drains: peak, and the first-quarter vs last-quarter mean (flat:
within 10 %), which shows the queue is streamed from the state store in batches.
`--per-file 1` makes the backlog 100,000 files of one receipt (the tills' usual export):
the spool is then taken in a scan chunk at a time (spool.SCAN_LIMIT), never listed whole.

    python benchmarks/memory.py [--receipts 100000] [--per-file 100]
"""

from __future__ import annotations

import argparse
from typing import Any

import harness
from drain import run_drain


def memory_figures(drain: dict[str, Any]) -> dict[str, Any]:
    """Given run_drain's result, return peak, quarter means and their ratio.

    Only samples from the first file taken in onwards count: the interpreter's start-up
    (imports, 0 → ~50 MB) is not the backlog draining.
    """
    samples = [rss for at, rss in drain["samples"] if at >= drain["drain_from_s"]]
    quarter = max(1, len(samples) // 4)
    first = sum(samples[:quarter]) / quarter
    last = sum(samples[-quarter:]) / quarter
    return {
        "samples": len(samples),
        "peak_rss_mb": drain["peak_rss_mb"],
        "sampled_peak_mb": max(samples, default=float("nan")),
        "first_quarter_mb": first,
        "last_quarter_mb": last,
        "change": last / first - 1,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("RSS samples (every 100 ms, first file → exit)", str(result["samples"])),
        ("peak RSS (kernel's VmHWM via wait4)", f"{result['peak_rss_mb']:.1f} MB"),
        ("first-quarter mean", f"{result['first_quarter_mb']:.1f} MB"),
        ("last-quarter mean", f"{result['last_quarter_mb']:.1f} MB"),
        ("last vs first quarter", f"{result['change'] * 100:+.1f} %"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--per-file", type=int, default=100, help="receipts per file")
    arguments = parser.parse_args()
    result = memory_figures(run_drain(arguments.receipts, arguments.per_file))
    files = -(-arguments.receipts // arguments.per_file)
    title = f"Memory under backlog ({arguments.receipts:,} receipts in {files:,} files)"
    print(harness.table(title, rows(result)))


if __name__ == "__main__":
    main()
