"""Read-only views of the state store behind `status` and `queue list` (CONTRACT §1).

Safe while the daemon runs (a read-only SQLite connection; WAL lets readers in).
`health()` decides the `status` exit code: degraded when the oldest pending receipt is
older than the threshold, or the last send error is recent and newer than the last
success. Never writes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from receipt_agent import spool_health
from receipt_agent.config import AgentConfig
from receipt_agent.statedb import STATES, StateDB


@dataclass(frozen=True)
class StatusReport:
    """What `status` shows."""

    counts: dict[str, int]
    by_source: dict[str, dict[str, int]]
    oldest_pending_age_s: float | None
    oldest_pending_age_s_by_source: dict[str, float]
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None
    healthy: bool
    problems: list[str]
    # Spools, quarantine and unreadable files per source (spool_health), when the config
    # was given; receipts rejected within --max-age.
    folders: list[dict[str, Any]] = field(default_factory=list)
    rejected_recent: int = 0


def _iso(value: str | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")


def build_status(
    db: StateDB,
    *,
    max_age_s: float,
    now: float | None = None,
    config: AgentConfig | None = None,
) -> StatusReport:
    """Given the state store and the health threshold, return the status report.

    With the config, also the folders (CONTRACT §1): files waiting in each spool and the
    oldest one's age, quarantined and unreadable files; and receipts rejected recently.
    """
    now = time.time() if now is None else now
    meta = db.meta()
    oldest = db.oldest_pending_created_at()
    oldest_age_s = None if oldest is None else round(max(0.0, now - oldest), 1)
    problems: list[str] = []
    if oldest_age_s is not None and oldest_age_s > max_age_s:
        problems.append(
            f"the oldest pending receipt waits for {oldest_age_s:.0f}s (threshold {max_age_s:.0f}s)"
        )
    last_success = float(meta["last_success_at"]) if "last_success_at" in meta else None
    last_error_at = float(meta["last_error_at"]) if "last_error_at" in meta else None
    if (
        last_error_at is not None
        and now - last_error_at <= max_age_s
        and (last_success is None or last_error_at > last_success)
    ):
        problems.append(f"the last send failed: {meta.get('last_error')}")
    reconcile_problem = _reconcile_problem(meta)
    if reconcile_problem:
        problems.append(reconcile_problem)
    folders: list[spool_health.SourceFolders] = []
    rejected_recent = 0
    if config is not None:
        folders = spool_health.inspect(config, meta, max_age_s=max_age_s, now=now)
        problems += spool_health.problems(folders, max_age_s=max_age_s)
        rejected_recent = db.rejected_since(now - max_age_s)
        if rejected_recent:
            problems.append(
                f"{rejected_recent} receipt(s) rejected in the last {max_age_s:.0f}s; see "
                "`receipt-agent queue list --state rejected`"
            )
    return StatusReport(
        counts=db.counts(),
        by_source=db.counts_by_source(),
        oldest_pending_age_s=oldest_age_s,
        oldest_pending_age_s_by_source={
            source: round(max(0.0, now - created), 1)
            for source, created in db.oldest_pending_by_source().items()
        },
        last_success_at=_iso(meta.get("last_success_at")),
        last_error=meta.get("last_error"),
        last_error_at=_iso(meta.get("last_error_at")),
        healthy=not problems,
        problems=problems,
        folders=spool_health.as_json(folders),
        rejected_recent=rejected_recent,
    )


def _reconcile_problem(meta: dict[str, str]) -> str | None:
    """CONTRACT §1: degraded while the last reconciliation found a mismatch (until a later
    run is complete); `reconcile.record` keeps its verdict in meta."""
    if meta.get("reconcile_result") != "mismatch":
        return None
    return (
        f"the last reconciliation ({meta.get('reconcile_dates') or '?'}) found a mismatch; "
        "run `receipt-agent reconcile` for what differs"
    )


def status_json(report: StatusReport) -> dict[str, Any]:
    return asdict(report)


def print_status(report: StatusReport, console: Console) -> None:
    """Render the status as rich tables."""
    table = Table(title="receipt-agent queue", show_lines=False)
    table.add_column("source")
    for state in STATES:
        table.add_column(state, justify="right")
    table.add_column("oldest pending", justify="right")
    ages = report.oldest_pending_age_s_by_source
    for source, counts in sorted(report.by_source.items()):
        age = f"{ages[source]:.0f}s" if source in ages else "-"
        table.add_row(source, *(str(counts[state]) for state in STATES), age)
    total_age = (
        "-" if report.oldest_pending_age_s is None else f"{report.oldest_pending_age_s:.0f}s"
    )
    table.add_row(
        "[b]total[/b]", *(f"[b]{report.counts[state]}[/b]" for state in STATES), total_age
    )
    console.print(table)
    console.print(f"oldest pending: {total_age}")
    console.print(f"last successful send: {report.last_success_at or 'never'}")
    if report.last_error:
        console.print(f"last error ({report.last_error_at}): {report.last_error}")
    if report.folders:
        console.print(_folders_table(report.folders))
    verdict = "[green]healthy[/green]" if report.healthy else "[red]degraded[/red]"
    console.print(f"health: {verdict}")
    for problem in report.problems:
        console.print(f"  - {problem}")


def _folders_table(folders: list[dict[str, Any]]) -> Table:
    table = Table(title="spool folders")
    for column in ("source", "waiting", "oldest waiting", "quarantined", "unreadable"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for view in folders:
        age = view["oldest_waiting_age_s"]
        waiting = view["spool_error"] or str(view["waiting"])
        table.add_row(
            view["source"], waiting, "-" if age is None else f"{age:.0f}s",
            str(view["quarantined"]), str(len(view["unreadable"])),
        )  # fmt: skip
    return table


def print_queue(rows: list[Any], console: Console) -> None:
    """Render `queue list` rows one line each, readable at 80 columns.

    A table folded every column to a character per line at 80 columns; here the short
    fields come first at fixed widths, the store/receipt pair last, and a row's error on
    its own indented line, wrapped at words.
    """
    if not rows:
        console.print("no receipts", highlight=False)
        return
    id_width = max(2, *(len(str(row.id)) for row in rows))
    source_width = min(16, max(6, *(len(row.source) for row in rows)))
    header = (
        f"{'id':>{id_width}}  {'state':<8}  {'tries':>5}  {'updated (UTC)':<16}  "
        f"{'source':<{source_width}}  store/receipt"
    )
    console.print(Text(header, style="bold"), overflow="fold")
    for row in rows:
        updated = datetime.fromtimestamp(row.updated_at, UTC).strftime("%Y-%m-%d %H:%M")
        source = row.source if len(row.source) <= source_width else row.source[:15] + "…"
        line = (
            f"{row.id:>{id_width}}  {row.state:<8}  {row.attempts:>5}  {updated:<16}  "
            f"{source:<{source_width}}  {row.store_id}/{row.receipt_id}"
        )
        console.print(Text(line), overflow="fold")
        if row.last_error:
            console.print(Padding(Text(row.last_error), (0, 0, 0, id_width + 2)))
