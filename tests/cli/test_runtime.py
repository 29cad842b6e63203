"""The one CLI runtime and the command registry (ssmsh.cli.runtime, .registry, .commands).

Every command is declared in ssmsh/cli/commands/ and goes through the runtime; a
command module that fails to import is an error, never a missing command; signals
are handled one way: an ignored one (nohup) stays ignored, and the previous handlers
come back afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ssmsh.cli import commands, registry, runtime
from ssmsh.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED
from ssmsh.cli.main import build_parser, main
from ssmsh.emulator import DEFAULT_TARGET, Emulator, SessionStatus
from ssmsh.exceptions import ChannelClosed, UsageError
from ssmsh.terminal.tty import Terminal
from tests.conftest import scaled

from .harness import default_signals, start_cli

pytestmark = pytest.mark.timeout(60)

CLI = Path(runtime.__file__).parent
EVERY_COMMAND = {
    "shell",
    "cp",
    "help",
    "attach",
    "exec",
    "emulator",
    "forward",
    "socks",
    "proxy",
    "ssh",
    "ssh-config",
    "plugin",
    "sessions",
    "terminate",
    "ls",
    "status",
    "setup",
    "run",
    "commands",
    "automation",
    "approve",
    "reject",
    "association",
    "completion",
}
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def choices(parser: Any) -> set[str]:
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    return set(subparsers.choices)


# ------------------------------------------------------------------ the registry


def test_every_command_is_registered_from_a_module_named_after_it() -> None:
    # (a dash in a command's name is an underscore in its module's)
    modules = {p.stem.replace("_", "-") for p in (CLI / "commands").glob("[!_]*.py")}
    assert set(commands.NAMES) == modules == EVERY_COMMAND
    assert len(commands.NAMES) == len(set(commands.NAMES))
    loaded = registry.load()
    assert list(loaded) == list(commands.NAMES)
    assert choices(build_parser()) == EVERY_COMMAND
    for command in loaded.values():  # every one runs through the runtime
        assert inspect.iscoroutinefunction(command.run), command.name


@pytest.fixture
def fresh_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command modules are imported again (and put back afterwards)."""
    for name in list(sys.modules):
        if name.startswith(f"{commands.__name__}."):
            monkeypatch.delitem(sys.modules, name)
    yield


@pytest.mark.usefixtures("fresh_commands")
def test_a_command_module_that_cannot_be_imported_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ssmsh.cli.forward", None)  # its import fails
    with pytest.raises(ImportError, match=re.escape("ssmsh.cli.forward")):
        registry.load()
    with pytest.raises(ImportError):
        main(["ls", "--help"])


def test_an_emulator_that_is_not_installed_is_no_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ssmsh.emulator", None)  # find_spec: None
    assert not registry.installed("ssmsh.emulator")
    assert "emulator" not in registry.load()
    assert choices(build_parser(["--help"])) == EVERY_COMMAND - {"emulator"}


def test_an_emulator_that_is_installed_but_broken_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ssmsh.emulator.cli", None)  # its import fails
    assert "emulator" in registry.load()
    assert "emulator" in choices(build_parser(["ls"]))  # listed; not configured
    with pytest.raises(ImportError, match=re.escape("ssmsh.emulator.cli")):
        build_parser(["emulator", "--port", "0"])


def test_installed_tells_a_missing_package_from_a_broken_one() -> None:
    assert registry.installed("ssmsh.emulator")
    assert not registry.installed("ssmsh.no_such_module")
    assert not registry.installed("no_such_package.module")


def test_only_the_console_script_imports_main() -> None:
    """main sits on top: no command (plugin included) imports it back."""
    imports_main = re.compile(r"from \.+main import|from \.+ import main\b|ssmsh\.cli\.main")
    importers = [
        path.relative_to(CLI).as_posix()
        for path in CLI.rglob("*.py")
        if imports_main.search(path.read_text())
    ]
    # helpdocs: ``ssmsh help COMMAND`` shows that command's --help, built by main's parser
    # (a deferred import, at that moment only).
    assert sorted(importers) == ["entry.py", "helpdocs.py"]


def test_dashes_and_passthrough_as_the_commands_declare_them() -> None:
    from ssmsh.cli.main import parse_args

    loaded = registry.load()

    def parse(*argv: str) -> Any:
        return parse_args(build_parser(argv, loaded), argv, loaded)

    assert parse("exec", "i-1", "--", "ls", "-l").words == ["ls", "-l"]
    assert parse("run", "tag:Env=prod", "--", "uptime").words == ["uptime"]
    assert parse("-v", "plugin", "--version").plugin_args == ["--version"]
    assert runtime.verbosity(parse("-v", "plugin", "--version")) == (1, False)
    assert runtime.verbosity(parse("-vv", "plugin", "--version")) == (2, True)
    assert runtime.verbosity(parse("--debug", "plugin", "--version")) == (0, True)
    assert parse("--profile", "plugin", "shell").command == "shell"


# ------------------------------------------------------------------ the runner


def run_and_read(make: Callable[[], Awaitable[int]], debug: bool = False) -> tuple[int, str]:
    """``runtime.run`` with stderr on a pipe: (status, what it printed there)."""
    read, write = os.pipe()
    try:
        terminal = Terminal(stderr=write)
        status = runtime.run(make, terminal, runtime.Reporter(terminal), debug)
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as pipe:
        return status, pipe.read().decode()


def test_run_reports_each_failure_as_one_line_and_its_status() -> None:
    async def fails(exc: BaseException) -> int:
        raise exc

    assert run_and_read(lambda: fails(KeyboardInterrupt())) == (
        EXIT_INTERRUPTED,
        "ssmsh: interrupted\n",
    )
    assert run_and_read(lambda: fails(UsageError("no target"))) == (
        EXIT_FAILURE,
        "ssmsh: no target\n",
    )
    assert run_and_read(lambda: fails(ChannelClosed("bye", exit_code=3)))[0] == 3
    status, text = run_and_read(lambda: fails(RuntimeError("boom")))
    assert (status, text) == (EXIT_FAILURE, "ssmsh: internal error: RuntimeError: boom\n")


def test_run_returns_the_status() -> None:
    async def fine() -> int:
        return 7

    assert run_and_read(fine) == (7, "")


# ------------------------------------------------------------------ signals


@pytest.fixture
def saved_handlers() -> Iterator[dict[int, Any]]:
    saved: dict[int, Any] = {signum: signal.getsignal(signum) for signum in HANDLED}
    yield saved
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_an_ignored_signal_stays_ignored_and_the_previous_handlers_come_back(
    saved_handlers: dict[int, Any],
) -> None:
    caught: list[int] = []

    def before(signum: int, frame: object) -> None:
        caught.append(-signum)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    signal.signal(signal.SIGTERM, before)
    received: list[int] = []

    async def command() -> int:
        with runtime.handle_signals(runtime.STOP_SIGNALS, received.append) as handled:
            assert set(handled) == {signal.SIGINT, signal.SIGTERM}
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # nothing happens
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(5):
                while not received:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        return 0

    assert run_and_read(command) == (0, "")
    assert received == [signal.SIGTERM]
    assert caught == []
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) == saved_handlers[signal.SIGINT]


async def test_unless_set_gives_the_result_or_none_and_cancels_what_lost() -> None:
    stop = asyncio.Event()

    async def value() -> str:
        return "done"

    assert await runtime.unless_set(value(), stop) == "done"

    ended: list[str] = []

    async def hangs() -> str:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("cancelled")
        return "never"

    async def failing_cleanup() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise UsageError("while cancelled") from None
        return "never"

    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await runtime.unless_set(hangs(), stop) is None
    assert ended == ["cancelled"]
    assert await runtime.unless_set(failing_cleanup(), stop) is None  # the event decided

    async def fails() -> str:
        raise UsageError("failed first")

    with pytest.raises(UsageError, match="failed first"):
        await runtime.unless_set(fails(), asyncio.Event())


# ------------------------------------------------------------------ forward under nohup


def _ignore_sighup() -> None:  # as under nohup
    default_signals()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def _forward_until_ready(
    emulator: Emulator, preexec: Callable[[], None]
) -> tuple[asyncio.subprocess.Process, list[str]]:
    args = ["--endpoint-url", emulator.endpoint_url, "forward", "-v", DEFAULT_TARGET, "0:22"]
    proc = await start_cli(args, preexec=preexec)
    assert proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(scaled(20)):
        while not any("ready (" in line for line in lines):
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"forward ended: {lines}")
            lines.append(line.decode().rstrip("\n"))
    return proc, lines


async def _ended(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    assert proc.stderr is not None
    async with asyncio.timeout(scaled(15)):
        rest = (await proc.stderr.read()).decode()
        status = await proc.wait()
    return status, rest


async def test_forward_under_nohup_keeps_running_after_sighup(emulator: Emulator) -> None:
    proc, lines = await _forward_until_ready(emulator, _ignore_sighup)
    try:
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(scaled(0.5))
        assert proc.returncode is None, "SIGHUP under nohup ended ssmsh forward"
        proc.send_signal(signal.SIGTERM)
        status, rest = await _ended(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert status == 0, (lines, rest)
    assert "Traceback" not in rest
    assert all(s.status is SessionStatus.TERMINATED for s in emulator.state.sessions.values())


async def test_forward_ends_cleanly_on_sighup(emulator: Emulator) -> None:
    proc, lines = await _forward_until_ready(emulator, default_signals)
    try:
        proc.send_signal(signal.SIGHUP)
        status, rest = await _ended(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert status == 0, (lines, rest)
    assert "Traceback" not in rest
    assert all(s.status is SessionStatus.TERMINATED for s in emulator.state.sessions.values())
