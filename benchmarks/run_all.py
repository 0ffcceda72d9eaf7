"""`make bench`: every benchmark in one run, then ONE summary table of the issue's targets.

The stage limits are measured twice, before and after the drain, and averaged: the vCPU
has a fast and a slow regime, so the agent is compared only with limits from this run.
The memory figures come from the same drain run (RSS sampled every 100 ms).

    python benchmarks/run_all.py            # the issue's sizes (takes a few minutes)
    python benchmarks/run_all.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import burst
import drain
import harness
import idle
import issue17
import latency
import limits
import memory

# The issue's targets.
DRAIN_RATE = 5000  # receipts/s end to end
SHARE_OF_SLOWEST = 0.5
TIMES_NAIVE = 10
PEAK_RSS_MB = 70
FLAT = 0.10
P50_S, P99_S = 1.0, 2.0
IDLE_CPU_PERCENT = 0.5
IDLE_RSS_MB = 60
# Issue 17's targets.
SHARE_OF_API = 0.5  # files of 100, loopback: drain vs the API stand-in's own ceiling
TIMES_NAIVE_FORWARDER = 5  # files of 1: drain vs a naive per-file forwarder
FAR_SHARE = 0.8  # API 50 ms away: drain vs the loopback drain
P99_QR_S = 1.0  # 1 file/s, default config, file closed → 2xx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--receipts", type=int, help="backlog size (default 100,000)")
    parser.add_argument("--burst-files", type=int, help="burst size (default 10,000)")
    parser.add_argument("--latency-files", type=int, help="files dropped at 20/s (default 600)")
    parser.add_argument("--idle-seconds", type=float, help="idle window (default 60)")
    arguments = parser.parse_args()
    quick = arguments.quick
    receipts = arguments.receipts or (20_000 if quick else 100_000)
    burst_files = arguments.burst_files or (2_000 if quick else 10_000)
    latency_files = arguments.latency_files or (200 if quick else 600)
    idle_seconds = arguments.idle_seconds or (20.0 if quick else 60.0)
    limit_receipts = 10_000 if quick else 20_000

    began = time.monotonic()
    info = harness.machine()
    print(f"# receipt-agent benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}, "
          f"Python {info['python']}\n")  # fmt: skip

    limits_before = limits.run_limits(limit_receipts)
    drained = drain.run_drain(receipts, 100)
    stages = drain.run_stages(receipts, 100)
    limits_after = limits.run_limits(limit_receipts)
    mean = {
        key: (limits_before[key] + limits_after[key]) / 2
        for key in limits_before
        if isinstance(limits_before[key], float)
    }
    limit_stages = {
        "validation": mean["finish_rate"],
        "SQLite insert": mean["rows_per_s"],
        "sandbox POST": mean["sandbox_rate"],
    }
    slowest = min(limit_stages, key=lambda name: limit_stages[name])
    mean["slowest_stage"] = slowest
    mean["slowest_rate"] = limit_stages[slowest]
    print(harness.table("Stage limits (mean of before and after the drain)", limits.rows(mean)))
    print(harness.table(f"Backlog drain (run --once, {receipts:,} receipts)", drain.rows(drained)))
    print(harness.table("Backlog drain by stage (separate runs)", drain.stage_rows(stages)))
    mem = memory.memory_figures(drained)
    print(harness.table("Memory under backlog (same drain)", memory.rows(mem)))
    drained_ones = drain.run_drain(receipts, 1)
    mem_ones = memory.memory_figures(drained_ones)
    title = f"Memory under a backlog of {receipts:,} files of 1 receipt"
    print(harness.table(title, memory.rows(mem_ones)))
    bursted = burst.run_burst(burst_files)
    print(harness.table(f"{burst_files:,}-file burst into a watched folder", burst.rows(bursted)))
    lat = latency.run_latency(latency_files, 20.0)
    print(harness.table("Steady-state latency (settle 0.2 s, flush 0.5 s)", latency.rows(lat)))
    idled = idle.run_idle(idle_seconds)
    print(harness.table("Idle cost", idle.rows(idled)))
    i17 = issue17.run(
        2_000 if not quick else 1_000, 20_000 if not quick else 10_000, 1 if quick else 3
    )
    print(harness.table("Files of one, and an API 50 ms away", issue17.rows(i17)))
    qr = latency.run_latency(60 if not quick else 30, 1.0, default_config=True)
    print(harness.table("Latency at 1 file/s, default config", latency.rows(qr)))

    share = drained["rate"] / limit_stages[slowest]
    versus_naive = drained["rate"] / mean["naive_rate"]
    picked_up = bursted["archived"] == burst_files and bursted["acknowledged"] == burst_files
    burst_text = (
        f"{bursted['archived']:,} archived, {bursted['left']} left, "
        f"drained in {bursted['drain_s']:.1f} s"
    )
    slowest_text = f"drain ≥ 50 % of slowest stage ({slowest}, {limit_stages[slowest]:,.0f}/s)"
    burst_vs_naive = bursted["rate"] / mean["naive1_rate"]
    all_latency = lat["acknowledged"] == latency_files
    api_share = drained["rate"] / mean["sandbox_rate"]
    summary = [
        (f"files of 100: drain ≥ 50 % of the API stand-in ({mean['sandbox_rate']:,.0f}/s)",
         f"{api_share * 100:.0f} % ({receipts:,}-receipt drain, wall); "
         f"{i17['near_steady_vs_ceiling'] * 100:.0f} % steady state, issue-17 median round",
         api_share >= SHARE_OF_API),
        (f"files of 1: drain ≥ 5× naive forwarder ({i17['naive_rate']:,.0f}/s), steady state",
         f"{i17['one_steady_vs_naive']:.1f}× (wall incl. start-up {i17['one_vs_naive']:.1f}×)",
         i17["one_steady_vs_naive"] >= TIMES_NAIVE_FORWARDER),
        ("API 50 ms away: drain ≥ 80 % of loopback",
         f"{i17['far_vs_near'] * 100:.0f} % (the far drain is "
         f"{i17['far_steady_vs_ceiling'] * 100:.0f} % of what a bare client with 4 POSTs in "
         f"flight gets, {i17['far_ceiling']:,.0f}/s)",
         i17["far_vs_near"] >= FAR_SHARE),
        ("latency p99 ≤ 1 s at 1 file/s, default config", f"{qr['p99']:.3f} s",
         qr["p99"] <= P99_QR_S and qr["acknowledged"] == qr["files"]),
        ("drain end to end ≥ 5,000 receipts/s", f"{drained['rate']:,.0f}/s",
         drained["rate"] >= DRAIN_RATE),
        (slowest_text, f"{share * 100:.0f} %", share >= SHARE_OF_SLOWEST),
        (f"drain ≥ 10× naive ({mean['naive_rate']:,.0f}/s)", f"{versus_naive:.1f}×",
         versus_naive >= TIMES_NAIVE),
        (f"(files of 1) burst ≥ 10× naive per file ({mean['naive1_rate']:,.0f}/s)",
         f"{burst_vs_naive:.0f}×", burst_vs_naive >= TIMES_NAIVE),
        (f"burst: all {burst_files:,} files picked up", burst_text, picked_up),
        ("drain peak RSS ≤ 70 MB", f"{drained['peak_rss_mb']:.1f} MB",
         drained["peak_rss_mb"] <= PEAK_RSS_MB),
        ("drain RSS flat (last vs first quarter ≤ 10 %)", f"{mem['change'] * 100:+.1f} %",
         abs(mem["change"]) <= FLAT),
        (f"peak RSS ≤ 70 MB over {receipts:,} files of 1 receipt",
         f"{drained_ones['peak_rss_mb']:.1f} MB ({mem_ones['change'] * 100:+.1f} % last vs "
         "first quarter)",
         drained_ones["peak_rss_mb"] <= PEAK_RSS_MB),
        ("latency p50 ≤ 1.0 s at 20 files/s", f"{lat['p50']:.3f} s",
         lat["p50"] <= P50_S and all_latency),
        ("latency p99 ≤ 2.0 s", f"{lat['p99']:.3f} s", lat["p99"] <= P99_S and all_latency),
        ("idle CPU ≤ 0.5 % of one core", f"{idled['cpu_percent']:.3f} %",
         idled["cpu_percent"] <= IDLE_CPU_PERCENT),
        ("idle RSS ≤ 60 MB", f"{idled['rss_mb']:.1f} MB", idled["rss_mb"] <= IDLE_RSS_MB),
    ]  # fmt: skip
    width = max(len(target) for target, _, _ in summary)
    print("## Summary\n")
    print(f"| {'target'.ljust(width)} | measured | met? |\n|{'-' * (width + 2)}|---|---|")
    for target, measured, met in summary:
        print(f"| {target.ljust(width)} | {measured} | {'yes' if met else 'NO'} |")
    print(f"\ncommand: python benchmarks/run_all.py{' --quick' if quick else ''}; "
          f"took {time.monotonic() - began:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
