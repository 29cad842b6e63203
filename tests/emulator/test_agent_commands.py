"""InteractiveCommands and NonInteractiveCommands sessions end to end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ssmsh.emulator.agent.commands import CommandPlugin, separate_output_requested
from ssmsh.emulator.gateway import Gateway
from ssmsh.protocol.constants import CLIENT_VERSION, PayloadType
from tests.emulator.dcclient import DCClient, gateway, make_session

__all__ = ["gateway"]

SCRIPT = "sh -c 'echo out; echo err >&2; exit 7'"


@contextlib.asynccontextmanager
async def connected(
    gateway: Gateway,
    session_type: str,
    command: str,
    *,
    properties: dict[str, Any] | None = None,
    client_version: str = CLIENT_VERSION,
) -> AsyncIterator[DCClient]:
    """A client connected to a new ``session_type`` session running ``command``."""
    session = make_session(
        gateway.state, session_type, command=command, properties=properties, gateway=gateway
    )
    client = DCClient(session, client_version=client_version)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


#: A document that asks for separate streams (AWS-StartNonInteractiveCommand does not).
SEPARATE = {"linux": {"commands": "{{ command }}", "separateOutputStream": "true"}}


async def test_non_interactive_merges_streams_without_a_status_by_default(
    gateway: Gateway,
) -> None:
    """protocol/traces/noninteractive-default-exit-5: one Output, no StdErr, no ExitCode."""
    async with connected(gateway, "NonInteractiveCommands", SCRIPT) as client:
        await client.wait_closed()
        assert bytes(client.output) == b"out\nerr\n"
        assert (bytes(client.stderr), client.exit_codes) == (b"", [])


async def test_non_interactive_separates_stdout_stderr_and_exit_code(gateway: Gateway) -> None:
    async with connected(gateway, "NonInteractiveCommands", SCRIPT, properties=SEPARATE) as client:
        closed = await client.wait_closed()
        assert closed.output == ""
        assert bytes(client.output) == b"out\n"
        assert bytes(client.stderr) == b"err\n"
        assert client.exit_codes == [7]
        (request,) = client.handshake_requests
        (action,) = request.requested_actions
        assert action.action_parameters == {
            "SessionType": "NonInteractiveCommands",
            "Properties": None,
        }
        assert client.handshake_complete is not None
        assert client.handshake_complete.customer_message == ""
        # The exit code is the last data message, and its wire text is the agent's.
        data = [m for m in client.agent_data_frames() if m.payload_type in (1, 11, 12)]
        assert data[-1].payload_type == PayloadType.EXIT_CODE
        assert data[-1].payload == b"EXIT_CODE: 7"


async def test_old_client_gets_split_output_and_an_upgrade_notice(gateway: Gateway) -> None:
    # The official agent splits by the document alone; an old client only gets a notice.
    async with connected(
        gateway, "NonInteractiveCommands", SCRIPT, properties=SEPARATE, client_version="1.2.0.0"
    ) as client:
        await client.wait_closed()
        assert bytes(client.output) == b"out\n"
        assert bytes(client.stderr) == b"err\n" and client.exit_codes == [7]
        assert client.handshake_complete is not None
        assert client.handshake_complete.customer_message.startswith(
            "Please update session manager plugin version (minimum required version 1.2.312.0)"
        )


async def test_document_can_turn_separation_off(gateway: Gateway) -> None:
    async with connected(
        gateway, "NonInteractiveCommands", SCRIPT, properties={"separateOutputStream": "false"}
    ) as client:
        await client.wait_closed()
        assert sorted(bytes(client.output).splitlines()) == [b"err", b"out"]
        assert client.exit_codes == []


def test_separate_output_property_forms() -> None:
    assert not separate_output_requested({})
    assert not separate_output_requested(None)
    assert separate_output_requested({"separateOutputStream": True})
    assert separate_output_requested({"linux": {"separateOutputStream": "true"}})
    assert not separate_output_requested({"separateOutputStream": "False"})
    assert not separate_output_requested({"linux": {"separateOutputStream": False}})
    assert not separate_output_requested({"linux": {"commands": "x"}})


async def test_ctrl_c_interrupts_the_command(gateway: Gateway) -> None:
    async with connected(
        gateway, "NonInteractiveCommands", "sleep 30", properties=SEPARATE
    ) as client:
        await client.wait_ready()
        agent = gateway.agent(client.session.session_id)
        assert agent is not None

        def started() -> bool:
            plugin = agent.plugin
            return isinstance(plugin, CommandPlugin) and plugin.pid is not None

        # A Ctrl-C that arrives before the command exists has nothing to stop.
        await client.wait_for(started)
        client.send(PayloadType.OUTPUT, b"\x03")
        await client.wait_closed()
        assert client.exit_codes == [-1]  # killed by a signal, as Go reports it


async def test_command_that_cannot_start(gateway: Gateway) -> None:
    # As the official agent: the error goes out as StdErr in both modes; only a document
    # with separate streams also gets ExitCode 1.
    for properties, codes in ((None, []), (SEPARATE, [1])):
        async with connected(
            gateway, "NonInteractiveCommands", "/nonexistent/program --flag", properties=properties
        ) as client:
            await client.wait_closed()
            assert client.stderr.startswith(b"Error occurred starting the command: ")
            assert client.exit_codes == codes


async def test_merged_output_comes_once_the_command_has_ended(gateway: Gateway) -> None:
    """The official agent writes merged output to a file and sends it after the process
    exits (processCommandsWithExec); output of a background job that outlives it is not
    waited for, and the session ends with the command."""
    command = "sh -c 'echo early; sleep 0.6; echo late; (sleep 5; echo never) &'"
    async with connected(gateway, "NonInteractiveCommands", command) as client:
        await client.wait_ready()
        await asyncio.sleep(0.3)
        assert bytes(client.output) == b""  # "early" was printed, but not sent yet
        closed = await client.wait_closed(timeout=3)
        assert closed.output == ""
        assert bytes(client.output) == b"early\nlate\n"


async def test_merged_output_bigger_than_a_pipe_does_not_block_the_command(
    gateway: Gateway,
) -> None:
    """Read as it is written (the official agent's file takes it all): 1 MB arrives whole."""
    command = "sh -c 'head -c 1000000 /dev/zero; echo end'"
    async with connected(gateway, "NonInteractiveCommands", command) as client:
        await client.wait_closed(timeout=20)
        assert bytes(client.output) == bytes(1_000_000) + b"end\n"


async def test_unparsable_command_line(gateway: Gateway) -> None:
    async with connected(gateway, "NonInteractiveCommands", "echo 'unterminated") as client:
        await client.wait_closed()
        assert client.stderr.startswith(b"Failed to parse commands input: ")


async def test_interactive_command_runs_in_a_pty_without_handshake(gateway: Gateway) -> None:
    async with connected(gateway, "InteractiveCommands", "echo inter''active; tty") as client:
        closed = await client.wait_closed()
        assert closed.output == ""
        assert b"interactive\r\n/dev/" in client.output
        assert client.handshake_requests == []


async def test_interactive_command_reads_input(gateway: Gateway) -> None:
    async with connected(gateway, "InteractiveCommands", 'read line; echo "got:$line"') as client:
        client.send(PayloadType.OUTPUT, b"typed text\r")
        await client.wait_closed()
        assert b"got:typed text" in client.output


async def test_empty_interactive_command_is_refused(gateway: Gateway) -> None:
    async with connected(gateway, "InteractiveCommands", "  ") as client:
        closed = await client.wait_closed()
        assert closed.output == "Commands cannot be empty for session type InteractiveCommands"


async def test_stopping_a_command_whose_output_is_backed_up_closes_its_pipes(
    gateway: Gateway,
) -> None:
    # `yes` writes far faster than the data channel carries: when the session ends,
    # its pipes hold unread output (reading them is paused). Stopping must still
    # close our ends of them (and so the subprocess transport), not leave that to
    # the garbage collector ("unclosed transport" after the loop is gone).
    # (With separate streams: merged, the official agent sends nothing until it ends.)
    async with connected(gateway, "NonInteractiveCommands", "yes", properties=SEPARATE) as client:
        await client.wait_for(lambda: len(client.output) > 100_000, timeout=10)
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, CommandPlugin)
        pid = agent.plugin.pid
        assert pid is not None
        command_pipes = {pipe_of(f"/proc/{pid}/fd/1"), pipe_of(f"/proc/{pid}/fd/2")}
        assert None not in command_pipes
        assert command_pipes <= our_pipes()  # our ends are open while it runs
        await gateway.state.terminate_session(client.session.session_id)
        await client.wait_closed(timeout=10)
        await agent.plugin.stop()  # idempotent; returns once everything is released
        assert command_pipes.isdisjoint(our_pipes())


def pipe_of(path: str) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return target if target.startswith("pipe:") else None


def our_pipes() -> set[str]:
    pipes = set()
    for fd in os.listdir("/proc/self/fd"):
        target = pipe_of(f"/proc/self/fd/{fd}")
        if target is not None:
            pipes.add(target)
    return pipes


@pytest.fixture
def runner_ignores_ctrl_c() -> Iterator[None]:
    """As for a test run (or an emulator) started in the background of a script."""
    signums = (signal.SIGINT, signal.SIGQUIT)
    previous = [signal.signal(signum, signal.SIG_IGN) for signum in signums]
    try:
        yield
    finally:
        for signum, handler in zip(signums, previous, strict=True):
            signal.signal(signum, handler)


@pytest.mark.parametrize("session_type", ["NonInteractiveCommands", "InteractiveCommands"])
async def test_programs_get_default_signal_actions(
    gateway: Gateway, runner_ignores_ctrl_c: None, session_type: str
) -> None:
    # Ignored signals survive exec: without a reset, Ctrl-C would not stop the
    # programs of an emulator that ignores SIGINT.
    async with connected(gateway, session_type, "grep SigIgn /proc/self/status") as client:
        await client.wait_closed(timeout=10)
        match = re.search(rb"SigIgn:\s*([0-9a-f]+)", bytes(client.output))
        assert match, bytes(client.output)
        ignored = int(match.group(1), 16)
        assert ignored & (1 << (signal.SIGINT - 1)) == 0
        assert ignored & (1 << (signal.SIGQUIT - 1)) == 0
