"""Drift test: every bundled sample maps to receipts the sandbox's own schema accepts.

The sandbox's schema is written independently of model.py (from Dintero's notes), so a
mapping bug in any format shows up here, before a store sees it as a 400.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from receipt_agent.config import AgentConfig
from receipt_agent.formats import RawReceipt, SkippedRecord, get_parser
from receipt_agent.mapping import ValidReceipt, finish_receipt
from receipt_agent.sandbox.schema import load_schema, make_explainer

SAMPLES = Path(str(resources.files("receipt_agent") / "samples"))
FORMATS = {
    "dintero-json": "dintero-json",
    "csv": "csv",
    "saft": "saft-cashregister",
    "poslog": "poslog",
}
# Samples that are broken or partly invalid on purpose, to show quarantine and rejection.
DELIBERATELY_BAD = {"z-2026-11-21-till1-truncated.json", "z-2026-11-21-till1.json"}


def _source(folder: Path, format_name: str) -> Any:
    raw: dict[str, Any] = {
        "name": "sample", "path": str(folder), "format": format_name, "store": {"id": "sample"},
    }  # fmt: skip
    if (folder / "source.yaml").exists():
        raw.update(yaml.safe_load((folder / "source.yaml").read_text(encoding="utf-8")))
    config = AgentConfig.model_validate(
        {"dintero": {"account_id": "T12345678", "client_id": "c"}, "sources": [raw]}
    )
    return config.sources[0]


def _cases() -> list[tuple[str, Path]]:
    return [
        (folder, path)
        for folder in FORMATS
        for path in sorted((SAMPLES / folder).glob("*"))
        if path.name != "source.yaml" and path.name not in DELIBERATELY_BAD
    ]


@pytest.mark.parametrize(("folder", "path"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_bundled_sample_maps_to_receipts_valid_against_sandbox_schema(
    folder: str, path: Path
) -> None:
    """Each bundled sample yields receipts, every one valid by the independent schema."""
    source = _source(path.parent, FORMATS[folder])
    validator = make_explainer(load_schema())
    receipts = []
    with path.open("rb") as stream:
        for record in get_parser(source.format_name)(stream, source):
            if isinstance(record, SkippedRecord):
                continue
            assert isinstance(record, RawReceipt), record
            finished = finish_receipt(record, source)
            assert isinstance(finished, ValidReceipt), finished
            receipts.append(orjson.loads(finished.payload))
    assert receipts
    for receipt in receipts:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(receipt)]
        assert errors == [], (receipt["receipt_id"], errors)
