"""A faithful local stand-in for Dintero's API on 127.0.0.1, with switchable faults.

Used by `receipt-agent demo`, by store IT (`receipt-agent sandbox --port P`), by the
test suite over a real loopback socket, and by crash tests and benchmarks as a
separate process (`python -m receipt_agent.sandbox --port 0 --port-file PATH`).

It implements, under /v1/accounts/{aid}: the client-credentials token (CONTRACT §5,
API-NOTES §3.1), POST /receipts validated against its own `receipt-schema.json`
(§1.2–§1.5), POST /reports/generation (§4.1) and the test settlement report (§4.2).
It imports nothing from receipt_agent but `__version__`, so it cannot share a bug
with our model or mapping (an import-linter contract keeps it so).

    from receipt_agent.sandbox import Sandbox, Faults
    with Sandbox(client_id="demo", client_secret="demo-secret", port=0) as sb:
        sb.base_url                          # http://127.0.0.1:PORT/v1
        sb.faults.error_rate = 0.3           # one field, validated, thread-safe
        sb.set_faults(rate_limit_every=2, retry_after_s=5)   # several, atomically
        sb.receipt_ids("T12345678"); sb.receipts("T12345678"); sb.requests

Modules: `server` (Sandbox, serve, the receipts hot path), `handler` (routes, auth,
answers), `faults` (the switchboard), `schema` (validator), `reports` (report rules
and documents), `state` (tokens, receipts, records), `hooks` (/_sandbox/* test hooks),
`__main__` (command line).
Holds everything in memory; writes no file except the `--port-file` it is given.
"""

from receipt_agent.sandbox.faults import Faults as Faults
from receipt_agent.sandbox.server import Sandbox as Sandbox
from receipt_agent.sandbox.server import serve as serve
from receipt_agent.sandbox.state import RecordedRequest as RecordedRequest
