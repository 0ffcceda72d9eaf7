"""Benchmark 1: backlog drain. N receipts in files of 100 already in the spool → `run --once`.

Prints wall seconds, receipts/s, peak RSS, CPU seconds and POSTs of the end-to-end run
(`run_drain`, which also samples RSS every 100 ms for benchmarks/memory.py). run --once
sends full batches while it still takes files in, so the stages overlap in that run;
`run_stages` measures each alone, in two more runs on a fresh spool: the API down first
(intake only: files → state store, first → last `file.accepted` in the log), then up
(send only: state store → acknowledged, first → last `batch.sent`).

    python benchmarks/drain.py [--receipts 100000] [--per-file 100]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import harness


def run_drain(
    receipts: int, per_file: int, *, sample_s: float = 0.1, sandbox_flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Fill a spool, run `receipt-agent run --once` against a sandbox process; return figures."""
    harness.pin(harness.OTHER_CPU)
    with (
        harness.workdir("drain") as work,
        harness.SandboxProcess(work, *sandbox_flags) as sandbox,
    ):
        config = harness.write_config(work, sandbox.base_url)
        files = harness.fill_spool(work / "spool", receipts, per_file)
        before = sandbox.stats()
        samples: list[tuple[float, float]] = []
        started_wall = time.time()
        started = time.monotonic()
        process = harness.start_agent(config, "--once")
        done = threading.Event()

        def sample() -> None:
            while not done.wait(sample_s):
                value = harness.rss_mb(process.pid)
                if value is not None:
                    samples.append((time.monotonic() - started, value))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        finished = harness.wait_child(process, started)
        done.set()
        sampler.join()
        after = sandbox.stats()
        log = harness.read_log(work / "agent.log")
        accepted = [harness.log_time(line) for line in log if line["event"] == "file.accepted"]
        sent = [harness.log_time(line) for line in log if line["event"] == "batch.sent"]
        acknowledged = after["unique_receipt_ids"] - before["unique_receipt_ids"]
        if not accepted or not sent:
            raise RuntimeError(f"drain logged nothing: {finished.stderr.decode()[-2000:]}")
        left = len(list((work / "spool").glob("*.json")))
    if finished.returncode != 0 or acknowledged != receipts or left:
        raise RuntimeError(
            f"drain failed: exit {finished.returncode}, {acknowledged}/{receipts} acknowledged, "
            f"{left} files left; {finished.stderr.decode()[-2000:]}"
        )
    intake_s = _span(accepted)
    send_s = _span(sent)
    # The steady state (see steady_window): what a daemon that started long ago drains.
    steady_s = steady_window(accepted, sent)
    return {
        "receipts": receipts,
        "files": files,
        "wall_s": finished.wall_s,
        "rate": receipts / finished.wall_s,
        "cpu_s": finished.cpu_s,
        "cpu_us_per_receipt": finished.cpu_s / receipts * 1e6,
        "peak_rss_mb": finished.peak_rss_mb,
        "posts": after["receipt_posts"] - before["receipt_posts"],
        "startup_s": accepted[0] - intake_s / len(accepted) - started_wall,
        "drain_from_s": accepted[0] - started_wall,
        "intake_s": intake_s,
        "intake_rate": receipts / intake_s,
        "send_s": send_s,
        "send_rate": receipts / send_s,
        "steady_s": steady_s,
        "steady_rate": receipts / steady_s,
        "samples": samples,
    }


def steady_window(accepted: list[float], sent: list[float]) -> float:
    """Seconds from the first file taken in to the last 2xx: the drain without start-up.

    The rule: the last `batch.sent` minus the first `file.accepted`, plus one mean gap
    between `file.accepted` lines (the first file's own intake, done before its line).
    A daemon starts once and runs for years; `run --once` pays the interpreter, imports,
    config and state store opening (benchmarks/startup.py) before its first file, which
    the wall rate counts and this window does not. `file.accepted` is logged after its
    group's commit, so the window can start up to one group late (GroupCommit: 64 files
    or 50 ms, whichever comes first), against windows of seconds here.
    """
    first_file_s = (accepted[-1] - accepted[0]) / max(1, len(accepted) - 1)
    return sent[-1] - accepted[0] + first_file_s


def _span(times: list[float]) -> float:
    """Seconds from the first to the last event, plus one mean gap for the first one."""
    return (times[-1] - times[0]) * len(times) / max(1, len(times) - 1)


def run_stages(receipts: int, per_file: int) -> dict[str, Any]:
    """Intake alone (API unreachable), then send alone (API up), on one state store."""
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("stages") as work, harness.SandboxProcess(work) as sandbox:
        harness.fill_spool(work / "spool", receipts, per_file)
        closed = harness.closed_port()
        config = harness.write_config(work, f"http://127.0.0.1:{closed}/v1")
        started = time.monotonic()
        intake_run = harness.wait_child(harness.start_agent(config, "--once"), started)
        log = harness.read_log(work / "agent.log")
        accepted = [harness.log_time(line) for line in log if line["event"] == "file.accepted"]
        config = harness.write_config(work, sandbox.base_url)
        started = time.monotonic()
        send_run = harness.wait_child(harness.start_agent(config, "--once"), started)
        log = harness.read_log(work / "agent.log")
        sent = [harness.log_time(line) for line in log if line["event"] == "batch.sent"]
        acknowledged = sandbox.stats()["unique_receipt_ids"]
    if send_run.returncode != 0 or acknowledged != receipts or not accepted:
        raise RuntimeError(f"stage runs failed: {send_run.stderr.decode()[-2000:]}")
    intake_s, send_s = _span(accepted), _span(sent)
    return {
        "intake_s": intake_s,
        "intake_rate": receipts / intake_s,
        "intake_cpu_s": intake_run.cpu_s,
        "send_s": send_s,
        "send_rate": receipts / send_s,
        "send_cpu_s": send_run.cpu_s,
    }


def stage_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    intake = f"{result['intake_s']:.2f} s, {result['intake_rate']:,.0f} receipts/s"
    send = f"{result['send_s']:.2f} s, {result['send_rate']:,.0f} receipts/s"
    return [
        ("intake alone (files → state store; API down)", intake),
        ("send alone (state store → acknowledged)", send),
        ("slowest stage", "intake" if result["intake_rate"] < result["send_rate"] else "send"),
    ]


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    cpu = f"{result['cpu_s']:.2f} s ({result['cpu_us_per_receipt']:.0f} µs/receipt)"
    intake = f"{result['intake_s']:.2f} s, {result['intake_rate']:,.0f} receipts/s"
    send = f"{result['send_s']:.2f} s, {result['send_rate']:,.0f} receipts/s"
    return [
        ("receipts / files", f"{result['receipts']:,} / {result['files']:,}"),
        ("wall", f"{result['wall_s']:.2f} s"),
        ("end to end", f"{result['rate']:,.0f} receipts/s"),
        ("CPU (agent process)", cpu),
        ("peak RSS", f"{result['peak_rss_mb']:.1f} MB"),
        ("POSTs", f"{result['posts']:,}"),
        ("stage: start-up", f"{result['startup_s']:.2f} s"),
        ("intake window, overlapping send (first → last file)", intake),
        ("send window, overlapping intake (first → last batch)", send),
        ("steady state (first file taken in → last 2xx)",
         f"{result['steady_s']:.2f} s, {result['steady_rate']:,.0f} receipts/s"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--per-file", type=int, default=100)
    arguments = parser.parse_args()
    result = run_drain(arguments.receipts, arguments.per_file)
    print(harness.table("Backlog drain (run --once)", rows(result)))
    stages = run_stages(arguments.receipts, arguments.per_file)
    print(harness.table("Backlog drain by stage (separate runs)", stage_rows(stages)))


if __name__ == "__main__":
    main()
