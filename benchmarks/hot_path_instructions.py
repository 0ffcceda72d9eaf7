"""The hot path's stages in instructions per receipt (callgrind): a figure load cannot move.

On a shared machine CPU time moves ±30-50 % from one minute to the next (other processes
thrash the caches), which hides a 5-20 % change. Instructions executed do not depend on
the load: each stage of benchmarks/hot_path.py runs in its own `valgrind --tool=callgrind`
process, instrumented only while the stage runs (set-up, imports and warm-up uncounted),
on harness receipts in files of 100:

- parse: `dintero_json.parse` of each file;
- finish_receipt, and its parts: store merge, `model_fast.validate` (with the
  payload), `check_invariants`, the payload `to_json` alone, the ledger entry;
- store: `statedb.insert_receipts` + `ledger_store.record_entries` of a file's 100 receipts,
  one transaction per file (as `intake_record._record_valid` writes them);
- send: `due` of 100, the body joined, `mark_sent` (the state store's share of sending).

Instructions are not time (a memset of a 4 KiB page counts ~4,000 and takes ~0.1 µs),
but the same code on the same input gives the same count, so a before/after pair needs
no quiet machine. Needs valgrind (callgrind_control); ~20 s a stage.

    python benchmarks/hot_path_instructions.py [--receipts 500] [--stage finish ...]
"""

from __future__ import annotations

import argparse
import functools
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import callgrind
import harness
import yaml

STAGES = (
    "parse",
    "finish",
    "merge",
    "validate",
    "invariants",
    "to_json",
    "ledger",
    "store",
    "send",
)
FILE = 100
WARM_FILES = 2  # run before counting: caches (lru, store defaults, statements) filled


def _child(stage: str, receipts: int, go: Path) -> None:
    """Build the inputs, warm up, say READY, wait for `go`, run the stage under reduce()."""
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
    total = receipts + WARM_FILES * FILE
    bodies = [harness.file_body(first, FILE) for first in range(0, total, FILE)]
    raws = [
        raw
        for body in bodies
        for raw in dintero_json.parse(io.BytesIO(body), source)
        if isinstance(raw, RawReceipt)
    ]
    datas = []
    for raw in raws:
        data = dict(raw.data)
        data["store"] = mapping._merge_store(data.get("store"), source)
        datas.append(data)
    valids = [validate(data) for data in datas]  # (plain values, payload) pairs
    valid = [mapping.finish_receipt(raw, source) for raw in raws]
    tz = source.tz
    folder = Path(tempfile.mkdtemp(prefix="hot-path-db-", dir="/var/tmp"))
    db = statedb.StateDB(folder / "state.db")

    def store(first: int) -> None:
        now = time.time()
        items = [r for r in valid[first : first + FILE] if isinstance(r, mapping.ValidReceipt)]
        with db.transaction() as tx:  # what intake_record._record_valid writes for a file
            statedb.insert_receipts(
                tx, [(r.store_id, r.receipt_id, r.payload) for r in items],
                source=source.name, file="f.json", now=now,
            )  # fmt: skip
            ledger_store.record_entries(
                tx, [(r.store_id, r.receipt_id, r.entry) for r in items if r.entry],
                source=source.name, file="f.json", now=now,
            )  # fmt: skip

    def send(_file: int) -> None:
        batch = db.due(now=time.time(), limit=FILE)
        body = b"[" + b",".join(receipt.payload for receipt in batch) + b"]"
        assert len(batch) == FILE, len(body)
        db.mark_sent([receipt.id for receipt in batch], now=time.time())

    per_file: dict[str, tuple[list[Any], Callable[[Any], object]]] = {
        "parse": (bodies, lambda body: list(dintero_json.parse(io.BytesIO(body), source))),
        "store": (list(range(0, total, FILE)), store),
    }
    per_receipt: dict[str, tuple[list[Any], Callable[[Any], object]]] = {
        "finish": (raws, lambda raw: mapping.finish_receipt(raw, source)),
        "merge": (raws, lambda raw: mapping._merge_store(raw.data.get("store"), source)),
        "validate": (datas, validate),
        "invariants": (datas, lambda data: check_invariants(data, {})),
        "to_json": ([values for values, _ in valids], to_json),
        "ledger": (
            valids,
            lambda pair: ledger.receipt_entry(pair[0], {}, pair[1], tz),
        ),
    }
    if stage == "send":
        for first in range(0, total, FILE):
            store(first)
        values, work_on = list(range(total // FILE)), send
        warm = WARM_FILES
    elif stage in per_file:
        values, work_on = per_file[stage]
        warm = WARM_FILES
    else:
        values, work_on = per_receipt[stage]
        warm = WARM_FILES * FILE
    for value in values[:warm]:
        work_on(value)
    print("READY", flush=True)
    while not go.exists():
        time.sleep(0.05)
    # The one call callgrind counts (--toggle-collect=functools_reduce).
    functools.reduce(lambda _, value: work_on(value), values[warm:], None)
    db.close()
    shutil.rmtree(folder, ignore_errors=True)


def count(stage: str, receipts: int) -> float:
    """Instructions per receipt of one stage, from a callgrind run of this script."""
    return callgrind.collected(__file__, stage, str(receipts)) / receipts


def main() -> None:
    """Print instructions per receipt per stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=500, help="a multiple of 100")
    parser.add_argument("--stage", action="append", choices=STAGES)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, receipts, go = args.child
        _child(stage, int(receipts), Path(go))
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("valgrind (callgrind) is not installed")
    print(f"hot path, {args.receipts} receipts in files of {FILE}, instructions per receipt")
    for stage in args.stage or STAGES:
        print(f"{stage:<12} {count(stage, args.receipts):12,.0f}", flush=True)


if __name__ == "__main__":
    main()
