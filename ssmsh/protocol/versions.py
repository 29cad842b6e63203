"""Version gates: which features each end turns on from the other end's version.

Both ends learn the other's version during the handshake: the client reads
``AgentVersion`` from the HandshakeRequest, the agent reads ``ClientVersion``
from the HandshakeResponse. The two official programs compare versions with
*different* rules, and ssmsh reproduces each exactly.

Client side (session-manager-plugin, notes §7.5)
    :func:`client_compare` — split both strings on ``.``; a different number of
    components, an empty string or a component that is not a decimal integer makes
    the comparison fail, and a failed comparison means "feature off". Components
    are compared as integers from left to right. Every client gate asks whether the
    agent is *strictly newer* than a threshold.

Agent side (amazon-ssm-agent ``versionutil.Compare`` in strict mode, used by our emulator)
    :func:`agent_compare` — never fails. When both strings are semantic versions
    (exactly ``MAJOR.MINOR.PATCH`` with optional ``-prerelease`` and ``+build``)
    the SemVer rules decide. Otherwise components are compared left to right,
    numerically when both are integers and as text otherwise; when one string
    runs out first, the one with *more* components is the greater. Trailing zero
    components are therefore significant: ``1.2.295.0`` is newer than ``1.2.295``.

Facts checked against the official sources (agent snapshot 1c217c89, 2024-10):

* The agent picks the multiplexed (smux) port session when the port type is
  ``LocalPortForwarding`` and ``ClientVersion >= 1.1.70``; otherwise the basic one.
* The agent turns off its own smux keepalive when ``ClientVersion > 1.2.331.0``.
  An older client keeps it on, and an idle tunnel then dies after ~30 s unless
  the client sends smux NOPs.
* Output separation (stdout as Output, stderr as StdErr = 11, exit status as
  ExitCode = 12) is chosen by the session document (``separateOutputStream``),
  not by the client version: the agent sends types 11 and 12 to every client.
  The client version only decides whether the agent appends a notice to the
  HandshakeComplete ``CustomerMessage`` asking the user to upgrade: it does so
  when ``ClientVersion <= 1.2.295`` (agent comparison). The notice names
  ``1.2.312.0`` as the first plugin release that handles the split streams.
"""

from __future__ import annotations

import re

__all__ = [
    "CLIENT_VERSION_WITHOUT_OUTPUT_SEPARATION",
    "DUPLICATES_ACKED_FROM_AGENT_VERSION",
    "FIRST_CLIENT_VERSION_WITH_OUTPUT_SEPARATION",
    "MUX_KEEPALIVE_DISABLED_AFTER_CLIENT_VERSION",
    "MUX_SUPPORTED_CLIENT_VERSION",
    "SMUX_KEEPALIVE_DISABLED_AFTER_AGENT_VERSION",
    "TCP_MULTIPLEXING_SUPPORTED_AFTER_AGENT_VERSION",
    "TERMINATE_SESSION_FLAG_SUPPORTED_AFTER_AGENT_VERSION",
    "agent_acks_duplicates",
    "agent_compare",
    "agent_disables_smux_keepalive",
    "agent_supports_smux",
    "agent_supports_terminate_session_flag",
    "client_compare",
    "client_keepalive_enabled",
    "client_supports_output_separation",
    "client_supports_smux",
    "client_wants_agent_keepalive_off",
]

# ---------------------------------------------------------------- thresholds

#: Client gate: the TerminateSession flag is understood by agents newer than this.
TERMINATE_SESSION_FLAG_SUPPORTED_AFTER_AGENT_VERSION = "2.3.722.0"
#: Client gate: agents newer than this run multiplexed (smux) port forwarding.
TCP_MULTIPLEXING_SUPPORTED_AFTER_AGENT_VERSION = "3.0.196.0"
#: Client gate: agents newer than this turn their smux keepalive off, so the client does too.
SMUX_KEEPALIVE_DISABLED_AFTER_AGENT_VERSION = "3.1.1511.0"
#: Agents from this release on ack a message they have processed already when it comes
#: again (``datachannel.go``, commit b0e8d778); 3.2.923.0 and older drop it unacked.
DUPLICATES_ACKED_FROM_AGENT_VERSION = "3.2.1041.0"

#: Agent gate: clients at least this new get a multiplexed port session.
MUX_SUPPORTED_CLIENT_VERSION = "1.1.70"
#: Agent gate: for clients newer than this the agent disables its smux keepalive.
MUX_KEEPALIVE_DISABLED_AFTER_CLIENT_VERSION = "1.2.331.0"
#: Agent gate: clients up to this version are told to upgrade for split output.
CLIENT_VERSION_WITHOUT_OUTPUT_SEPARATION = "1.2.295"
#: The first plugin release that understands StdErr / ExitCode payloads.
FIRST_CLIENT_VERSION_WITH_OUTPUT_SEPARATION = "1.2.312.0"

# Go's strconv.Atoi / ParseInt: optional sign, ASCII digits, 64-bit range.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _go_int(text: str) -> int | None:
    """``int(text)`` with Go's rules, or None where Go reports an error."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# ---------------------------------------------------------------- client side


def client_compare(this: str, other: str) -> int | None:
    """Compare like the official plugin: -1, 0, 1, or None when it cannot compare.

    None for an empty string, a different number of components, or a component
    (reached before the first difference) that is not an integer.
    """
    if not this or not other:
        return None
    left, right = this.split("."), other.split(".")
    if len(left) != len(right):
        return None
    for a_text, b_text in zip(left, right, strict=True):
        a, b = _go_int(a_text), _go_int(b_text)
        if a is None or b is None:
            return None
        if a != b:
            return 1 if a > b else -1
    return 0


def _agent_newer_than(agent_version: str, threshold: str) -> bool:
    return client_compare(agent_version, threshold) == 1


def agent_supports_terminate_session_flag(agent_version: str) -> bool:
    """True if the agent understands Flag TerminateSession (agent > 2.3.722.0).

    Otherwise basic port forwarding must end the session through the
    ``TerminateSession`` API instead.
    """
    return _agent_newer_than(agent_version, TERMINATE_SESSION_FLAG_SUPPORTED_AFTER_AGENT_VERSION)


def agent_supports_smux(agent_version: str) -> bool:
    """True if ``LocalPortForwarding`` with this agent is multiplexed (agent > 3.0.196.0)."""
    return _agent_newer_than(agent_version, TCP_MULTIPLEXING_SUPPORTED_AFTER_AGENT_VERSION)


def agent_disables_smux_keepalive(agent_version: str) -> bool:
    """True if the agent runs smux without keepalive (agent > 3.1.1511.0)."""
    return _agent_newer_than(agent_version, SMUX_KEEPALIVE_DISABLED_AFTER_AGENT_VERSION)


def agent_acks_duplicates(agent_version: str) -> bool:
    """True if the agent is known to ack a message it has processed already (>= 3.2.1041.0).

    False for older agents and for an unknown version (no handshake, or one that does
    not compare): the client then guards against lost acks (``DataChannel``).
    """
    return client_compare(agent_version, DUPLICATES_ACKED_FROM_AGENT_VERSION) in (0, 1)


def client_keepalive_enabled(agent_version: str) -> bool:
    """Whether our smux client sends keepalive NOPs: only to agents that still expect them."""
    return not agent_disables_smux_keepalive(agent_version)


# ---------------------------------------------------------------- agent side


def _parse_semver(text: str) -> tuple[tuple[int, int, int], str] | None:
    """``(major, minor, patch), prerelease`` if ``text`` parses as go-semver accepts it."""
    core = text.split("+", 1)[0]
    core, _, prerelease = core.partition("-")
    parts = core.split(".", 2)
    if len(parts) != 3:
        return None
    numbers = [_go_int(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    major, minor, patch = (n for n in numbers if n is not None)
    return (major, minor, patch), prerelease


def _compare_prerelease(a: str, b: str) -> int:
    # An empty pre-release ranks above any non-empty one.
    if not a or not b:
        return (not a) - (not b)
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        xi, yi = _go_int(x), _go_int(y)
        if xi is not None and yi is not None and xi != yi:
            return 1 if xi > yi else -1
        if x != y:
            return 1 if x > y else -1
    return _sign(len(left) - len(right))


def agent_compare(this: str, other: str) -> int:
    """Compare like the agent's ``versionutil.Compare(this, other, strict=True)``: -1, 0 or 1."""
    this_semver, other_semver = _parse_semver(this), _parse_semver(other)
    if this_semver is not None and other_semver is not None:
        if this_semver[0] != other_semver[0]:
            return 1 if this_semver[0] > other_semver[0] else -1
        return _compare_prerelease(this_semver[1], other_semver[1])
    left, right = this.split("."), other.split(".")
    for x, y in zip(left, right, strict=False):
        xi, yi = _go_int(x), _go_int(y)
        if xi is not None and yi is not None:
            if xi != yi:
                return 1 if xi > yi else -1
        elif x != y:
            return 1 if x > y else -1
    return _sign(len(left) - len(right))


def client_supports_smux(client_version: str) -> bool:
    """Agent side: a ``LocalPortForwarding`` session is multiplexed (ClientVersion >= 1.1.70).

    Other port types (``LocalPortForwarding`` is the only multiplexed one) always
    get the basic, one-connection-at-a-time session.
    """
    return agent_compare(client_version, MUX_SUPPORTED_CLIENT_VERSION) >= 0


def client_wants_agent_keepalive_off(client_version: str) -> bool:
    """Agent side: the agent disables its smux keepalive (ClientVersion > 1.2.331.0)."""
    return agent_compare(client_version, MUX_KEEPALIVE_DISABLED_AFTER_CLIENT_VERSION) > 0


def client_supports_output_separation(client_version: str) -> bool:
    """Agent side: whether the agent considers this client able to show split output.

    False when ``ClientVersion <= 1.2.295`` (agent comparison); the agent then adds an
    upgrade notice to the HandshakeComplete ``CustomerMessage``. It still sends
    StdErr and ExitCode payloads either way (see the module docstring).
    """
    return agent_compare(client_version, CLIENT_VERSION_WITHOUT_OUTPUT_SEPARATION) > 0
