"""Import a library while one of its optional dependencies is hidden (start-up time).

Some libraries import heavy optional extras whenever those are installed and fall back
on ImportError (structlog imports rich for pretty tracebacks; httpx imports click, pygments
and rich for its command-line client). The agent uses neither extra on its paths, and
each costs ~120-130 ms of every start-up, so `logs` and `api` import those libraries with
the extra hidden. The extra stays importable afterwards for whoever needs it.
"""

from __future__ import annotations

import importlib
import sys


def import_hiding(module: str, hidden: str) -> None:
    """Import `module` while `hidden` cannot be imported, unless either is imported already."""
    if module in sys.modules or hidden in sys.modules:
        return
    sys.modules[hidden] = None  # type: ignore[assignment] # `import hidden` raises ImportError
    try:
        importlib.import_module(module)
    finally:
        del sys.modules[hidden]
