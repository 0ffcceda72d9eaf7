"""`receipt-agent demo`: the whole pipeline on this machine, with no credentials.

Starts the built-in sandbox API on 127.0.0.1, copies the bundled sample exports of every
supported format (package data in `receipt_agent/samples/<format>/`, written by us) into
a temporary spool, runs the real `run --once` path with a progress bar, and prints what
was sent, duplicated, rejected and quarantined. Then it reconciles every business day the
samples hold (CONTRACT §7) with `--remote all` against the sandbox, which "loses" one
receipt: the SAF-T sample of 2026-01-16 lacks receipt 5009 that its Z report counts, so
the table shows a gap, a Z difference of one receipt, and a receipt Dintero lost. A sample
folder may hold a `source.yaml` with the source keys its format needs (mapping, store,
pattern). Touches nothing outside its temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from receipt_agent import ledger_store, logs, reconcile, reconcile_view
from receipt_agent.agent import Agent
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig, load_config, resolve_client_secret
from receipt_agent.errors import ReceiptAgentError
from receipt_agent.once_report import EXIT_NEEDS_A_PERSON
from receipt_agent.reports.runner import ReportRunner
from receipt_agent.reports.settlement import (
    build_test_report_options,
    request_test_settlement_report,
)
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

ACCOUNT = "T00000001"
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
_FORMATS = {
    "dintero-json": "dintero-json",
    "csv": "csv",
    "saft": "saft-cashregister",
    "poslog": "poslog",
}


def _sources(samples: Path, spool_root: Path) -> tuple[list[dict[str, Any]], int]:
    sources: list[dict[str, Any]] = []
    total_files = 0
    for folder_name, format_name in _FORMATS.items():
        folder = samples / folder_name
        if not folder.is_dir():
            continue
        extra: dict[str, Any] = {}
        if (folder / "source.yaml").exists():
            extra = yaml.safe_load((folder / "source.yaml").read_text(encoding="utf-8")) or {}
        spool = spool_root / folder_name
        spool.mkdir(parents=True)
        for sample in sorted(folder.iterdir()):
            if sample.is_file() and sample.name != "source.yaml":
                shutil.copy(sample, spool / sample.name)
                total_files += 1
        source = {
            "name": f"demo-{folder_name}",
            "path": str(spool),
            "format": format_name,
            "pattern": "*",
            "settle": 0,
            "store": {"id": f"demo-{folder_name}", "name": "Demo store"},
        }
        source.update(extra)
        sources.append(source)
    return sources, total_files


# The only documented template renders one checkout transaction that the caller supplies.
_DEMO_REPORT: dict[str, Any] = {
    "name": "demo-daily",
    "template_id": "checkout_transaction_order",
    "template_data_path": "/checkout/v1/transactions/{transaction.id}",
    "accept": "application/pdf",
    "language": "en",
    "period": "previous_day",
    "schedule": "daily",
    "body": [
        {
            "key": "transaction",
            "path": "/checkout/v1/transactions/T00000001.demo",
            "data": {"id": "T00000001.demo", "amount": 12500, "currency": "NOK"},
        }
    ],
    "output_dir": "reports",
}


def _reports(console: Console, config: AgentConfig, secret: SecretStr) -> None:
    """Fetch yesterday's demo report and ask for a test settlement report."""
    client = DinteroClient(config.dintero, secret)
    db = StateDB(config.db_path)
    try:
        outcome = ReportRunner(config, client, db).run(config.report("demo-daily"))
        console.print(f"report {outcome.name}: {outcome.file.name} ({outcome.bytes} bytes)")
        options = build_test_report_options(None, 10, None, None)
        status, message = request_test_settlement_report(client, ACCOUNT, options)
        console.print(f"test settlement report: {status} {message}")
    except ReceiptAgentError as error:
        console.print(f"[red]reports: {error}[/red]")
    finally:
        client.close()
        db.close()


# The receipt the sandbox "loses" (accepts, then never finds) so that --remote shows one.
_LOST_RECEIPT = "demo-saft-K2-102"


def _reconciliation(
    console: Console, config: AgentConfig, secret: SecretStr, sandbox: Sandbox
) -> None:
    """Reconcile every business day the samples hold, as `reconcile --remote all` would."""
    sandbox.faults.lose_receipt_id = f"^{_LOST_RECEIPT}$"
    client = DinteroClient(config.dintero, secret)
    db = StateDB(config.db_path)
    try:
        runner = reconcile.Reconciler(config, db, client)
        results = [
            result
            for source in config.sources
            for day in ledger_store.days(db, source.name)
            for result in runner.reconcile_source(source, day, "all")
        ]
        console.print(
            f"reconciliation (the sandbox was told to lose {_LOST_RECEIPT}; "
            "receipt 5009 of register K1 on 2026-01-16 is missing from its export):",
            highlight=False,
        )
        reconcile_view.print_results(results, console)
    except ReceiptAgentError as error:
        console.print(f"[red]reconcile: {error}[/red]")
    finally:
        client.close()
        db.close()


def _files_left(sources: list[dict[str, Any]]) -> int:
    return sum(len(list(Path(source["path"]).iterdir())) for source in sources)


def run_demo(*, keep: bool = False) -> int:
    """Run the demo; return 0 when every good receipt reached the sandbox."""
    console = Console(width=110)
    workdir = Path(tempfile.mkdtemp(prefix="receipt-agent-demo-"))
    try:
        with Sandbox(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, port=0) as sandbox:
            with resources.as_file(resources.files("receipt_agent") / "samples") as samples:
                sources, total_files = _sources(samples, workdir / "spool")
            (workdir / "client_secret").write_text(CLIENT_SECRET)
            (workdir / "client_secret").chmod(0o600)
            log_file = workdir / "agent.log"
            config_path = workdir / "config.yaml"
            config_path.write_text(
                yaml.safe_dump(
                    {
                        "dintero": {
                            "base_url": sandbox.base_url,
                            "account_id": ACCOUNT,
                            "client_id": CLIENT_ID,
                            "client_secret_file": "client_secret",
                            "timeout": "10s",
                        },
                        "state_dir": "state",
                        "log": {"file": str(log_file), "format": "json"},
                        "sources": sources,
                        "batch": {"max_receipts": 50, "flush_interval": "1s"},
                        "retry": {"initial": "0.2s", "max": "2s"},
                        "reports": [_DEMO_REPORT],
                        "reconcile": {"remote": "all", "max_requests_per_second": 50},
                    },
                    sort_keys=False,
                )
            )
            config = load_config(config_path)
            logs.configure(file=str(log_file), format="json", level="info")
            secret, _ = resolve_client_secret(config.dintero)
            console.print(f"[b]receipt-agent demo[/b] in {workdir}")
            console.print(f"sandbox Dintero API on {sandbox.base_url} (account {ACCOUNT})")
            exit_code = _run_with_progress(Agent(config, secret), sources, total_files)
            _summary(console, sources, log_file, config.db_path, sandbox)
            _reports(console, config, secret)
            _reconciliation(console, config, secret, sandbox)
            if keep:
                console.print(f"log: {log_file}")
                console.print(
                    "the dead letters: "
                    f"receipt-agent queue list -c {config_path} --state rejected",
                    highlight=False, soft_wrap=True,
                )  # fmt: skip
            else:
                console.print(
                    "(run `receipt-agent demo --keep` to keep the files; it prints the "
                    "`queue list -c …` line that shows the dead letters)"
                )
            return exit_code
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_with_progress(agent: Agent, sources: list[dict[str, Any]], total_files: int) -> int:
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(agent.run_once()), name="demo-run")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
    ) as bar:
        task = bar.add_task("taking in and sending", total=total_files)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            bar.update(task, completed=total_files - _files_left(sources))
        bar.update(task, completed=total_files - _files_left(sources))
    code = result[0] if result else 1
    # The bundled samples hold quarantined files and rejected receipts on purpose: run
    # --once's "needs a person" (3) is the demo working as meant.
    return 0 if code == EXIT_NEEDS_A_PERSON else code


def _summary(
    console: Console, sources: list[dict[str, Any]], log_file: Path, db_path: Path, sandbox: Sandbox
) -> None:
    lines = [orjson.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    accepted: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    for line in lines:
        if line.get("event") == "file.accepted":
            accepted[line["source"]] += 1
            duplicates[line["source"]] += int(line.get("duplicates") or 0)
        elif line.get("event") == "file.quarantined":
            quarantined[line["source"]] += 1
    db = StateDB(db_path, readonly=True)
    counts = db.counts_by_source()
    table = Table(title="demo result")
    for column in (
        "source",
        "format",
        "files",
        "quarantined",
        "sent",
        "duplicates",
        "rejected",
        "pending",
    ):
        table.add_column(column, justify="left" if column in ("source", "format") else "right")
    for source in sources:
        name = source["name"]
        state = counts.get(name, {"sent": 0, "rejected": 0, "pending": 0})
        files = accepted[name] + quarantined[name]
        cells = [files, quarantined[name], state["sent"], duplicates[name]]
        cells += [state["rejected"], state["pending"]]
        table.add_row(name, source["format"], *(str(cell) for cell in cells))
    console.print(table)
    console.print(
        f"the sandbox holds {len(sandbox.receipt_ids(ACCOUNT))} receipts from "
        f"{sandbox.receipt_posts} POSTs; the rejected ones are dead letters "
        "(`receipt-agent queue list -c CONFIG --state rejected`)"
    )
    db.close()
