"""ssh's ways with a command line: ``exec HOST CMD ARGS``, ``forward -L SPEC HOST``, and
the forms ssh users type without thinking (a lone port, ``*`` for every interface).

Real ``ssmsh`` processes against the emulator, through pipes, as a user or a script runs
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator
from tests.conftest import scaled
from tests.tunnel.helpers import echo_server, exchange, free_port

from .harness import cli_env, run_cli

pytestmark = pytest.mark.timeout(60)


def url(emulator: Emulator) -> list[str]:
    return ["--endpoint-url", emulator.endpoint_url]


# ------------------------------------------------------------------ exec


async def test_exec_takes_the_words_after_the_target_as_the_command(emulator: Emulator) -> None:
    status, out, err = await run_cli(["exec", *url(emulator), "web-1", "ls", "-ld", "/tmp"])
    assert status == 0, err
    assert re.match(rb"d\S+ .* /tmp\n\Z", out), out


async def test_exec_options_before_the_command_words_are_exec_options(emulator: Emulator) -> None:
    # -q between TARGET and the command is exec's (no status lines), as ssh reads
    # `ssh host -q cmd`; the -v of `grep -v` is the command's.
    status, out, err = await run_cli(
        ["exec", "web-1", "-q", *url(emulator), "printf", "'a\\nb\\n'", "|", "grep", "-v", "a"]
    )
    assert status == 0, err
    assert out == b"b\n"
    assert err == b""


async def test_exec_double_dash_still_ends_the_options(emulator: Emulator) -> None:
    status, out, err = await run_cli(["exec", *url(emulator), "web-1", "--", "echo", "-n", "x"])
    assert status == 0, err
    assert out == b"x"
    status, out, _ = await run_cli(["exec", "-q", "--local", "--", "echo", "--", "-e"])
    assert (status, out) == (0, b"-- -e\n")


# ------------------------------------------------------------------ forward


@contextlib.asynccontextmanager
async def forwarding(
    emulator: Emulator, argv: Sequence[str], sessions: int = 1
) -> AsyncIterator[list[str]]:
    """``ssmsh forward ARGV`` (with ``-v``) until its ``sessions`` are ready; yields its
    stderr lines so far. Ctrl-C, and status 0, afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        *url(emulator),
        "forward",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(scaled(20)):
            while sum(" ready (" in line for line in lines) < sessions:
                line = (await proc.stderr.readline()).decode()
                assert line, lines
                lines.append(line)
        yield lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(scaled(15)):
            rest = (await proc.stderr.read()).decode()
            status = await proc.wait()
        assert status == 0, "".join(lines) + rest


def ports(lines: list[str]) -> list[int]:
    return [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+)", "".join(lines))]


async def test_forward_takes_dash_l_like_ssh(emulator: Emulator) -> None:
    async with (
        echo_server() as first,
        echo_server() as second,
        forwarding(
            emulator,
            ["-v", "-L", f"0:localhost:{first}", "-L", f"0:{second}", DEFAULT_TARGET],
            sessions=2,
        ) as lines,
    ):
        one, two = ports(lines)
        assert await exchange("127.0.0.1", one, b"first") == b"first"
        assert await exchange("127.0.0.1", two, b"second") == b"second"
    documents = sorted(s.document_name for s in emulator.state.sessions.values())
    assert documents == [
        "AWS-StartPortForwardingSession",
        "AWS-StartPortForwardingSessionToRemoteHost",
    ]


async def test_forward_dash_l_and_specs_after_the_target_together(emulator: Emulator) -> None:
    async with (
        echo_server() as first,
        echo_server() as second,
        forwarding(
            emulator, ["-v", "-L", f"0:{first}", DEFAULT_TARGET, f"0:{second}"], sessions=2
        ) as lines,
    ):
        one, two = ports(lines)  # -L's first
        assert await exchange("127.0.0.1", one, b"1") == b"1"
        assert await exchange("127.0.0.1", two, b"2") == b"2"


async def test_a_lone_port_is_the_same_port_on_both_sides(emulator: Emulator) -> None:
    port = free_port()
    async with forwarding(emulator, ["-v", DEFAULT_TARGET, str(port)]) as lines:
        assert f"listening on 127.0.0.1:{port} for localhost:{port}" in "".join(lines), lines
    (session,) = emulator.state.sessions.values()
    assert session.parameters["portNumber"] == [str(port)]
    assert session.parameters["localPortNumber"] == [str(port)]


async def test_star_accepts_ipv4_and_ipv6_connections(emulator: Emulator) -> None:
    async with (
        echo_server() as dest,
        forwarding(emulator, ["-v", DEFAULT_TARGET, f"*:0:{dest}"]) as lines,
    ):
        text = "".join(lines)
        match = re.search(r"listening on 0\.0\.0\.0:(\d+), \[::\]:(\d+) for ", text)
        assert match, text
        port = int(match.group(1))
        assert int(match.group(2)) == port
        assert f"warning: [::]:{port} accepts connections from other machines" in text
        assert await exchange("::1", port, b"over IPv6") == b"over IPv6"
        assert await exchange("127.0.0.1", port, b"over IPv4") == b"over IPv4"


async def test_an_unknown_forward_option_shows_forwards_usage() -> None:
    status, _, err = await run_cli(["forward", "--bogus", "web-1", "80"])
    assert status == 2
    text = err.decode()
    assert text.startswith("usage: ssmsh forward "), text
    assert "unrecognized arguments: --bogus" in text
