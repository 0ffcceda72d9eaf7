"""The sandbox's test hooks under /_sandbox/: counters, accepted ids, runtime faults.

Not part of Dintero's API: these exist so tests, crash tests and benchmarks that run
the sandbox as a separate process can assert on it and switch faults. No auth, not
recorded as requests, never touched by faults.

  GET  /_sandbox/stats                    counters (requests by status, receipt_posts,
                                          receipts_received, unique_receipt_ids,
                                          duplicates, token_issues, …) and the faults
  GET  /_sandbox/receipt-ids?account=AID  {"account", "receipt_ids": [...]} in order
  GET  /_sandbox/receipts?account=AID     {"account", "receipts": [...]} as stored
  POST /_sandbox/faults                   JSON object of Faults fields, applied
                                          atomically; {"clear": true, ...} resets first;
                                          400 on an unknown field or a bad value
  POST /_sandbox/reset                    forget receipts, records, tokens, counters
"""

from typing import Any
from urllib.parse import parse_qs

import orjson

from receipt_agent.sandbox.faults import Faults
from receipt_agent.sandbox.handler import error_body
from receipt_agent.sandbox.state import SandboxState


def answer(
    state: SandboxState, faults: Faults, method: str, path: str, query_string: str, body: bytes
) -> tuple[int, bytes]:
    """Return (status, JSON body) for one test-hook request."""
    query = {name: values[0] for name, values in parse_qs(query_string).items()}
    if method == "GET" and path == "/_sandbox/stats":
        return 200, orjson.dumps({**state.stats(), "faults": faults.as_dict()})
    if method == "GET" and path in ("/_sandbox/receipt-ids", "/_sandbox/receipts"):
        account = query.get("account", "")
        if path.endswith("ids"):
            found: dict[str, Any] = {"receipt_ids": state.receipt_ids(account)}
        else:
            found = {"receipts": state.receipts(account)}
        return 200, orjson.dumps({"account": account, **found})
    if method == "POST" and path == "/_sandbox/faults":
        try:
            changes = orjson.loads(body) if body else {}
            if not isinstance(changes, dict):
                raise TypeError("body must be a JSON object of fault fields")
            if changes.pop("clear", False):
                faults.clear()
            faults.update(**changes)
        except (ValueError, TypeError) as error:
            return 400, error_body("BAD_REQUEST", str(error))
        return 200, orjson.dumps(faults.as_dict())
    if method == "POST" and path == "/_sandbox/reset":
        state.reset()
        return 200, orjson.dumps({"message": "reset"})
    return 404, error_body("NOT_FOUND", f"no such test hook: {method} {path}")
