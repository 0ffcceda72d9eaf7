"""Issue 17's figures, each a ratio of two runs made side by side in the same process.

- files of 1 receipt, loopback: the agent's `run --once` drain vs a naive per-file
  forwarder (reads each file and POSTs it over one keep-alive connection as it finds it,
  then deletes it: no queue, no state, no fsync). Given BOTH ways, because the two are
  not timed alike: the naive loop runs inside this process and is timed from its first
  file (no interpreter start, no imports), while `run --once` is a fresh process.
  * wall: the agent's receipts over `run --once`'s whole wall time, start-up included
    (interpreter, imports, config, state store: benchmarks/startup.py);
  * steady state: its receipts over the window from the first file taken in to the last
    2xx (the last `batch.sent` minus the first `file.accepted`, plus one mean gap between
    `file.accepted` lines for the first file's own intake; drain.steady_window). A daemon
    starts once and runs for years, so this is the figure the issue's goal is about;
    the naive loop is timed the same way (first file → last 2xx).
- files of 100, loopback: the agent's drain vs the API stand-in's own ceiling (a bare
  client POSTing pre-built 100-receipt batches back to back over one warm connection,
  measured before and after the drains and averaged). Given both ways too: the ceiling's
  clock starts at its first POST (connection made, bodies built), so the like-for-like
  figure is the agent's steady state; the wall figure adds its start-up once.
- files of 100, API 50 ms away (the sandbox's `--delay-s 0.05`): drain vs the same drain
  on loopback; and its steady state vs the far API's own ceiling for a client with 4
  batches in flight (batch.concurrency's default: 4 x 100 receipts per round trip bound
  any client, so once the loopback drain passes ~1.25x that bound, far / loopback falls
  under 80 % whatever the agent does).

Every bare client (the ceilings, the naive loop) runs pinned to the agent's core, as
benchmarks/limits.py does, so each side of a ratio gets the same core against the same
sandbox core. Each ratio is measured `--rounds` times (3 by default), the runs
interleaved (ceiling, drains, ceiling, ...: each drain is compared with the ceilings just
before and after it); the figure is the median round, and every round is printed. The
vCPU has fast and slow spells that move a single round by a third either way.

    python benchmarks/issue17.py [--files-of-one 2000] [--receipts 20000] [--rounds 3]
                                 [--only-files-of-one | --only-files-of-100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import drain
import harness
import httpx
import limits

FAR_S = 0.05


def naive_forwarder(files: int) -> float:
    """Receipts/s of the naive per-file forwarder over `files` files of one receipt."""
    harness.pin(harness.AGENT_CPU)
    with harness.workdir("naive") as work, harness.SandboxProcess(work) as sandbox:
        spool = work / "spool"
        harness.fill_spool(spool, files, 1, first=40_000_000)
        headers = {"Authorization": f"Bearer {sandbox.token()}", "Content-Type": "application/json"}
        url = f"{sandbox.base_url}/accounts/{harness.ACCOUNT}/receipts"
        started = time.perf_counter()
        with httpx.Client(headers=headers, timeout=30) as client:
            for path in sorted(spool.iterdir()):
                answer = client.post(url, content=b"[" + path.read_bytes() + b"]")
                if answer.status_code != 200:  # noqa: PLR2004
                    raise RuntimeError(f"sandbox refused a file: {answer.text[:300]}")
                Path(path).unlink()
        rate = files / (time.perf_counter() - started)
    harness.pin(harness.OTHER_CPU)
    return rate


def api_ceiling(receipts: int) -> float:
    """The API stand-in's own ceiling: a bare client POSTing 100-receipt batches back to back
    from the agent's core."""
    with harness.workdir("ceiling") as work, harness.SandboxProcess(work) as sandbox:
        harness.pin(harness.AGENT_CPU)
        try:
            return limits.sandbox_ceiling(sandbox, receipts, first=50_000_000)
        finally:
            harness.pin(harness.OTHER_CPU)


def far_ceiling(receipts: int) -> float:
    """The far API's own ceiling for a client with 4 batches in flight (batch.concurrency's
    default): 4 x 100 receipts per round trip bound any client, the agent included."""
    with (
        harness.workdir("far-ceiling") as work,
        harness.SandboxProcess(work, "--delay-s", str(FAR_S)) as sandbox,
    ):
        harness.pin(harness.AGENT_CPU)
        try:
            return limits.sandbox_ceiling_in_flight(
                sandbox, receipts, first=70_000_000, in_flight=4
            )
        finally:
            harness.pin(harness.OTHER_CPU)


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds, with the rounds themselves under "rounds"."""
    result: dict[str, Any] = {}
    for key in rounds[0]:
        values = [one[key] for one in rounds]
        same = all(value == values[0] for value in values)
        result[key] = values[0] if same else statistics.median(values)  # sizes stay ints
    result["rounds"] = rounds
    return result


def _each(result: dict[str, Any], key: str, scale: float = 100, unit: str = " %") -> str:
    """The median of `key`, then every round's value: "47 % (rounds: 45 / 47 / 52 %)"."""
    digits = 1 if unit == "×" else 0
    median = f"{result[key] * scale:.{digits}f}{unit}"
    if len(result["rounds"]) == 1:
        return median
    values = " / ".join(f"{one[key] * scale:.{digits}f}" for one in result["rounds"])
    return f"{median} (rounds: {values}{unit})"


def _files_of_one_round(files_of_one: int) -> dict[str, Any]:
    """One round of the files-of-1 pair: the agent's drain, then the naive loop."""
    one = drain.run_drain(files_of_one, 1)
    naive = naive_forwarder(files_of_one)
    return {
        "files_of_one": files_of_one,
        "one_rate": one["rate"],
        "one_steady_rate": one["steady_rate"],
        "one_startup_s": one["startup_s"],
        "one_posts": one["posts"],
        "one_cpu_s": one["cpu_s"],
        "naive_rate": naive,
        "one_vs_naive": one["rate"] / naive,
        "one_steady_vs_naive": one["steady_rate"] / naive,
    }


def _files_of_100_round(receipts: int, ceilings: list[float]) -> dict[str, Any]:
    """One round of files of 100 on loopback, against the ceilings just before and after it
    (the one after is appended to `ceilings`)."""
    near = drain.run_drain(receipts, 100)
    ceilings.append(api_ceiling(receipts))
    ceiling = (ceilings[-2] + ceilings[-1]) / 2
    return {
        "receipts": receipts,
        "ceiling_rate": ceiling,
        "near_rate": near["rate"],
        "near_vs_ceiling": near["rate"] / ceiling,
        "near_steady_rate": near["steady_rate"],
        "near_steady_vs_ceiling": near["steady_rate"] / ceiling,
        "near_cpu_us": near["cpu_us_per_receipt"],
    }


def run(files_of_one: int, receipts: int, rounds: int = 3) -> dict[str, Any]:
    """Every issue-17 ratio, `rounds` interleaved rounds; the median round of each."""
    results, ceilings = [], [api_ceiling(receipts)]
    for _ in range(rounds):
        near = _files_of_100_round(receipts, ceilings)
        one = _files_of_one_round(files_of_one)
        far = drain.run_drain(receipts, 100, sandbox_flags=("--delay-s", str(FAR_S)))
        far_bound = far_ceiling(receipts)
        results.append({
            **one,
            **near,
            "far_rate": far["rate"],
            "far_vs_near": far["rate"] / near["near_rate"],
            "far_steady_rate": far["steady_rate"],
            "far_ceiling": far_bound,
            "far_steady_vs_ceiling": far["steady_rate"] / far_bound,
            "far_posts": far["posts"],
        })  # fmt: skip
    return _median_round(results)


def run_files_of_one(files_of_one: int, rounds: int = 3) -> dict[str, Any]:
    """Only the files-of-1 pair (agent, then naive), for quick before/after runs."""
    return _median_round([_files_of_one_round(files_of_one) for _ in range(rounds)])


def run_files_of_100(receipts: int, rounds: int = 3) -> dict[str, Any]:
    """Only files of 100 on loopback against the ceiling (before and after), for quick runs."""
    ceilings = [api_ceiling(receipts)]
    return _median_round([_files_of_100_round(receipts, ceilings) for _ in range(rounds)])


def rows_hundred(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"files of 100, loopback ({result['receipts']:,} receipts), wall incl. start-up",
         f"{result['near_rate']:,.0f} receipts/s"),
        ("files of 100, loopback, steady state (first file taken in → last 2xx)",
         f"{result['near_steady_rate']:,.0f} receipts/s"),
        ("agent CPU per receipt, start-up included", f"{result['near_cpu_us']:.0f} µs"),
        ("API stand-in ceiling (bare client, 100-receipt POSTs; mean of before and after)",
         f"{result['ceiling_rate']:,.0f} receipts/s"),
        ("files of 100, loopback / API ceiling, steady state",
         _each(result, "near_steady_vs_ceiling")),
        ("files of 100, loopback / API ceiling, wall incl. start-up",
         _each(result, "near_vs_ceiling")),
    ]  # fmt: skip


def rows_one(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"files of 1: agent, wall incl. start-up ({result['files_of_one']:,} files)",
         f"{result['one_rate']:,.0f} receipts/s"),
        ("files of 1: agent, steady state (first file taken in → last 2xx)",
         f"{result['one_steady_rate']:,.0f} receipts/s"),
        ("files of 1: agent start → first file taken in",
         f"{result['one_startup_s']:.2f} s"),
        ("files of 1: naive per-file forwarder (keep-alive, in-process, first → last 2xx)",
         f"{result['naive_rate']:,.0f} receipts/s"),
        ("files of 1: agent / naive, wall incl. start-up",
         _each(result, "one_vs_naive", 1, "×")),
        ("files of 1: agent / naive, steady state",
         _each(result, "one_steady_vs_naive", 1, "×")),
    ]  # fmt: skip


def rows_far(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"files of 100, loopback ({result['receipts']:,} receipts)",
         f"{result['near_rate']:,.0f} receipts/s"),
        (f"files of 100, API {FAR_S * 1000:.0f} ms away", f"{result['far_rate']:,.0f} receipts/s"),
        ("far / loopback", _each(result, "far_vs_near")),
        (f"files of 100, API {FAR_S * 1000:.0f} ms away, steady state",
         f"{result['far_steady_rate']:,.0f} receipts/s"),
        (f"far API's ceiling (bare client, 4 POSTs of 100 in flight, {FAR_S * 1000:.0f} ms away)",
         f"{result['far_ceiling']:,.0f} receipts/s"),
        ("far drain / far ceiling, steady state", _each(result, "far_steady_vs_ceiling")),
        ("API stand-in ceiling (bare client, 100-receipt POSTs; mean of before and after)",
         f"{result['ceiling_rate']:,.0f} receipts/s"),
        ("files of 100, loopback, steady state (first file taken in → last 2xx)",
         f"{result['near_steady_rate']:,.0f} receipts/s"),
        ("files of 100, loopback / API ceiling, steady state",
         _each(result, "near_steady_vs_ceiling")),
        ("files of 100, loopback / API ceiling, wall incl. start-up",
         _each(result, "near_vs_ceiling")),
    ]  # fmt: skip


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    return rows_one(result) + rows_far(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files-of-one", type=int, default=2000)
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--only-files-of-one", action="store_true", help="skip files of 100")
    parser.add_argument(
        "--only-files-of-100", action="store_true", help="files of 100 on loopback vs the ceiling"
    )
    arguments = parser.parse_args()
    if arguments.only_files_of_100:
        hundred = run_files_of_100(arguments.receipts, arguments.rounds)
        print(harness.table("Issue 17: files of 100 vs the API's ceiling", rows_hundred(hundred)))
        return
    if arguments.only_files_of_one:
        one = run_files_of_one(arguments.files_of_one, arguments.rounds)
        print(harness.table("Issue 17: files of one", rows_one(one)))
        return
    result = run(arguments.files_of_one, arguments.receipts, arguments.rounds)
    print(harness.table("Issue 17: files of one, and an API 50 ms away", rows(result)))


if __name__ == "__main__":
    main()
