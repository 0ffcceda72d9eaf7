"""Start-up cost of the console script: what an operator's command, and every `run --once`
from cron, pays before any work.

Three commands, each run `--repeat` times as a fresh process on the agent's core; the
figure is the best (least disturbed) wall time, with the median and the best CPU time
(user + system, the child's own; steadier than wall on a shared machine) beside it:
- `receipt-agent --version` (the interpreter, the package, the argument parser);
- `receipt-agent check-config -c CONFIG` (plus the config models and the YAML load);
- `receipt-agent run --once -c CONFIG` on an empty spool (plus logging, the state store,
  the intake and sender modules, and the pass itself with nothing to do). The API is a
  closed loopback port: an empty pass sends nothing, so it never asks for a token.

    python benchmarks/startup.py [--repeat 5] [--agent PATH]

`--agent` times another install's console script, e.g. a non-editable `pip install .`
in a fresh venv (what a store machine has: no editable-install finder, no dev extras;
the dev venv's `click`, pulled in by import-linter, makes `import httpx` load its own CLI
and rich with it, ~0.1 s that a store install never pays).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import time
from typing import Any

import harness


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(command: list[str], repeat: int) -> tuple[float, float, float]:
    """Best and median wall seconds, and best CPU seconds, of `command` over `repeat` runs."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        cpu_before = _children_cpu_s()
        started = time.perf_counter()
        done = subprocess.run(
            command,
            capture_output=True,
            check=False,
            preexec_fn=lambda: harness.pin(harness.AGENT_CPU),
        )
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu_s() - cpu_before)
        if done.returncode != 0:
            raise RuntimeError(f"{command[1:3]} exited {done.returncode}: {done.stderr[-800:]!r}")
    return min(walls), statistics.median(walls), min(cpus)


def run_startup(repeat: int = 5, agent: str = harness.AGENT) -> dict[str, Any]:
    """Time the three commands; return best and median wall seconds of each."""
    harness.pin(harness.OTHER_CPU)
    with harness.workdir("startup") as work:
        config = str(harness.write_config(work, f"http://127.0.0.1:{harness.closed_port()}/v1"))
        commands = {
            "version": [agent, "--version"],
            "check_config": [agent, "check-config", "-c", config],
            "run_once": [agent, "run", "--once", "-c", config],
        }
        result: dict[str, Any] = {"repeat": repeat}
        for name, command in commands.items():
            result[name], result[f"{name}_median"], result[f"{name}_cpu"] = _time(command, repeat)
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    def figure(name: str) -> str:
        return (
            f"{result[name]:.3f} s (median {result[name + '_median']:.3f} s; "
            f"CPU {result[name + '_cpu']:.3f} s)"
        )

    return [
        (f"`receipt-agent --version`, best of {result['repeat']}", figure("version")),
        ("`check-config`", figure("check_config")),
        ("`run --once`, empty spool", figure("run_once")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--agent", default=harness.AGENT, help="the console script to time")
    arguments = parser.parse_args()
    result = run_startup(arguments.repeat, arguments.agent)
    print(f"agent: {arguments.agent}")
    print(harness.table("Start-up (fresh process, wall)", rows(result)))


if __name__ == "__main__":
    main()
