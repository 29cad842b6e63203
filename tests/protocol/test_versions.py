"""Version gates, client and agent side (notes §4.9 and §7.5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmsh.protocol import versions
from ssmsh.protocol.constants import CLIENT_VERSION
from ssmsh.protocol.versions import (
    agent_compare,
    agent_disables_smux_keepalive,
    agent_supports_smux,
    agent_supports_terminate_session_flag,
    client_compare,
    client_keepalive_enabled,
    client_supports_output_separation,
    client_supports_smux,
    client_wants_agent_keepalive_off,
)

# ------------------------------------------------------------------ §4.9 vectors


def test_terminate_session_flag_vectors() -> None:
    assert agent_supports_terminate_session_flag("2.3.750.0")
    assert not agent_supports_terminate_session_flag("2.3.614.0")
    assert not agent_supports_terminate_session_flag("2.3.722.0")


def test_disable_smux_keepalive_vectors() -> None:
    assert not agent_disables_smux_keepalive("3.1.1476.0")
    assert agent_disables_smux_keepalive("3.1.1600.0")
    assert not client_keepalive_enabled("3.1.1600.0")
    assert client_keepalive_enabled("3.1.1476.0")


def test_different_lengths_cannot_compare() -> None:
    assert client_compare("2.3.56.0", "2.5.45") is None
    assert not agent_supports_terminate_session_flag("2.5.45")


# ------------------------------------------------------------------ client rules


@pytest.mark.parametrize(
    "version", ["1.2.3.4", "2.3.4.5", "3.0.195.100", "2.99.1000.0", "3.0.196.0"]
)
def test_smux_off_for_old_agents(version: str) -> None:
    assert not agent_supports_smux(version)


@pytest.mark.parametrize("version", ["3.1.0.0", "3.0.197.0", "3.0.196.1", "4.0.0.0", "3.3.1142.0"])
def test_smux_on_for_new_agents(version: str) -> None:
    assert agent_supports_smux(version)


@pytest.mark.parametrize("version", ["1.2.3.4", "2.3.4.5", "2.3.721.100", "0.3.1000.0"])
def test_terminate_flag_off_for_old_agents(version: str) -> None:
    assert not agent_supports_terminate_session_flag(version)


@pytest.mark.parametrize("version", ["3.1.0.0", "3.0.197.0", "2.3.723.0", "4.0.0.0"])
def test_terminate_flag_on_for_new_agents(version: str) -> None:
    assert agent_supports_terminate_session_flag(version)


def test_keepalive_threshold_is_strict() -> None:
    assert not agent_disables_smux_keepalive("3.1.1511.0")
    assert agent_disables_smux_keepalive("3.1.1511.1")
    assert agent_disables_smux_keepalive("3.3.1142.0")


@pytest.mark.parametrize(
    ("this", "other", "expected"),
    [
        ("3.0.0.0", "3.0.0.0", 0),
        ("3.4.5.2", "3.4.5.2", 0),
        ("1.2.3.4", "3.0.0.0", -1),
        ("2.99.99.99", "3.0.0.0", -1),
        ("3.0.0.1", "3.0.0.0", 1),
        ("3.0.100.0", "3.0.0.0", 1),
        ("5.0.0.2", "5.0.0.0", 1),
        ("3.0.10.0", "3.0.9.0", 1),  # numeric, not text
        ("+3.0.0.0", "3.0.0.0", 0),  # Go's Atoi accepts a sign
        ("4.x.0.0", "3.0.0.0", 1),  # decided before the bad component
        ("3.x.0.0", "3.0.0.0", None),
        ("randomString", "randomString", None),
        ("1.4.1.2.4.1", "3.0.0.0", None),
        ("", "3.0.0.0", None),
        ("3.0.0.0", "", None),
        ("3,0.0.0", "3.0.2.0", None),
        ("3.0. 1.0", "3.0.1.0", None),  # no whitespace tolerance
        ("3.0.1_0.0", "3.0.10.0", None),  # no underscores
        ("3.0.\u0661.0", "3.0.1.0", None),  # ASCII digits only
        ("3.0.99999999999999999999.0", "3.0.1.0", None),  # beyond int64
    ],
)
def test_client_compare(this: str, other: str, expected: int | None) -> None:
    assert client_compare(this, other) == expected


def test_empty_agent_version_turns_everything_off() -> None:
    # An agent without a handshake has no version: every feature is off.
    assert not agent_supports_smux("")
    assert not agent_supports_terminate_session_flag("")
    assert not agent_disables_smux_keepalive("")
    assert client_keepalive_enabled("")


@given(st.text(max_size=30), st.text(max_size=30))
def test_client_compare_never_raises(a: str, b: str) -> None:
    assert client_compare(a, b) in (None, -1, 0, 1)


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=5), st.data())
def test_client_compare_matches_tuple_order(parts: list[int], data: st.DataObject) -> None:
    other = data.draw(st.lists(st.integers(0, 10**6), min_size=len(parts), max_size=len(parts)))
    a, b = ".".join(map(str, parts)), ".".join(map(str, other))
    expected = (parts > other) - (parts < other)
    assert client_compare(a, b) == expected
    assert client_compare(b, a) == -expected


# ------------------------------------------------------------------ agent rules


@pytest.mark.parametrize(
    ("this", "other", "expected"),
    [
        # semver (both strings are exactly MAJOR.MINOR.PATCH[-pre][+build])
        ("0.0.0", "0.0.0-foo", 1),
        ("1.2.3", "1.2.3-4", 1),
        ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100", 1),
        ("3.0.0+foo", "2.9.9", 1),
        ("1.0.0", "1.0.0-rc.1", 1),
        ("3.0.0-foo+bar", "3.0.0-bar+foo", 1),
        ("3.0.0+foo", "3.0.0", 0),
        ("1.1.70", "1.1.70", 0),
        ("1.1.69", "1.1.70", -1),
        # mixed or non-semver: component by component, strict about length
        ("3.0.0+foo", "3.0", 1),
        ("3.0.0+foo", "3.0.0.1", 1),
        ("2", "10", -1),
        ("a", "z", -1),
        ("1.0.0", "1.0.0.0", -1),
        ("1.0.0", "1.0.a", -1),
        ("1.0.a", "1.0.A", 1),
        ("1.1", "1.-1", 1),
        ("1.10", "1.9", 1),
        ("1.0.0", "1.0", 1),
        ("1.2.295.0", "1.2.295", 1),  # the trailing zero counts
        ("1.2.295", "1.2.295", 0),
        ("1.2.0.0", "1.1.70", 1),
        ("1.1.70.0", "1.1.70", 1),
        ("1.1.9.0", "1.1.70", -1),
        ("1.2.331.0", "1.2.331.0", 0),
        ("", "1.1.70", -1),
    ],
)
def test_agent_compare(this: str, other: str, expected: int) -> None:
    assert agent_compare(this, other) == expected
    assert agent_compare(other, this) == -expected


@pytest.mark.parametrize(
    ("version", "mux"),
    [
        ("1.1.70", True),
        ("1.1.70.0", True),
        ("1.1.69", False),
        ("1.1.69.0", False),
        ("1.1.54.0", False),
        ("1.2.0.0", True),
        ("1.2.677.0", True),
        ("", False),
    ],
)
def test_agent_mux_gate(version: str, mux: bool) -> None:
    assert client_supports_smux(version) is mux


@pytest.mark.parametrize(
    ("version", "off"),
    [
        ("1.2.331.0", False),
        ("1.2.330.0", False),
        ("1.2.0.0", False),  # the source-tree default (issue #93)
        ("1.2.332.0", True),
        ("1.2.331.1", True),
        ("1.2.677.0", True),
        (CLIENT_VERSION, True),
    ],
)
def test_agent_keepalive_gate(version: str, off: bool) -> None:
    assert client_wants_agent_keepalive_off(version) is off


@pytest.mark.parametrize(
    ("version", "separated"),
    [
        ("1.2.295", False),
        ("1.2.294.0", False),
        ("1.1.0.0", False),
        ("1.2.295.0", True),  # a quirk of the strict comparison
        ("1.2.312.0", True),
        ("1.2.677.0", True),
        (CLIENT_VERSION, True),
    ],
)
def test_agent_output_separation_gate(version: str, separated: bool) -> None:
    assert client_supports_output_separation(version) is separated


def test_our_version_gets_every_agent_feature() -> None:
    assert client_supports_smux(CLIENT_VERSION)
    assert client_wants_agent_keepalive_off(CLIENT_VERSION)
    assert client_supports_output_separation(CLIENT_VERSION)


@given(st.text(max_size=30), st.text(max_size=30))
def test_agent_compare_is_total_and_antisymmetric(a: str, b: str) -> None:
    result = agent_compare(a, b)
    assert result in (-1, 0, 1)
    assert agent_compare(b, a) == -result


# ------------------------------------------------------------------ protocol/vectors/versions.json

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "versions.json").read_text()
)
FEATURES = {
    "terminate_session_flag": agent_supports_terminate_session_flag,
    "mux": agent_supports_smux,
    "disable_smux_keepalive": agent_disables_smux_keepalive,
}


@pytest.mark.parametrize(
    "case", VECTORS["cases"], ids=lambda c: f"{c['feature']}-{c['agent_version'] or 'empty'}"
)
def test_file_cases(case: dict[str, Any]) -> None:
    assert FEATURES[case["feature"]](case["agent_version"]) is case["expected"]


@pytest.mark.parametrize("case", VECTORS["compare_errors"], ids=lambda c: f"{c['a']}|{c['b']}")
def test_file_compare_errors(case: dict[str, str]) -> None:
    assert client_compare(case["a"], case["b"]) is None


def test_file_thresholds_and_agent_constants() -> None:
    thresholds = VECTORS["thresholds"]
    assert thresholds == {
        "terminate_session_flag": versions.TERMINATE_SESSION_FLAG_SUPPORTED_AFTER_AGENT_VERSION,
        "mux": versions.TCP_MULTIPLEXING_SUPPORTED_AFTER_AGENT_VERSION,
        "disable_smux_keepalive": versions.SMUX_KEEPALIVE_DISABLED_AFTER_AGENT_VERSION,
    }
    agent = VECTORS["agent_side"]
    assert agent["mux_supported_client_version"] == versions.MUX_SUPPORTED_CLIENT_VERSION
    assert (
        agent["mux_keepalive_disabled_after_client_version"]
        == versions.MUX_KEEPALIVE_DISABLED_AFTER_CLIENT_VERSION
    )
    assert (
        agent["client_version_without_output_separation"]
        == versions.CLIENT_VERSION_WITHOUT_OUTPUT_SEPARATION
    )
    assert (
        agent["first_client_version_with_output_separation"]
        == versions.FIRST_CLIENT_VERSION_WITH_OUTPUT_SEPARATION
    )
