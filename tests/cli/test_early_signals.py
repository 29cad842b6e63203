"""SIGTERM, SIGHUP and SIGINT while ``ssmsh shell`` / ``exec`` are still starting.

Each phase is held open by a server that stops answering at that point, and the
signal is sent once the server has seen the client get there (no guessing with
sleeps): StartSession in flight, the WebSocket being opened, the handshake.
ssmsh must end at once with one line on stderr and 128 + the signal's number,
no traceback, TerminateSession attempted when StartSession had answered, and
the terminal as it was.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from tests.channel.fakeagent import AgentSession, FakeAgent
from tests.conftest import scaled

from .harness import PtyProcess, cli_env, default_signals, start_cli
from .scripted import ScriptedAws

pytestmark = pytest.mark.timeout(60)

TARGET = "i-0123456789abcdef0"
STARTING = "while starting the session"


class SilentServer:
    """TCP on loopback that accepts connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.transport.abort()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.connected.set()


class HungGatewayAgent(FakeAgent):
    """StartSession answers; its StreamUrl leads to a server that never upgrades."""

    def __init__(self, gateway: SilentServer) -> None:
        super().__init__()
        self.gateway = gateway

    def url(self, session_id: str) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}/v1/data-channel/{session_id}"


class MuteAgent(FakeAgent):
    """The link opens, then the agent never says a word: the handshake never starts."""

    def __init__(self) -> None:
        super().__init__()
        self.linked = asyncio.Event()

    def _begin(self, session: AgentSession) -> None:
        self.linked.set()


def _ignore_sighup() -> None:  # as under nohup
    default_signals()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def signal_when(
    proc: asyncio.subprocess.Process, reached: asyncio.Event, signum: int
) -> tuple[int, bytes, bytes]:
    """Send ``signum`` once ``reached`` is set; (status, stdout, stderr), ended promptly."""
    async with asyncio.timeout(scaled(20)):
        waiting = asyncio.ensure_future(reached.wait())
        ended = asyncio.ensure_future(proc.wait())
        await asyncio.wait([waiting, ended], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    if ended.done():
        out, err = await proc.communicate()
        raise AssertionError(f"ssmsh ended before the signal ({proc.returncode}): {err!r}")
    await asyncio.sleep(0.05)  # the call is under way, not just its first packet
    proc.send_signal(signum)
    try:
        async with asyncio.timeout(scaled(8)):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(f"ssmsh did not end promptly after signal {signum}") from None
    assert proc.returncode is not None
    return proc.returncode, out, err


def single_line(err: bytes) -> str:
    text = err.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    async with SilentServer() as server:
        yield server


@pytest.mark.parametrize(
    ("signum", "command"),
    [
        (signal.SIGTERM, ["shell"]),
        (signal.SIGTERM, ["exec", "--", "true"]),
        (signal.SIGHUP, ["shell"]),
        (signal.SIGINT, ["exec", "--", "true"]),
    ],
    ids=["TERM-shell", "TERM-exec", "HUP-shell", "INT-exec"],
)
async def test_signal_while_start_session_hangs(
    silent: SilentServer, signum: int, command: list[str]
) -> None:
    args = [command[0], TARGET, "--endpoint-url", f"http://127.0.0.1:{silent.port}", *command[1:]]
    proc = await start_cli(args)
    status, out, err = await signal_when(proc, silent.connected, signum)
    line = single_line(err)
    if signum == signal.SIGINT:
        assert line == "ssmsh: interrupted"
    else:
        assert line == f"ssmsh: killed by signal {signum} {STARTING}"
    assert status == 128 + signum, (status, err)
    assert out == b""


async def killed_after_start_session(aws: ScriptedAws, reached: asyncio.Event, signum: int) -> None:
    """``ssmsh exec`` gets ``signum`` once ``reached``: one line, 128 + signum, and the
    session StartSession made is terminated."""
    proc = await start_cli(
        ["exec", TARGET, "--endpoint-url", aws.endpoint_url, "--quiet", "--", "true"]
    )
    status, out, err = await signal_when(proc, reached, signum)
    assert single_line(err) == f"ssmsh: killed by signal {signum} {STARTING}"
    assert status == 128 + signum
    assert out == b""
    # exec asks for the platform first (the status wrapper is for sh; Windows has none)
    assert aws.calls == ["DescribeInstanceInformation", "StartSession", "TerminateSession"]


async def test_sigterm_while_the_websocket_opens_terminates_the_session(
    silent: SilentServer,
) -> None:
    agent = HungGatewayAgent(silent)
    async with agent, ScriptedAws(agent) as aws:
        await killed_after_start_session(aws, silent.connected, signal.SIGTERM)
        assert agent.terminate_calls == list(agent.sessions)


async def test_sighup_during_the_handshake_terminates_the_session() -> None:
    agent = MuteAgent()
    async with agent, ScriptedAws(agent) as aws:
        await killed_after_start_session(aws, agent.linked, signal.SIGHUP)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
async def test_proxy_stops_during_the_handshake(signum: int) -> None:
    # ssh sends SIGHUP to its ProxyCommand when it gives up: a slow or silent agent
    # must not keep ssmsh proxy running (docs/tunnels.md: exit 0 after ending the session).
    agent = MuteAgent()
    async with agent, ScriptedAws(agent) as aws:
        proc = await start_cli(["proxy", TARGET, "22", "--endpoint-url", aws.endpoint_url])
        status, out, err = await signal_when(proc, agent.linked, signum)
        assert status == 0, err
        assert out == b"" and b"Traceback" not in err
        assert aws.calls == ["StartSession", "TerminateSession"]


async def test_a_silent_agent_meets_the_handshake_deadline() -> None:
    agent = MuteAgent()
    async with agent, ScriptedAws(agent) as aws:
        deadline = str(scaled(1))
        args = ["exec", TARGET, "--endpoint-url", aws.endpoint_url, "-q"]
        proc = await start_cli([*args, "--handshake-timeout", deadline, "--", "true"])
        async with asyncio.timeout(scaled(20)):
            _, err = await proc.communicate()
        assert single_line(err).startswith(
            "ssmsh: session handshake failed: no handshake from the agent within"
        )
        assert proc.returncode == 255
        assert aws.calls == ["DescribeInstanceInformation", "StartSession", "TerminateSession"]


async def test_an_ignored_sighup_stays_ignored(silent: SilentServer) -> None:
    args = ["shell", TARGET, "--endpoint-url", f"http://127.0.0.1:{silent.port}"]
    proc = await start_cli(args, preexec=_ignore_sighup)
    async with asyncio.timeout(scaled(20)):
        await silent.connected.wait()
    proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(scaled(0.5))
    assert proc.returncode is None, "SIGHUP under nohup ended ssmsh"
    status, out, err = await signal_when(proc, silent.connected, signal.SIGTERM)
    assert single_line(err) == f"ssmsh: killed by signal 15 {STARTING}"
    assert status == 143
    assert out == b""


async def test_sigterm_during_the_handshake_restores_the_terminal() -> None:
    """A shell in a pty: raw mode is on while it waits for the handshake."""
    agent = MuteAgent()
    async with agent, ScriptedAws(agent) as aws:
        shell = PtyProcess(["shell", TARGET, "--endpoint-url", aws.endpoint_url])
        try:
            async with asyncio.timeout(scaled(20)):
                await agent.linked.wait()
            await shell.expect("Starting session with SessionId: ")
            async with asyncio.timeout(scaled(10)):  # the bridge puts the terminal in raw mode
                while shell.slave_attrs() == shell.initial_attrs:
                    await asyncio.sleep(0.01)
            shell.proc.send_signal(signal.SIGTERM)
            assert await shell.wait() == 143
            assert shell.slave_attrs() == shell.initial_attrs
            text = shell.text
            assert "Traceback" not in text
            assert text.count("ssmsh: ") == 1, text
            assert f"ssmsh: killed by signal 15 {STARTING}" in text
        finally:
            shell.close()
        assert aws.calls == ["StartSession", "TerminateSession"]


# ------------------------------------------------------------- while importing

_CTRL_C_DURING_IMPORT = """
import builtins, os, signal, sys
from ssmsh.cli import entry

real_import = builtins.__import__

def import_then_ctrl_c(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 1 and name == "main":  # entry's "from .main import main": the slow part
        os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C came in the middle of it
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = import_then_ctrl_c
sys.exit(entry.main(["--version"]))
"""


def test_ctrl_c_while_the_command_line_is_imported_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_DURING_IMPORT],
        capture_output=True,
        timeout=scaled(30),
        env=cli_env(None),
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, b"ssmsh: interrupted\n", b"")


def test_ctrl_c_before_the_session_handles_it_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssmsh.cli import entry, main

    def interrupted(argv: list[str] | None = None) -> int:
        raise KeyboardInterrupt  # e.g. while the arguments are parsed

    monkeypatch.setattr(main, "main", interrupted)
    assert entry.main([]) == 130
    assert capsys.readouterr().err == "ssmsh: interrupted\n"


def test_an_ignored_sigint_stays_ignored_while_importing() -> None:
    # `nohup ssmsh ... &`: SIGINT is ignored, and the import guard must not undo that.
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from ssmsh.cli import entry\n"
        "import builtins, os\n"
        "real = builtins.__import__\n"
        "def hook(name, *args, **kwargs):\n"
        "    if name == 'main' and kwargs.get('level', args[3] if len(args) > 3 else 0) == 1:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = hook\n"
        "sys.exit(entry.main(['--version']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=scaled(30), env=cli_env(None)
    )
    assert proc.returncode == 0, proc.stderr
    assert b"interrupted" not in proc.stderr
