"""`python -m receipt_agent` → the CLI."""

from receipt_agent.cli import main

main()
