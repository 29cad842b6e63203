"""An AWS endpoint that accepts connections and never answers.

Ctrl-C must end ssmsh at once with one line (the blocked boto3 call must not be
waited for), and the call itself must time out with one line.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials
from ssmsh.exceptions import AwsError
from tests.conftest import scaled

from .harness import start_cli

pytestmark = pytest.mark.timeout(60)

TARGET = "i-0123456789abcdef0"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT whose connections are accepted (by the backlog) and never answered."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _default_sigint() -> None:  # a CLI started from a terminal: Ctrl-C raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("command", [["shell"], ["exec", "--", "true"]])
async def test_ctrl_c_while_a_call_hangs(silent_endpoint: str, command: list[str]) -> None:
    args = [command[0], TARGET, "--endpoint-url", silent_endpoint, *command[1:]]
    proc = await start_cli(args, preexec=_default_sigint)
    await asyncio.sleep(scaled(1.5))  # StartSession is under way (and hangs)
    assert proc.returncode is None, "ssmsh ended before the Ctrl-C"
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        async with asyncio.timeout(scaled(5)):
            out, err = await proc.communicate()
            status = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError("ssmsh did not end promptly after Ctrl-C") from None
    elapsed = time.monotonic() - started
    text = err.decode()
    assert "Traceback" not in text, text
    assert text.strip().splitlines() == ["ssmsh: interrupted"], text
    assert out == b""
    assert status == 130, (status, text)
    assert elapsed < scaled(5)


async def test_a_hung_call_times_out_with_one_line(silent_endpoint: str) -> None:
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url=silent_endpoint,
        credentials=StaticCredentials("AKIDTESTTESTTESTTEST", "secret"),
        isolated=True,
        connect_timeout=scaled(0.5),
        read_timeout=scaled(0.5),
        max_attempts=1,
    )
    started = time.monotonic()
    with pytest.raises(AwsError) as info:
        await SsmSessions(settings).start_session(TARGET)
    assert time.monotonic() - started < scaled(5)
    assert "timed out talking to the AWS endpoint" in str(info.value)
    assert "\n" not in str(info.value)


def test_defaults_bound_a_hung_call() -> None:
    settings = AwsSettings()
    worst = settings.read_timeout * settings.max_attempts
    assert settings.connect_timeout <= 10
    assert worst <= 45, worst
