"""Shared test fixtures.

``SSMSH_TIMEOUT_FACTOR`` (default 1) scales every time-based wait in the suite,
for slow or loaded machines.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ssmsh.emulator.config import EmulatorConfig

TIMEOUT_FACTOR = float(os.environ.get("SSMSH_TIMEOUT_FACTOR", "1") or "1")

# Every test talks to loopback only. A proxy set for the machine (HTTPS_PROXY on
# a CI runner...) would take that traffic away; the tests that want a proxy set
# their own.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_PROXY_VARIABLES |= {"ws_proxy", "wss_proxy", "socks_proxy"}
for _name in list(os.environ):
    if _name.lower() in _PROXY_VARIABLES:
        del os.environ[_name]


# Nor does a user's ~/.config/ssmsh/config.toml play any part (an empty file instead; the
# tests of the config file name their own).
os.environ["SSMSH_CONFIG"] = os.devnull


def bulk_config(**changes: Any) -> EmulatorConfig:
    """The emulator's defaults, unpaced: for tests that move megabytes, which the official
    agent's pace (1 KiB per message, 1 ms apart: ~600 KiB/s) and its resending (one
    message per 100 ms tick) would only make slow. A deliberate, named divergence; the
    conformance tier and the paced tests keep the agent's ways."""
    settings: dict[str, Any] = {"agent_pacing": False, "agent_resend": "selective", **changes}
    return EmulatorConfig(**settings)


def scaled(seconds: float) -> float:
    """A timeout scaled by the environment's factor."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture
def timeout_factor() -> float:
    return TIMEOUT_FACTOR
