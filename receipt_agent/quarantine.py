"""Quarantine: a spool file that cannot be taken in, moved aside with its explanation.

CONTRACT §3 and STYLE §4: `<file>.error.json` is written atomically first, then the file
is moved into the source's quarantine folder (0750), never over another file; an operator
never finds a quarantined file without the sidecar that says what to fix. The sidecar
quotes the error and its location, never a value from the file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from receipt_agent import files, permissions
from receipt_agent.config import AgentConfig, SourceBase
from receipt_agent.errors import InputFileError, UnsafeFileError
from receipt_agent.intake_record import FileOutcome


def quarantine(
    path: Path, source: SourceBase, config: AgentConfig, error: InputFileError, log: Any
) -> FileOutcome:
    """Given a spool file intake refused, move it into quarantine after its `.error.json`;
    log `file.quarantined` (on `log`, bound to the source and file) and return the outcome.
    """
    folder = config.quarantine_dir(source)
    permissions.make_dirs(folder)  # 0750 whatever the umask (CONTRACT §3)
    target = files.free_name(folder, path.name)
    sidecar = {
        "error": error.message,
        "detail": error.detail or _advice(error),
        "kind": error.kind,
        "location": getattr(error, "location", None),
        "source": source.name,
        "file": path.name,
        "quarantined_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The sidecar first, atomically; then the move: an operator never finds a
    # quarantined file without its explanation (STYLE §4).
    files.atomic_write(
        target.with_name(target.name + ".error.json"),
        orjson.dumps(sidecar, option=orjson.OPT_INDENT_2) + b"\n",
    )
    files.move_into(path, folder, name=target.name)
    log.warning("file.quarantined", error=error.message, kind=error.kind)
    return FileOutcome(source.name, path.name, "quarantined", error=error.message)


def _advice(error: InputFileError) -> str:
    if isinstance(error, UnsafeFileError):
        return "the file was not read; nothing from it was queued"
    return (
        "nothing from this file was queued; fix the export and move the file back into the "
        "source folder (the .error.json can be deleted)"
    )
