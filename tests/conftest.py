"""Shared test fixtures.

``SSMSH_TIMEOUT_FACTOR`` (default 1) scales every time-based wait in the suite,
for slow or loaded machines.
"""

from __future__ import annotations

import os

import pytest

TIMEOUT_FACTOR = float(os.environ.get("SSMSH_TIMEOUT_FACTOR", "1") or "1")


def scaled(seconds: float) -> float:
    """A timeout scaled by the environment's factor."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture
def timeout_factor() -> float:
    return TIMEOUT_FACTOR
