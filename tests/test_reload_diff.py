"""What a SIGHUP reload calls a change (receipt_agent.reload.diff_configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from receipt_agent.config import AgentConfig
from receipt_agent.reload import diff_configs


def _config(tmp_path: Path, **changes: Any) -> AgentConfig:
    raw: dict[str, Any] = {
        "dintero": {"account_id": "T12345678", "client_id": "c"},
        "state_dir": str(tmp_path),
        "sources": [
            {
                "name": name,
                "path": str(tmp_path / name),
                "format": "dintero-json",
                "store": {"id": name},
            }
            for name in ("a", "b")
        ],
    }
    raw.update(changes)
    return AgentConfig.model_validate(raw)


def test_the_same_file_changes_nothing(tmp_path: Path) -> None:
    """Reloading an unchanged config reports `changed: []`."""
    assert diff_configs(_config(tmp_path), _config(tmp_path)).log_keys() == {"changed": []}


def test_sources_in_another_order_are_not_a_change(tmp_path: Path) -> None:
    """The order of `sources` changes nothing the agent does."""
    old = _config(tmp_path)
    new = _config(tmp_path, sources=list(reversed(old.model_dump(mode="json")["sources"])))

    assert diff_configs(old, new).changed == []


def test_sources_added_removed_and_changed_are_named(tmp_path: Path) -> None:
    """b removed, c added, a's settle changed, batch changed: each named, in file order."""
    old = _config(tmp_path)
    sources = old.model_dump(mode="json")["sources"]
    sources[0]["settle"] = 9
    sources[1] = dict(sources[1], name="c", path=str(tmp_path / "c"))
    new = _config(tmp_path, sources=sources, batch={"max_receipts": 7})

    keys = diff_configs(old, new).log_keys()

    assert keys == {
        "changed": ["sources", "batch"],
        "sources_added": ["c"],
        "sources_removed": ["b"],
        "sources_changed": ["a"],
    }
