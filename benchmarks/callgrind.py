"""Count the instructions a benchmark child runs while it works, under valgrind's callgrind.

The child (`script --child ...`) does its set-up, prints READY, then waits for a go-file;
collection is switched on only then (`callgrind_control -i on`), and the child's stage runs
inside `functools.reduce`, the one function collection is toggled on (set-up, imports and
warm-up are not counted). Used by hot_path_instructions.py and send_instructions.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def collected(script: str, *child_args: str) -> int:
    """Run `python SCRIPT --child *CHILD_ARGS GO` under callgrind; return instructions counted.

    GO (a path the child waits for) is appended to the child's arguments.
    """
    with tempfile.TemporaryDirectory(prefix="callgrind-") as folder:
        go, out = Path(folder) / "go", Path(folder) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}",
            sys.executable, script, "--child", *child_args, str(go),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONHASHSEED="0"),
        )
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == b"READY":
                break
        control = ["callgrind_control", "-i", "on", str(process.pid)]
        subprocess.run(control, check=True, capture_output=True)
        go.touch()
        _, stderr = process.communicate()
        found = re.search(rb"Collected : (\d+)", stderr)
        if process.returncode != 0 or found is None:
            raise RuntimeError(f"{' '.join(child_args)}: {stderr.decode()[-2000:]}")
        return int(found.group(1))
