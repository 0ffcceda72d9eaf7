"""Reconciliation's pure core: one business day's ledger → a verdict per register (CONTRACT §7).

Values in, values out: no database, HTTP, clock or logging (`reconcile` fetches and records).

For each store and register of the day:
- **numbering**: the till's numbers are split into a prefix and a trailing integer
  (`1003`, `25102501030014`, `001-03619`). Every integer between the day's lowest and
  highest that no export ever brought, on ANY day, is a gap; so is every integer between the
  register's highest number of an earlier day and the day's lowest (a hole at the turn of
  the day). A lower first number than an earlier day's last is a reset (tills that number
  per day), not a gap. A number arriving later in another file closes its gap.
- **conflicts**: a number seen with two different contents (a rejected receipt that was
  later corrected is not one).
- **counts and sums** (minor units) by outcome, and of receipts by their queue state.
- **control totals** (SAF-T Z reports): the till's figures against the receipts' sums,
  `difference` = receipts − till, per field (module `saft_events` says which and why).
- **remote**: receipts Dintero does not hold (`--remote`).
A register is `complete` when it has no gap, conflict, control difference or remote miss.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

COMPLETE, MISMATCH = "complete", "mismatch"
_NUMBER = re.compile(r"^(.*?)(\d+)$")
_MAX_LISTED = 20  # gap ranges and conflicts listed per register; the counts are exact


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger row of the day, as the core needs it."""

    store_id: str
    register: str
    number: str
    numbered: bool
    outcome: str  # receipt | rejected | training | voided | non_sale
    receipt_id: str | None
    amount_minor: int | None
    figures: Mapping[str, Any]
    content: str
    state: str | None  # the receipt's queue state: pending | sent | rejected | None (purged)


@dataclass
class DayInput:
    """Everything the core needs for one source and day."""

    source: str
    date: str
    format_name: str
    rows: list[Row]
    # (store_id, register) → every (number, business_day) of that register, all days
    history: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    # (store_id, register) → the day's Z reports' totals
    controls: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # (store_id, register) → the register's last Z report before the day
    previous: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # receipt ids checked remotely, and those Dintero does not hold (None: not checked)
    remote_checked: set[str] | None = None
    remote_missing: set[str] = field(default_factory=set)


def split_number(number: str) -> tuple[str, int, int] | None:
    """`"001-03619"` → ("001-", 3619, 5): prefix, value, digits; None without trailing digits."""
    match = _NUMBER.match(number)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), len(match.group(2))


def reconcile_day(day: DayInput) -> list[dict[str, Any]]:
    """Given one source's day, return one result per store and register (sorted)."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in day.rows:
        groups[(row.store_id, row.register)].append(row)
    for key in day.controls:
        groups.setdefault(key, [])
    return [_register(day, key, groups[key]) for key in sorted(groups)]


def _register(day: DayInput, key: tuple[str, str], rows: list[Row]) -> dict[str, Any]:
    store_id, register = key
    unchecked: list[str] = []
    differences: list[str] = []
    numbering = _numbering(rows, day.history.get(key, []), day.date, unchecked)
    conflicts = _conflicts(rows)
    counts, sums = _counts(rows)
    control = _control(day, key, rows, differences, unchecked)
    remote = _remote(day, rows, unchecked)
    differences += [f"number {number} seen with different contents" for number in conflicts]
    differences += [f"not held by Dintero: {receipt_id}" for receipt_id in remote["missing"]]
    if numbering["gaps"]:
        differences.insert(0, f"{numbering['gaps']} missing: {', '.join(numbering['missing'])}")
    mismatches = len(conflicts) + len(control.get("differences", [])) + len(remote["missing"])
    return {
        "date": day.date,
        "source": day.source,
        "store_id": store_id,
        "register": register,
        "result": COMPLETE if numbering["gaps"] == 0 and mismatches == 0 else MISMATCH,
        "gaps": numbering["gaps"],
        "mismatches": mismatches,
        "numbering": numbering,
        "conflicts": conflicts[:_MAX_LISTED],
        "counts": counts,
        "sums_minor": sums,
        "control": control,
        "remote": remote,
        "differences": differences,
        "unchecked": unchecked,
    }


def _numbering(
    rows: list[Row], history: list[tuple[str, str]], date: str, unchecked: list[str]
) -> dict[str, Any]:
    numbered = [row.number for row in rows if row.numbered]
    result: dict[str, Any] = {"first": None, "last": None, "gaps": 0, "missing": []}
    if not numbered:
        unchecked.append("numbering: these transactions carry no till number")
        return result
    parts = [split_number(number) for number in numbered]
    if any(part is None for part in parts):
        unchecked.append("numbering: some numbers do not end in digits; gaps not checked")
    known: dict[str, set[int]] = defaultdict(set)
    earlier: dict[str, int] = {}
    for number, business_day in history:
        part = split_number(number)
        if part is None:
            continue
        known[part[0]].add(part[1])
        if business_day < date:
            earlier[part[0]] = max(earlier.get(part[0], part[1]), part[1])
    by_prefix: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for part in parts:
        if part is not None:
            by_prefix[part[0]].append((part[1], part[2]))
            known[part[0]].add(part[1])
    missing: list[str] = []
    gaps = 0
    firsts, lasts = [], []
    for prefix, values in sorted(by_prefix.items()):
        width = max(digits for _, digits in values)
        low, high = min(v for v, _ in values), max(v for v, _ in values)
        firsts.append(f"{prefix}{low:0{width}d}")
        lasts.append(f"{prefix}{high:0{width}d}")
        start = low
        if prefix in earlier and earlier[prefix] < low:
            start = earlier[prefix] + 1
        previous = start - 1
        for value in sorted(v for v in known[prefix] if start <= v <= high):
            if value > previous + 1:
                gaps += value - previous - 1
                text = f"{prefix}{previous + 1:0{width}d}"
                if value - 1 != previous + 1:
                    text += f"–{prefix}{value - 1:0{width}d}"
                missing.append(text)
            previous = value
    result.update(
        first=", ".join(firsts), last=", ".join(lasts), gaps=gaps, missing=missing[:_MAX_LISTED]
    )
    return result


def _conflicts(rows: list[Row]) -> list[str]:
    contents: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.numbered:
            contents[row.number].append(row)
    conflicts = []
    for number, seen in contents.items():
        kept = [row for row in seen if row.outcome != "rejected"] or seen
        if len({row.content for row in kept}) > 1:
            conflicts.append(number)
    return sorted(conflicts)


def _counts(rows: Iterable[Row]) -> tuple[dict[str, int], dict[str, int]]:
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, int] = defaultdict(int)
    for row in rows:
        outcome = row.outcome
        if outcome == "receipt" and row.state == "rejected":
            outcome = "rejected"
        counts[outcome] += 1
        sums[outcome] += row.amount_minor or 0
        if row.outcome == "receipt":
            state = row.state or "purged"
            counts[state] += 1
            sums[state] += row.amount_minor or 0
    return dict(counts), dict(sums)


def _receipt_figures(rows: list[Row]) -> dict[str, Any]:
    """The receipts' sums in the Z report's terms (one row per number: no double count)."""
    seen: set[str] = set()
    figures: dict[str, Any] = {"sales": 0, "returns": 0, "cash_sales": 0, "vat": {}, "payments": {}}
    for row in rows:
        if row.outcome != "receipt" or row.number in seen or row.amount_minor is None:
            continue
        seen.add(row.number)
        amount = row.amount_minor
        figures["cash_sales"] += amount
        figures["sales" if amount >= 0 else "returns"] += abs(amount)
        for name in ("vat", "payments"):
            for kind, value in row.figures.get(name, {}).items():
                figures[name][kind] = figures[name].get(kind, 0) + value
    return figures


def _control(
    day: DayInput,
    key: tuple[str, str],
    rows: list[Row],
    differences: list[str],
    unchecked: list[str],
) -> dict[str, Any]:
    found = day.controls.get(key, [])
    reports = [report for report in found if report["totals"].get("kind", "Z") == "Z"]
    interim = len(found) - len(reports)
    if not reports:
        unchecked.append(
            "control totals: no Z report for this register and day"
            + (f" ({interim} X reports: interim readings, not compared)" if interim else "")
            if day.format_name == "saft-cashregister"
            else f"control totals: {day.format_name} exports carry none"
        )
        return {}
    till = _sum_reports(reports)
    ours = _receipt_figures(rows)
    previous = day.previous.get(key)
    compared: dict[str, dict[str, int]] = {}

    def compare(label: str, till_value: int | None, ours_value: int) -> None:
        if till_value is None:
            return
        compared[label] = {
            "till": till_value,
            "receipts": ours_value,
            "difference": ours_value - till_value,
        }

    compare("cash_sales", till.get("cash_sales"), ours["cash_sales"])
    compare("returns", till.get("returns"), ours["returns"])
    for name, ours_key in (("grand_total_sales", "sales"), ("grand_total_return", "returns")):
        value = till.get(name)
        if value is not None and previous is not None and name in previous:
            value -= previous[name]  # cumulative since the register started: the day's change
        compare(name, value, ours[ours_key])
    for name, prefix in (("vat", "vat "), ("payments", "payment ")):
        kinds = sorted(set(till.get(name, {})) | set(ours[name]))
        for kind in kinds:
            suffix = "%" if name == "vat" else ""
            compare(f"{prefix}{kind}{suffix}", till[name].get(kind, 0), ours[name].get(kind, 0))
    if previous is None and ("grand_total_sales" in till or "grand_total_return" in till):
        unchecked.append(
            "control totals: no earlier Z report of this register, so the grand totals "
            "(cumulative) were compared as the day's own"
        )
    rejected = sum(1 for row in rows if row.outcome == "rejected")
    if rejected:
        unchecked.append(f"control totals: {rejected} rejected transactions have no amounts")
    lines = [
        f"{label}: till {v['till']}, receipts {v['receipts']}, difference {v['difference']:+d}"
        for label, v in compared.items()
        if v["difference"]
    ]
    differences.extend(lines)
    return {
        "reports": [report.get("report_id") for report in reports],
        "compared": compared,
        "differences": lines,
    }


def _sum_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several Z reports of one register and day: additive fields summed, grand totals last."""
    total: dict[str, Any] = {"vat": {}, "payments": {}}
    for report in reports:
        totals = report["totals"]
        for name in ("cash_sales", "returns"):
            if name in totals:
                total[name] = total.get(name, 0) + totals[name]
        for name in ("grand_total_sales", "grand_total_return"):
            if name in totals:
                total[name] = totals[name]
        for name in ("vat", "payments"):
            for kind, value in totals.get(name, {}).items():
                total[name][kind] = total[name].get(kind, 0) + value
    return total


def _remote(day: DayInput, rows: list[Row], unchecked: list[str]) -> dict[str, Any]:
    sent = sorted({row.receipt_id for row in rows if row.state == "sent" and row.receipt_id})
    if day.remote_checked is None:
        return {"checked": 0, "missing": []}
    checked = [receipt_id for receipt_id in sent if receipt_id in day.remote_checked]
    if len(checked) < len(sent):
        unchecked.append(f"remote: {len(sent) - len(checked)} of {len(sent)} sent not checked")
    return {
        "checked": len(checked),
        "missing": [rid for rid in checked if rid in day.remote_missing],
    }
