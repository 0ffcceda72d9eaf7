"""The intake hot path, stage by stage: µs of CPU per receipt on this machine, in this run.

One dintero-json file of N receipts (harness.make_receipt, the shape the issue-17 drains
use) goes through what `intake_record.write_records` does for it, each stage timed alone:

- parse: `dintero_json.parse` of the whole file (orjson, local-time check);
- finish_receipt: the whole of `mapping.finish_receipt`, and its parts measured alone:
  store merge, `model_fast.validate` (with the payload), `check_invariants`, the payload
  alone, the ledger entry;
- statedb: `statedb.insert_receipts` + `ledger_store.record_entries` of a file's 100
  receipts in one transaction (WAL, synchronous=FULL, as the daemon opens it), as
  `intake_record._record_valid` writes them;
- send side: `statedb.due` of a batch of 100, its body joined as the sender joins it, and
  `mark_sent` of the batch (the state store's share of sending; no HTTP).

CPU time of this thread (thread_time) per file of 100 receipts, every file of every one of
`--repeat` rounds timed alone; the figure is the fastest decile of those files (the machine
is shared: another process's burst inflates a file's CPU time through the caches, never
deflates it, so the low end is the least disturbed figure, and a decile is steadier than
the single minimum).

    python benchmarks/hot_path.py [--receipts 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import yaml

FILE = 100  # receipts per file, as the issue-17 drains write them


def _low(samples: list[float]) -> float:
    """The fastest decile's boundary of per-file CPU times, in µs per receipt."""
    samples.sort()
    return samples[len(samples) // 10] / FILE * 1e6


def _files(repeat: int, count: int, run: Callable[[int, int], object]) -> float:
    """`run(first, end)` on every file of `count` receipts, `repeat` rounds; see `_low`."""
    samples: list[float] = []
    for _ in range(repeat):
        for first in range(0, count - FILE + 1, FILE):
            started = time.thread_time()
            run(first, first + FILE)
            samples.append(time.thread_time() - started)
    return _low(samples)


def _each(values: list[Any], work: Callable[[Any], object]) -> Callable[[int, int], None]:
    """Run `work` on each value of a file, keeping no result (as the daemon does).

    Keeping 20,000 results alive would make every garbage collection scan them, a cost
    the daemon (files of at most a few thousand receipts) does not pay.
    """

    def run(first: int, end: int) -> None:
        for value in values[first:end]:
            work(value)

    return run


def measure(receipts: int, repeat: int) -> dict[str, float]:
    """µs per receipt for each stage of the hot path (module docstring)."""
    from receipt_agent import ledger, ledger_store, mapping, statedb
    from receipt_agent.config import AgentConfig
    from receipt_agent.formats import RawReceipt, dintero_json
    from receipt_agent.invariants import check_invariants
    from receipt_agent.model_fast import to_json, validate

    with harness.workdir("hot-path-config") as work:
        config = AgentConfig.model_validate(
            yaml.safe_load(harness.write_config(work, "http://127.0.0.1:1/v1").read_text())
        )
    source = config.sources[0]
    bodies = [harness.file_body(first, FILE) for first in range(0, receipts, FILE)]

    def parse(first: int, end: int) -> list[Any]:
        return list(dintero_json.parse(io.BytesIO(bodies[first // FILE]), source))

    raws = [
        raw
        for first in range(0, receipts, FILE)
        for raw in parse(first, first + FILE)
        if isinstance(raw, RawReceipt)
    ]
    assert len(raws) == receipts
    finished = [mapping.finish_receipt(raw, source) for raw in raws]
    valid = [item for item in finished if isinstance(item, mapping.ValidReceipt)]
    assert len(valid) == receipts, "every benchmark receipt must be valid"

    def merged(raw: RawReceipt) -> dict[str, Any]:
        data = dict(raw.data)
        data["store"] = mapping._merge_store(data.get("store"), source)
        return data

    datas = [merged(raw) for raw in raws]
    valids = [validate(data) for data in datas]  # (plain values, payload) pairs
    # The inputs stay alive for the whole run; frozen, the garbage collector does not scan
    # them again and again (the daemon holds one file's receipts, not 20,000 of them).
    gc.collect()
    gc.freeze()
    results: dict[str, float] = {}
    results["parse"] = _files(repeat, receipts, parse)
    results["finish_receipt (all)"] = _files(
        repeat, receipts, _each(raws, lambda raw: mapping.finish_receipt(raw, source))
    )
    results["  store merge"] = _files(repeat, receipts, _each(raws, merged))
    results["  validate + payload"] = _files(repeat, receipts, _each(datas, validate))
    results["  check_invariants"] = _files(
        repeat, receipts, _each(datas, lambda data: check_invariants(data, {}))
    )
    results["  payload to_json"] = _files(
        repeat,
        receipts,
        _each([values for values, _ in valids], to_json),
    )
    results["  ledger entry"] = _files(
        repeat,
        receipts,
        _each(
            valids,
            lambda pair: ledger.receipt_entry(pair[0], {}, pair[1], source.tz),
        ),
    )

    with tempfile.TemporaryDirectory(prefix="hot-path-db-") as folder:
        db = statedb.StateDB(Path(folder) / "state.db")
        calls = iter(range(repeat * receipts))

        def store(first: int, end: int) -> None:
            prefix = f"run{next(calls)}-"  # every file's receipts new to the queue
            now = time.time()
            items = valid[first:end]
            with db.transaction() as tx:  # what intake_record._record_valid writes for a file
                statedb.insert_receipts(
                    tx, [(r.store_id, prefix + r.receipt_id, r.payload) for r in items],
                    source=source.name, file="f.json", now=now,
                )  # fmt: skip
                ledger_store.record_entries(
                    tx, [(r.store_id, prefix + r.receipt_id, r.entry) for r in items if r.entry],
                    source=source.name, file="f.json", now=now,
                )  # fmt: skip

        results["statedb insert + ledger row"] = _files(repeat, receipts, store)

        def send(first: int, end: int) -> None:
            batch = db.due(now=time.time(), limit=end - first)
            body = b"[" + b",".join(receipt.payload for receipt in batch) + b"]"
            assert len(batch) == end - first, len(body)
            db.mark_sent([receipt.id for receipt in batch], now=time.time())

        # What the store above queued: every round's receipts, sent in batches of 100.
        results["send side: due + body + mark_sent"] = _files(repeat, receipts, send)
        db.close()
    return results


def main() -> None:
    """Print µs per receipt per stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = measure(args.receipts, args.repeat)
    print(f"hot path, {args.receipts} receipts, {args.repeat} rounds, files of {FILE}")
    for stage, micros in results.items():
        print(f"{stage:<32} {micros:8.2f} µs/receipt")


if __name__ == "__main__":
    main()
