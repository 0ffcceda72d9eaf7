"""Fixtures for the format parsers' tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SHARED_SAMPLES


@pytest.fixture
def samples_dir() -> Path:
    """The shared, read-only folder of real till exports; the test skips when it is absent."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"{SHARED_SAMPLES} is not available on this machine")
    return SHARED_SAMPLES
