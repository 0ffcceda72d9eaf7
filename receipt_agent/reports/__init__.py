"""Reports (CONTRACT §1 `report generate`, `settlement test-report`; §2 `reports`).

- `runner`: ReportRunner (cron runs, the start-up catch-up, on-demand runs, retries,
  the atomic output file); the only emitter of `report.generated` / `report.failed`.
- `settlement`: test settlement reports: the spec's option rules and the test-account
  rule, checked before any request.
- `periods`: the pure rules both use (periods in a time zone, cron fire times, dates,
  file extensions).

Nothing here prints or exits: cli shows outcomes and errors. Writes only into a
report's output folder. The names below are re-exported so `from receipt_agent.reports
import ReportRunner` keeps working; new code imports the submodule it needs.
"""

from __future__ import annotations

from receipt_agent.reports.runner import FILE_MODE as FILE_MODE
from receipt_agent.reports.runner import REPORT_ATTEMPTS as REPORT_ATTEMPTS
from receipt_agent.reports.runner import ReportOutcome as ReportOutcome
from receipt_agent.reports.runner import ReportRunner as ReportRunner
from receipt_agent.reports.runner import generate_report as generate_report
from receipt_agent.reports.settlement import (
    build_test_report_options as build_test_report_options,
)
from receipt_agent.reports.settlement import (
    request_test_settlement_report as request_test_settlement_report,
)
from receipt_agent.reports.settlement import run_test_report as run_test_report
