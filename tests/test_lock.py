"""The lock (requirements/constraints.txt) pins every dependency pyproject.toml names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """PEP 503 normalised project name of a requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_every_runtime_and_dev_dependency_is_pinned_exactly() -> None:
    """A dependency added to pyproject without `make lock` would float: each has one `==` pin."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    wanted = [
        requirement
        for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
        if "platform_system == 'Windows'" not in requirement
    ]
    lines = (PROJECT / "requirements" / "constraints.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", pin) for pin in pins), pins
    pinned = {_name(pin) for pin in pins}
    assert sorted({_name(r) for r in wanted} - pinned) == []
    assert "receipt-agent" not in pinned
