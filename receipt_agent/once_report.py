"""`run --once`'s summary line and exit code (CONTRACT §1, issue 12).

One line on stdout for cron mails and first installs: files taken in, quarantined, left in
the spool; receipts sent, duplicate, rejected, pending. The exit code: 1 when receipts
stay pending (delivery failed) or the state store refused a file; else 3 when delivery
worked but something needs a person (a file quarantined or left unreadable in a spool,
a receipt rejected, a source folder missing); else 0. Pure: counts in, text and a code out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from receipt_agent.intake_record import FileOutcome
    from receipt_agent.sender import FlushResult

EXIT_OK, EXIT_FAILED, EXIT_NEEDS_A_PERSON = 0, 1, 3


@dataclass
class OnceSummary:
    """What one `run --once` pass did."""

    taken_in: int = 0
    quarantined: int = 0
    left_in_spool: int = 0
    unreadable: int = 0
    sent: int = 0
    duplicate: int = 0
    rejected: int = 0
    pending: int = 0
    missing_folders: list[str] = field(default_factory=list)
    store_refused: bool = False

    def count_file(self, outcome: FileOutcome | None) -> None:
        """Count one file of the pass (None: it stays in the spool)."""
        if outcome is None:
            return
        if outcome.outcome == "quarantined":
            self.quarantined += 1
        else:
            self.taken_in += outcome.outcome != "archived"
            self.duplicate += outcome.duplicates
            self.rejected += outcome.rejected

    def count_sent(self, result: FlushResult) -> None:
        """Count what the pass's sending did."""
        self.sent += result.sent
        self.duplicate += result.duplicates
        self.rejected += result.rejected

    def line(self) -> str:
        """Return the one summary line."""
        spool = f"{self.left_in_spool} left in the spool"
        if self.unreadable:
            spool += f" ({self.unreadable} unreadable)"
        text = (
            f"files: {self.taken_in} taken in, {self.quarantined} quarantined, {spool}; "
            f"receipts: {self.sent} sent, {self.duplicate} duplicate, {self.rejected} "
            f"rejected, {self.pending} pending"
        )
        if self.missing_folders:
            text += f"; missing source folders: {', '.join(self.missing_folders)}"
        if self.store_refused:
            text += "; the state store refused a write (see intake.paused in the log)"
        return text

    def exit_code(self) -> int:
        """Return 0, 1 or 3 by CONTRACT §1."""
        if self.pending or self.store_refused:
            return EXIT_FAILED
        if self.quarantined or self.unreadable or self.rejected or self.missing_folders:
            return EXIT_NEEDS_A_PERSON
        return EXIT_OK
