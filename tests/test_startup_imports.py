"""Start-up imports only what the agent runs: no command-line client of a library (issue 17)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    """Run `code` in a fresh interpreter; return the names in its sys.modules afterwards."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(out.split())


def test_api_import_leaves_httpx_command_line_client_out() -> None:
    """Importing the API client (every `run`) does not import httpx's CLI: click, pygments, rich."""
    # logs first, as the cli does: it imports structlog with rich hidden (see logs.py)
    modules = _modules_after("import receipt_agent.logs, receipt_agent.api, httpx")
    assert "httpx" in modules
    assert not {"httpx._main", "click", "pygments", "rich"} & modules


@pytest.mark.parametrize("library", ["click", "rich.console"])
def test_hidden_libraries_stay_importable_after_the_api_import(library: str) -> None:
    """A command that draws with rich (status) or a plugin using click still imports them."""
    assert library in _modules_after(f"import receipt_agent.api\nimport {library}")


def test_run_imports_neither_rich_nor_click() -> None:
    """The daemon's and run --once's imports (cli, logs, agent) hold no library's CLI."""
    modules = _modules_after("import receipt_agent.cli, receipt_agent.logs, receipt_agent.agent")
    assert not {"httpx._main", "click", "pygments", "rich"} & modules
