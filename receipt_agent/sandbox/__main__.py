"""`python -m receipt_agent.sandbox`: run the sandbox API alone, in the foreground.

For crash tests, benchmarks and e2e tests that need the sandbox in its own process:
`--port 0 --port-file PATH` binds a free port and writes it to PATH (atomically) once
listening. Every fault of `Faults` is a flag (`--error-rate 0.1`, `--rate-limit-every
5`, …). `main(argv)` is reusable by the `receipt-agent sandbox` command. Writes one
line to stderr when ready; stops on Ctrl-C (SIGTERM's default action ends it too).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from receipt_agent.sandbox.faults import add_fault_arguments, faults_from_arguments
from receipt_agent.sandbox.server import serve


def build_parser(prog: str = "python -m receipt_agent.sandbox") -> argparse.ArgumentParser:
    """Return the sandbox's argument parser (port, credentials, port file, faults)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="A local stand-in for Dintero's API, for tests and trials."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    parser.add_argument("--client-id", default="demo", help="accepted client id (default demo)")
    parser.add_argument(
        "--client-secret",
        default="demo-secret",
        help="accepted client secret (default demo-secret)",
    )
    parser.add_argument(
        "--ids-only",
        action="store_true",
        help="keep only receipt_ids, not whole receipts (long benchmarks)",
    )
    add_fault_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m receipt_agent.sandbox") -> int:
    """Parse `argv`, serve until interrupted; return 0, or 2 for bad arguments."""
    parser = build_parser(prog)
    arguments = parser.parse_args(argv)
    try:
        faults = faults_from_arguments(arguments)
    except ValueError as error:
        parser.error(str(error))  # exits 2 with usage, as argparse does for its own errors

    def ready(url: str) -> None:
        sys.stderr.write(f"sandbox listening on {url} (client id {arguments.client_id})\n")
        sys.stderr.flush()

    serve(
        host=arguments.host,
        port=arguments.port,
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,
        faults=faults,
        port_file=arguments.port_file,
        ready=ready,
        keep_receipts=not arguments.ids_only,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
