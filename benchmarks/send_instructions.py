"""The send path in instructions per 100-receipt batch (callgrind): a figure load cannot move.

Each stage runs in its own `valgrind --tool=callgrind` process against the sandbox in a
process of its own (whose instructions are not counted), instrumented only while the
stage runs (set-up, imports, the token and warm-up batches uncounted):

- post: `DinteroClient.post_receipts` of a 100-receipt body (httpx, the 2xx answer parsed);
- mark_sent: `StateDB.mark_sent` of 100 ids (the state store's share after a 2xx);
- flush: one `Sender.flush` at concurrency 1 over the whole queue: `due`, the body, the
  POST, the group commit of the marks, `batch.sent`, the metrics.

Instructions are not time, but the same code on the same input gives the same count, so a
before/after pair needs no quiet machine (benchmarks/hot_path_instructions.py says more).
At concurrency > 1 the batches run on pool threads, which `--toggle-collect` does not
follow: count a whole `run --once` instead (two queue sizes, the difference).

    python benchmarks/send_instructions.py [--batches 50] [--stage post ...]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import callgrind
import harness
import orjson
import yaml

STAGES = ("post", "mark_sent", "flush")
FILE = 100
WARM = 3  # batches run before counting: connection, statement cache, imports


def _child(stage: str, batches: int, go: Path, base_url: str) -> None:
    """Build the inputs, warm up, say READY, wait for `go`, run the stage under reduce()."""
    from pydantic import SecretStr

    from receipt_agent import api, logs, statedb
    from receipt_agent.config import AgentConfig
    from receipt_agent.metrics import AgentMetrics
    from receipt_agent.sender import Sender

    work = Path(tempfile.mkdtemp(prefix="send-instructions-", dir="/var/tmp"))
    config = AgentConfig.model_validate(
        yaml.safe_load(harness.write_config(work, base_url).read_text())
    )
    logs.configure(file=str(work / "agent.log"), format="json", level="info")
    client = api.DinteroClient(config.dintero, SecretStr(harness.SECRET))
    client.token()
    total = batches + WARM
    first = time.time_ns() % 10**9 * 1000  # receipt ids the sandbox has not seen
    numbers = [[first + b * FILE + i for i in range(FILE)] for b in range(total)]
    db = statedb.StateDB(work / "state" / "state.db")
    if stage == "post":
        bodies = [harness.file_body(batch[0], FILE) for batch in numbers]
        for body in bodies[:WARM]:
            client.post_receipts(body)
        values: list[object] = list(bodies[WARM:])
        work_on = client.post_receipts
    else:
        now = time.time()
        for batch in numbers:
            with db.transaction() as tx:
                for number in batch:
                    statedb.insert_receipt(
                        tx, source="till-1", store_id="sc029", receipt_id=f"S{number}",
                        payload=orjson.dumps(harness.make_receipt(number)), file="f.json",
                        now=now,
                    )  # fmt: skip
        ids = [
            [row.id for row in db.due(now=now, limit=FILE, after_id=b * FILE)] for b in range(total)
        ]
        for batch_ids in ids[:WARM]:
            db.mark_sent(batch_ids, now=time.time())
        if stage == "mark_sent":
            values, work_on = list(ids[WARM:]), lambda v: db.mark_sent(v, now=time.time())
        else:
            sender = Sender(db, client, config, observer=AgentMetrics(["till-1"]))
            values, work_on = [0], lambda _: sender.flush(threading.Event(), once=True)
    print("READY", flush=True)
    while not go.exists():
        time.sleep(0.05)
    # The one call callgrind counts (--toggle-collect=functools_reduce).
    functools.reduce(lambda _, value: work_on(value), values, None)
    client.close()
    db.close()
    shutil.rmtree(work, ignore_errors=True)


def count(stage: str, batches: int) -> float:
    """Instructions per 100-receipt batch of one stage, from a callgrind run of this script."""
    with (
        harness.workdir("send-instructions") as work,
        harness.SandboxProcess(work) as sandbox,
    ):
        return callgrind.collected(__file__, stage, str(batches), sandbox.base_url) / batches


def main() -> None:
    """Print instructions per batch per stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--stage", action="append", choices=STAGES)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, batches, base_url, go = args.child
        _child(stage, int(batches), Path(go), base_url)
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("valgrind (callgrind) is not installed")
    print(f"send path, {args.batches} batches of {FILE} receipts, instructions per batch")
    for stage in args.stage or STAGES:
        print(f"{stage:<10} {count(stage, args.batches):14,.0f}", flush=True)


if __name__ == "__main__":
    main()
