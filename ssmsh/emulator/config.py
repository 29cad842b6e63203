"""Configuration of the local emulator: one dataclass, documented defaults."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, get_args

from .kms import ACCOUNT_ID
from .state import DEFAULT_TARGET, TargetRecord

if TYPE_CHECKING:
    from .faults import FaultConfig

__all__ = [
    "AGENT_FIN_MODES",
    "AGENT_RESEND_MODES",
    "DEFAULT_AGENT_VERSION",
    "DEFAULT_PRINCIPAL",
    "DEFAULT_REGION",
    "AgentFin",
    "AgentResend",
    "Credentials",
    "EmulatorConfig",
    "fleet",
    "is_loopback",
    "normalize_credentials",
]

DEFAULT_REGION = "us-east-1"
#: Who a request comes from when its access key is not in ``EmulatorConfig.identities``.
DEFAULT_PRINCIPAL = f"arn:aws:iam::{ACCOUNT_ID}:user/emulated"
#: The agent release the traces in ``protocol/traces`` were recorded with.
DEFAULT_AGENT_VERSION = "3.3.1142.0"

#: What the emulated port agent does with the end of one direction of a multiplexed
#: (smux) connection: ``"half-close"`` passes it on and keeps the other direction open
#: (TCP semantics); ``"close"`` closes the whole destination connection and the stream,
#: as amazon-ssm-agent does (data the destination had not yet sent is lost).
AgentFin = Literal["half-close", "close"]
AGENT_FIN_MODES: tuple[str, ...] = get_args(AgentFin)

#: How the emulated agent retransmits (see :attr:`EmulatorConfig.agent_resend`).
AgentResend = Literal["oldest", "selective"]
AGENT_RESEND_MODES: tuple[str, ...] = get_args(AgentResend)

#: Accepted forms for credentials: one ``(key, secret)`` pair, several pairs, or a mapping.
Credentials = tuple[str, str] | Sequence[tuple[str, str]] | Mapping[str, str]


def _default_targets() -> list[TargetRecord]:
    return [TargetRecord(DEFAULT_TARGET)]


#: Tag values of the generated fleet, chosen by node number (see :func:`fleet`).
FLEET_ENVS = ("prod", "staging", "dev")
FLEET_ROLES = ("web", "app", "db", "worker")


def fleet(
    count: int,
    *,
    offline: Collection[int] = (),
    slow: Mapping[int, float] | None = None,
) -> list[TargetRecord]:
    """``count`` managed instances ``i-00000000000000001``... named ``node-1``...

    Node *n* has the tags ``Env`` (prod, staging, dev in turn) and ``Role`` (web, app, db,
    worker in turn), so node 1 is prod/web, node 2 staging/app, node 5 staging/web. Nodes
    numbered in ``offline`` start ConnectionLost (their agent never picks up a command);
    ``slow`` maps node numbers to seconds their agent takes to pick one up.
    """
    slow = slow or {}
    return [
        TargetRecord(
            f"i-{n:017x}",
            name=f"node-{n}",
            ping_status="ConnectionLost" if n in offline else "Online",
            tags={"Env": FLEET_ENVS[(n - 1) % 3], "Role": FLEET_ROLES[(n - 1) % 4]},
            pickup_delay=slow.get(n, 0.0),
        )
        for n in range(1, count + 1)
    ]


@dataclasses.dataclass(slots=True)
class EmulatorConfig:
    """Everything an :class:`~ssmsh.emulator.server.Emulator` needs to know.

    Defaults give a loopback-only emulator on OS-chosen ports with one managed instance.
    """

    #: Address both servers bind. Anything but loopback is reachable by other machines.
    host: str = "127.0.0.1"
    #: Port of the SSM/KMS API endpoint (0: the OS picks one).
    port: int = 0
    #: Region the emulator claims to be (ARNs, hints). Signatures for any region are accepted.
    region: str = DEFAULT_REGION
    #: When set, SigV4 signatures are verified against these ``(access key, secret)`` pairs.
    #: Several pairs may be given (credential rotation). When None, any well-formed
    #: signature is accepted.
    credentials: Credentials | None = None
    #: The IAM principal (an ARN: ``arn:aws:iam::123456789012:user/alice``, a role, an
    #: ``arn:aws:sts::...:assumed-role/...`` session) behind each access key id: who
    #: started an automation (ExecutedBy) and who signs an approval (aws:approve's
    #: Approvers). Other keys are :data:`DEFAULT_PRINCIPAL`.
    identities: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The managed instances the emulator pretends to host.
    targets: list[TargetRecord] = dataclasses.field(default_factory=_default_targets)
    #: A generated fleet added to ``targets``: this many instances (see :func:`fleet`).
    instances: int = 0
    #: Node numbers (1-based) of the fleet that start offline (ConnectionLost).
    offline_instances: tuple[int, ...] = ()
    #: Node number -> seconds that node's agent takes to pick up a command.
    slow_instances: dict[int, float] = dataclasses.field(default_factory=dict)
    #: KMS key ids (or ARNs, or ``alias/...`` names) GenerateDataKey/Decrypt know,
    #: in addition to the targets' own ``kms_key_id``.
    kms_keys: list[str] = dataclasses.field(default_factory=list)
    #: Shell for Standard_Stream sessions (None: ``sh``, as the official agent runs).
    shell: str | None = None
    #: Seconds without data before the agent closes a session (None: never).
    idle_timeout: float | None = None
    #: Seconds after which the agent ends any session (None: no limit).
    max_session_duration: float | None = None
    #: The real agent's send pattern (1 KiB reads, 1 ms pause per message), as
    #: ``protocol/traces/port-mux-download-96k.jsonl`` shows. False is a deliberate
    #: divergence for tests that move a lot of data: up to 32 KiB per port message, no pause.
    agent_pacing: bool = True
    #: Lifetime in seconds of a StartSession/ResumeSession token for OpenDataChannel.
    token_ttl: float = 60.0
    #: Fault injection settings (see :mod:`ssmsh.emulator.faults`); None: no faults.
    faults: FaultConfig | None = None
    #: AgentVersion the emulated agent reports (handshake, DescribeInstanceInformation).
    agent_version: str = DEFAULT_AGENT_VERSION
    #: Send a shell's non-zero exit status as an ExitCode payload. A divergence: the real
    #: agent never does (``protocol/traces/shell-exit-3.jsonl``,
    #: ``interactive-command-exit-5.jsonl``); clients must not rely on it.
    shell_exit_status: bool = False
    #: Seconds a shell or InteractiveCommands session waits after starting its program
    #: before it reads the pty: the real agent waits 1 s (its first Output comes ~1.0 s
    #: after it connects, ``protocol/traces/shell-exit-3.jsonl``); input typed meanwhile
    #: reaches the program. 0 is a divergence for fast tests.
    pty_start_delay: float = 1.0
    #: Extra environment variables for session programs (shells, commands), set over
    #: the emulator's own environment (from which prompt and virtualenv settings are
    #: removed, as a real agent's login shell would not see them).
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    #: End of one direction of a port-forwarding smux stream (see :data:`AgentFin`):
    #: ``"close"`` (the default), the real agent's behaviour, or ``"half-close"``, a
    #: divergence that keeps the other direction open (TCP semantics).
    agent_fin: AgentFin = "close"
    #: How the agent sends unacknowledged messages again (see
    #: :class:`~ssmsh.protocol.datachannel.ChannelConfig`): ``"oldest"`` (the default), the
    #: official agent's 100 ms tick that re-sends only the oldest one once its timeout
    #: passed, nothing at once on a new connection (``protocol/traces/
    #: shell-client-sigkill-resume-nopub.jsonl``); ``"selective"``, a divergence, every
    #: expired message once per RTO and everything unacked on a new connection.
    agent_resend: AgentResend = "oldest"
    #: Seconds a handshaking agent takes before its HandshakeRequest (a slow agent).
    #: Client stream data meanwhile is acknowledged and ignored, as the real agent
    #: ignores it until its handshake is complete.
    handshake_delay: float = 0.0
    #: Run Command: seconds after SendCommand before its invocations can be seen
    #: (GetCommandInvocation answers InvocationDoesNotExist meanwhile, as AWS can right
    #: after SendCommand). 0 for tests that do not care.
    command_visibility_delay: float = 0.5
    #: Run Command: factor on the delivery and execution timeouts the scheduler waits
    #: (reported times are not scaled). A divergence for tests: 0.01 turns the smallest
    #: TimeoutSeconds, 30, into 0.3 s.
    command_timeout_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.instances < 0:
            raise ValueError("instances must be >= 0")
        if not self.command_visibility_delay >= 0:
            raise ValueError("command_visibility_delay must be a number of seconds >= 0")
        if not self.command_timeout_scale > 0:
            raise ValueError("command_timeout_scale must be a positive factor")
        if not self.handshake_delay >= 0:
            raise ValueError("handshake_delay must be a number of seconds >= 0")
        if not self.pty_start_delay >= 0:
            raise ValueError("pty_start_delay must be a number of seconds >= 0")
        if self.agent_resend not in AGENT_RESEND_MODES:
            raise ValueError(
                f"agent_resend must be one of {', '.join(AGENT_RESEND_MODES)}, "
                f"not {self.agent_resend!r}"
            )
        if self.agent_fin not in AGENT_FIN_MODES:
            raise ValueError(
                f"agent_fin must be one of {', '.join(AGENT_FIN_MODES)}, not {self.agent_fin!r}"
            )

    def credential_map(self) -> dict[str, str] | None:
        """The configured credentials as ``{access_key: secret}``, or None."""
        return normalize_credentials(self.credentials)

    @property
    def binds_loopback(self) -> bool:
        return is_loopback(self.host)


def normalize_credentials(credentials: Credentials | None) -> dict[str, str] | None:
    """``{access_key: secret}`` from any accepted form; None stays None."""
    if credentials is None:
        return None
    if isinstance(credentials, Mapping):
        return {str(k): str(v) for k, v in credentials.items()}
    if (
        isinstance(credentials, tuple)
        and len(credentials) == 2
        and all(isinstance(part, str) for part in credentials)
    ):
        key, secret = credentials
        return {str(key): str(secret)}
    pairs: dict[str, str] = {}
    for pair in credentials:
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError("credentials must be (access key, secret) pairs")
        pairs[str(pair[0])] = str(pair[1])
    return pairs


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
