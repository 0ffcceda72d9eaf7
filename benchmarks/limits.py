"""Benchmark 5: stage limits on this machine, in this run, to express the agent as a ratio.

- pydantic: `model.Receipt.model_validate` of one realistic receipt, and the whole
  `mapping.finish_receipt` (store defaults, validation, JSON payload);
- SQLite: durable inserts (WAL, synchronous=FULL) through `statedb`, 100 rows per commit,
  and single-row commits;
- the sandbox's own ceiling: 100-receipt POSTs over one keep-alive connection;
- a naive baseline: a loop that reads each file of the backlog and POSTs it with a fresh
  `httpx.post` (new connection every time), the way a cron script would.

    python benchmarks/limits.py [--receipts 20000]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import harness
import httpx


def validation(receipts: int) -> dict[str, float]:
    """µs per receipt for model_validate alone and for the whole finish_receipt."""
    import yaml

    from receipt_agent.config import AgentConfig
    from receipt_agent.formats import RawReceipt
    from receipt_agent.mapping import finish_receipt
    from receipt_agent.model import Receipt

    data = [harness.make_receipt(n) for n in range(receipts)]
    started = time.perf_counter()
    for item in data:
        Receipt.model_validate(item)
    validate_us = (time.perf_counter() - started) / receipts * 1e6
    with harness.workdir("limits-config") as work:
        config = AgentConfig.model_validate(
            yaml.safe_load(harness.write_config(work, "http://127.0.0.1:1/v1").read_text())
        )
    source = config.sources[0]
    raws = [RawReceipt(data=item, location="") for item in data]
    started = time.perf_counter()
    for raw in raws:
        finish_receipt(raw, source)
    finish_us = (time.perf_counter() - started) / receipts * 1e6
    return {"validate_us": validate_us, "finish_us": finish_us}


def sqlite(receipts: int, folder: Path) -> dict[str, float]:
    """Durable insert rate: rows/s at 100 rows per commit, and commits/s at 1 row each."""
    import orjson

    from receipt_agent import statedb

    db = statedb.StateDB(folder / "limits.db")
    payload = orjson.dumps(harness.make_receipt(0))
    now = time.time()
    started = time.perf_counter()
    for first in range(0, receipts, 100):
        with db.transaction() as tx:
            for number in range(first, min(receipts, first + 100)):
                statedb.insert_receipt(
                    tx, source="till-1", store_id="sc029", receipt_id=f"R{number}",
                    payload=payload, file="f.json", now=now,
                )  # fmt: skip
    rows_per_s = receipts / (time.perf_counter() - started)
    commits = 200
    started = time.perf_counter()
    for number in range(commits):
        with db.transaction() as tx:
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc030", receipt_id=f"S{number}",
                payload=payload, file="f.json", now=now,
            )  # fmt: skip
    commits_per_s = commits / (time.perf_counter() - started)
    db.close()
    return {"rows_per_s": rows_per_s, "commits_per_s": commits_per_s}


def sandbox_ceiling(sandbox: harness.SandboxProcess, receipts: int, first: int) -> float:
    """Receipts/s the sandbox takes in 100-receipt POSTs over one keep-alive connection."""
    bodies = [harness.file_body(start, 100) for start in range(first, first + receipts, 100)]
    headers = {"Authorization": f"Bearer {sandbox.token()}", "Content-Type": "application/json"}
    url = f"{sandbox.base_url}/accounts/{harness.ACCOUNT}/receipts"
    with httpx.Client(headers=headers, timeout=30) as client:
        client.post(url, content=harness.file_body(first - 1, 1))  # connect outside the clock
        started = time.perf_counter()
        for body in bodies:
            answer = client.post(url, content=body)
            if answer.status_code != 200:  # noqa: PLR2004
                raise RuntimeError(f"sandbox refused a batch: {answer.text[:300]}")
    return receipts / (time.perf_counter() - started)


def sandbox_ceiling_in_flight(
    sandbox: harness.SandboxProcess, receipts: int, first: int, in_flight: int
) -> float:
    """Receipts/s a bare client gets with `in_flight` 100-receipt POSTs at once (one keep-alive
    connection each): what any client with `batch.concurrency` batches in flight can reach."""
    bodies = iter([harness.file_body(start, 100) for start in range(first, first + receipts, 100)])
    headers = {"Authorization": f"Bearer {sandbox.token()}", "Content-Type": "application/json"}
    url = f"{sandbox.base_url}/accounts/{harness.ACCOUNT}/receipts"
    taking, failures = threading.Lock(), list[str]()
    clients = [httpx.Client(headers=headers, timeout=30) for _ in range(in_flight)]

    def post_until_done(client: httpx.Client) -> None:
        while not failures:
            with taking:
                body = next(bodies, None)
            if body is None:
                return
            answer = client.post(url, content=body)
            if answer.status_code != 200:  # noqa: PLR2004
                failures.append(answer.text[:300])

    try:
        for number, client in enumerate(clients):  # connect outside the clock
            client.post(url, content=harness.file_body(first - 1 - number, 1))
        workers = [threading.Thread(target=post_until_done, args=(c,)) for c in clients]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    if failures:
        raise RuntimeError(f"sandbox refused a batch: {failures[0]}")
    return receipts / elapsed


def naive(sandbox: harness.SandboxProcess, spool: Path) -> float:
    """Receipts/s of a cron-style loop: read each file, POST it with a fresh httpx request."""
    headers = {"Authorization": f"Bearer {sandbox.token()}", "Content-Type": "application/json"}
    url = f"{sandbox.base_url}/accounts/{harness.ACCOUNT}/receipts"
    files = sorted(spool.iterdir())
    receipts = 0
    started = time.perf_counter()
    for path in files:
        body = path.read_bytes()
        if body.startswith(b"{"):
            body = b"[" + body + b"]"  # the API takes an array; a one-receipt file is an object
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
        if answer.status_code != 200:  # noqa: PLR2004
            raise RuntimeError(f"sandbox refused a file: {answer.text[:300]}")
        receipts += body.count(b'"receipt_id"')
    return receipts / (time.perf_counter() - started)


def run_limits(receipts: int) -> dict[str, Any]:
    """Measure every stage limit once; the driver runs on the agent's core."""
    harness.pin(harness.AGENT_CPU)
    result: dict[str, Any] = validation(min(receipts, 20_000))
    result["validate_rate"] = 1e6 / result["validate_us"]
    result["finish_rate"] = 1e6 / result["finish_us"]
    with harness.workdir("limits") as work, harness.SandboxProcess(work) as sandbox:
        result.update(sqlite(receipts, work))
        result["sandbox_rate"] = sandbox_ceiling(sandbox, receipts, first=10_000_000)
        harness.fill_spool(work / "naive", receipts, 100, first=20_000_000)
        result["naive_rate"] = naive(sandbox, work / "naive")
        harness.fill_spool(work / "naive1", min(receipts, 200), 1, first=30_000_000)
        result["naive1_rate"] = naive(sandbox, work / "naive1")
    stages = {
        "validation (finish_receipt)": result["finish_rate"],
        "SQLite durable insert": result["rows_per_s"],
        "sandbox POST ceiling": result["sandbox_rate"],
    }
    result["slowest_stage"] = min(stages, key=lambda name: stages[name])
    result["slowest_rate"] = stages[result["slowest_stage"]]
    harness.pin(harness.OTHER_CPU)
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    validate = f"{result['validate_us']:.1f} µs/receipt ({result['validate_rate']:,.0f}/s)"
    finish = f"{result['finish_us']:.1f} µs/receipt ({result['finish_rate']:,.0f}/s)"
    return [
        ("pydantic Receipt.model_validate", validate),
        ("mapping.finish_receipt (validate + payload)", finish),
        ("SQLite WAL+FULL, 100 rows/commit", f"{result['rows_per_s']:,.0f} rows/s"),
        ("SQLite WAL+FULL, 1 row/commit", f"{result['commits_per_s']:,.0f} commits/s"),
        ("sandbox, 100-receipt POSTs, keep-alive", f"{result['sandbox_rate']:,.0f} receipts/s"),
        ("naive: fresh httpx.post per file of 100", f"{result['naive_rate']:,.0f} receipts/s"),
        ("naive: fresh httpx.post per file of 1", f"{result['naive1_rate']:,.0f} receipts/s"),
        ("slowest stage", f"{result['slowest_stage']} ({result['slowest_rate']:,.0f}/s)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=20_000)
    arguments = parser.parse_args()
    print(harness.table("Stage limits", rows(run_limits(arguments.receipts))))


if __name__ == "__main__":
    main()
