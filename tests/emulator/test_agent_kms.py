"""KMS-encrypted sessions: the agent's handshake, challenge and AES-GCM traffic."""

from __future__ import annotations

import argparse
import base64
import os

import pytest

from ssmsh.emulator import EmulatorConfig
from ssmsh.emulator.cli import build_config, configure_parser
from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.kms import KmsService
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.crypto import OVERHEAD
from ssmsh.protocol.payloads import EncChallenge
from tests.emulator.dcclient import DCClient, gateway, make_session

__all__ = ["gateway"]

KEY = "alias/session-key"


async def test_encrypted_shell_session(gateway: Gateway) -> None:
    session = make_session(gateway.state, kms_key_id=KEY, gateway=gateway)
    client = DCClient(session, kms=gateway.state.kms)
    await client.connect()
    await client.wait_ready()
    (request,) = client.handshake_requests
    assert [a.action_type for a in request.requested_actions] == ["SessionType", "KMSEncryption"]
    assert request.requested_actions[0].action_parameters == {
        "SessionType": "Standard_Stream",
        "Properties": None,
    }
    kms_params = request.requested_actions[1].action_parameters
    assert kms_params["KMSKeyId"] == KEY
    assert len(base64.b64decode(kms_params["Challenge"])) == 16
    assert client.handshake_complete is not None
    assert client.handshake_complete.customer_message == "This session is encrypted using AWS KMS."
    ptypes = [m.payload_type for m in client.agent_data_frames()]
    assert ptypes[:3] == [
        PayloadType.HANDSHAKE_REQUEST,
        PayloadType.ENC_CHALLENGE_REQUEST,
        PayloadType.HANDSHAKE_COMPLETE,
    ]

    client.send(PayloadType.OUTPUT, b"echo sec''ret-text\n")
    await client.wait_output(b"secret-text")
    outputs = [m for m in client.agent_data_frames() if m.payload_type == PayloadType.OUTPUT]
    assert outputs and all(b"secret-text" not in m.payload for m in outputs)
    decrypted = sum(len(p.payload) for p in client.payloads if p.payload_type == 1)
    assert sum(len(m.payload) for m in outputs) == decrypted + OVERHEAD * len(outputs)
    await client.close()


async def test_wrong_challenge_answer_ends_the_session(gateway: Gateway) -> None:
    session = make_session(gateway.state, kms_key_id=KEY, gateway=gateway)

    def wrong(payload: bytes) -> bytes:
        assert client.encrypter is not None
        return EncChallenge(client.encrypter.encrypt(os.urandom(64))).encode()

    client = DCClient(session, kms=gateway.state.kms, answer_challenge=wrong)
    await client.connect()
    closed = await client.wait_closed()
    assert closed.output == (
        "Encountered error while initiating handshake. Encryption challenge does not match!"
    )
    assert client.handshake_complete is None
    await client.close()


async def test_data_key_for_another_context_is_refused(gateway: Gateway) -> None:
    session = make_session(gateway.state, kms_key_id=KEY, gateway=gateway)
    client = DCClient(
        session,
        kms=gateway.state.kms,
        kms_context={"aws:ssm:SessionId": "someone-else", "aws:ssm:TargetId": session.target_id},
    )
    await client.connect()
    closed = await client.wait_closed()
    assert closed.output.startswith(
        "Encountered error while initiating handshake. Fetching data key failed: "
        "Unable to retrieve data key, "
    )
    await client.close()


async def test_client_side_kms_failure_is_reported(gateway: Gateway) -> None:
    session = make_session(gateway.state, kms_key_id=KEY, gateway=gateway)
    client = DCClient(session, kms=KmsService())  # a KMS that does not know the key
    await client.connect()
    closed = await client.wait_closed()
    assert closed.output.startswith(
        "Encountered error while initiating handshake. KMSEncryption failed on client with "
        "status 2 error: Failed to process action KMSEncryption: "
    )
    await client.close()


async def test_encrypted_non_interactive_command(gateway: Gateway) -> None:
    session = make_session(
        gateway.state,
        "NonInteractiveCommands",
        command="sh -c 'echo visible; echo oops >&2; exit 2'",
        kms_key_id=KEY,
        gateway=gateway,
        properties={"linux": {"separateOutputStream": "true"}},
    )
    client = DCClient(session, kms=gateway.state.kms)
    await client.connect()
    await client.wait_closed()
    assert (bytes(client.output), bytes(client.stderr), client.exit_codes) == (
        b"visible\n",
        b"oops\n",
        [2],
    )
    wire = [m.payload for m in client.agent_data_frames() if m.payload_type in (1, 11, 12)]
    assert all(b"visible" not in p and b"oops" not in p and b"EXIT" not in p for p in wire)
    await client.close()


async def test_a_slow_agent_ignores_client_data_until_its_handshake_is_complete(
    gateway: Gateway,
) -> None:
    gateway.config.handshake_delay = 0.3
    session = make_session(gateway.state, kms_key_id=KEY, gateway=gateway)
    client = DCClient(session, kms=gateway.state.kms)
    await client.connect()
    started = client.loop.time()
    client.send(PayloadType.OUTPUT, b"echo ear''ly-input\n")  # in clear, before any request
    await client.wait_ready()
    assert client.loop.time() - started >= 0.3
    client.send(PayloadType.OUTPUT, b"echo la''ter-input\n")
    await client.wait_output(b"later-input")
    assert b"early-input" not in client.output  # acknowledged and ignored
    assert client.channel.unacked == 0
    await client.close()


def test_handshake_delay_is_checked_and_parsed() -> None:
    with pytest.raises(ValueError, match="handshake_delay"):
        EmulatorConfig(handshake_delay=-1)
    parser = configure_parser(argparse.ArgumentParser())
    assert build_config(parser.parse_args(["--handshake-delay", "2.5"])).handshake_delay == 2.5
    assert build_config(parser.parse_args([])).handshake_delay == 0.0
