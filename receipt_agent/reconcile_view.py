"""How `reconcile` shows its results (CONTRACT §1, §7): a rich table, or JSON.

One line per source, store, register and business day: the number range, gaps, counts by
outcome and state, the control-total and remote checks, and `complete` or `mismatch`;
under the table, what differs and what could not be checked. Never writes anything but
the console.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from receipt_agent.reconcile_core import COMPLETE


def results_json(results: list[dict[str, Any]]) -> str:
    """The `--json` document: {"result": complete|mismatch, "days": [...]}."""
    overall = COMPLETE if all(r["result"] == COMPLETE for r in results) else "mismatch"
    return orjson.dumps({"result": overall, "days": results}, option=orjson.OPT_INDENT_2).decode()


_COUNT_COLUMNS = (
    ("in", ("receipt",)),
    ("skipped", ("training", "voided", "non_sale")),
    ("rejected", ("rejected",)),
    ("pending", ("pending",)),
    ("sent", ("sent",)),
)


def _control(result: dict[str, Any]) -> str:
    control = result["control"]
    if not control:
        return "—"
    compared = control.get("compared", {})
    differing = sum(1 for value in compared.values() if value["difference"])
    return f"{differing}/{len(compared)} differ" if differing else f"{len(compared)} ok"


def _remote(result: dict[str, Any]) -> str:
    remote = result["remote"]
    if not remote["checked"]:
        return "—"
    missing, checked = len(remote["missing"]), remote["checked"]
    return f"{missing}/{checked} lost" if missing else f"{checked} ok"


def _summary(result: dict[str, Any]) -> str:
    numbering = result["numbering"]
    counts = result["counts"]
    parts = []
    if numbering["first"]:
        gaps = result["gaps"]
        parts.append(
            f"numbers {numbering['first']}–{numbering['last']}"
            + (f" ({gaps} missing)" if gaps else "")
        )
    parts.append(
        ", ".join(
            f"{sum(counts.get(key, 0) for key in keys)} {label}" for label, keys in _COUNT_COLUMNS
        )
    )
    parts.append(f"Z totals {_control(result)}")
    parts.append(f"Dintero {_remote(result)}")
    return "; ".join(parts)


def print_results(results: list[dict[str, Any]], console: Console) -> None:
    """Print the table, then per register what differs and what was not checked."""
    table = Table(title="reconciliation", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("date", no_wrap=True)
    table.add_column("source / store / register", overflow="fold", ratio=1)
    table.add_column("result", no_wrap=True)
    table.add_column("numbers, transactions, checks", ratio=2, overflow="fold")
    for result in results:
        verdict = result["result"]
        table.add_row(
            result["date"],
            f"{result['source']} / {result['store_id']} / {result['register'] or '—'}",
            f"[green]{verdict}[/]" if verdict == COMPLETE else f"[red]{verdict}[/]",
            _summary(result),
        )
    console.print(table)
    for result in results:
        where = f"{result['source']} {result['store_id']} register {result['register'] or '—'}"
        for line in result["differences"]:
            console.print(f"[red]{where}[/]: {line}", highlight=False)
        for line in result["unchecked"]:
            console.print(f"{where}: not checked: {line}", highlight=False, style="dim")
