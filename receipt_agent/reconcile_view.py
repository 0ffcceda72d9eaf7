"""How `reconcile` shows its results (CONTRACT §1, §7): a rich table, or JSON.

One line per source, store, register and business day: the number range, gaps, counts by
outcome and state, the control-total and remote checks, and `complete` or `mismatch`;
under the table, what differs and what could not be checked. Never writes anything but
the console.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from receipt_agent.reconcile_core import COMPLETE


def results_json(results: list[dict[str, Any]]) -> str:
    """The `--json` document: {"result": complete|mismatch, "days": [...]}."""
    overall = COMPLETE if all(r["result"] == COMPLETE for r in results) else "mismatch"
    return orjson.dumps({"result": overall, "days": results}, option=orjson.OPT_INDENT_2).decode()


def _counts(result: dict[str, Any]) -> str:
    counts = result["counts"]
    skipped = sum(counts.get(reason, 0) for reason in ("training", "voided", "non_sale"))
    parts = [
        f"{counts.get('receipt', 0)} in",
        f"{skipped} skipped",
        f"{counts.get('rejected', 0)} rejected",
        f"{counts.get('pending', 0)} pending",
        f"{counts.get('sent', 0)} sent",
    ]
    return ", ".join(parts)


def _control(result: dict[str, Any]) -> str:
    control = result["control"]
    if not control:
        return "—"
    compared = control.get("compared", {})
    differing = sum(1 for value in compared.values() if value["difference"])
    if differing:
        return f"{differing} of {len(compared)} differ"
    return f"{len(compared)} match"


def _remote(result: dict[str, Any]) -> str:
    remote = result["remote"]
    if not remote["checked"]:
        return "—"
    missing, checked = len(remote["missing"]), remote["checked"]
    return f"{checked} checked, {missing} missing" if missing else f"{checked} ok"


def print_results(results: list[dict[str, Any]], console: Console) -> None:
    """Print the table, then per register what differs and what was not checked."""
    table = Table(title="reconciliation")
    for name in ("date", "source", "store", "register", "numbers", "gaps", "transactions"):
        table.add_column(name)
    for name in ("Z report", "Dintero", "result"):
        table.add_column(name)
    for result in results:
        numbering = result["numbering"]
        numbers = f"{numbering['first']}–{numbering['last']}" if numbering["first"] else "—"
        verdict = result["result"]
        table.add_row(
            result["date"],
            result["source"],
            result["store_id"],
            result["register"] or "—",
            numbers,
            str(result["gaps"]),
            _counts(result),
            _control(result),
            _remote(result),
            f"[green]{verdict}[/]" if verdict == COMPLETE else f"[red]{verdict}[/]",
        )
    console.print(table)
    for result in results:
        where = f"{result['source']} {result['store_id']} register {result['register'] or '—'}"
        for line in result["differences"]:
            console.print(f"[red]{where}[/]: {line}", highlight=False)
        for line in result["unchecked"]:
            console.print(f"{where}: not checked: {line}", highlight=False, style="dim")
