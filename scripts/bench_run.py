#!/usr/bin/env python3
"""Benchmark ``ssmsh run`` over a large emulated fleet.

An in-process emulator with N instances (default 500, all online, the default 0.5 s
visibility delay after SendCommand). One command runs on all of them twice:

* ``ssmsh run tag:Env --max-concurrency 100% -- CMD``, a subprocess with stdout in a pipe;
* the baseline, the pattern of AWS CLI scripts: after SendCommand, one
  GetCommandInvocation per unfinished instance per round (botocore, no retries), rounds
  0.5 s apart, ssmsh's own first pace (the CLI's ``command-executed`` waiter polls each
  instance every 5 s, which would only look worse).

For each it prints the API calls made per instance (from the emulator's counters, so
every page and every retry counts) and the time from the last invocation finishing (its
end time in the emulator) to the client having it: ``ssmsh run`` printing its line, the
baseline seeing it final.

Usage: python scripts/bench_run.py [--instances N] [--command 'echo hi']
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402

from ssmsh.emulator import Emulator, EmulatorConfig  # noqa: E402

FINAL = {"Success", "Cancelled", "Failed", "TimedOut"}


def env() -> dict[str, str]:
    result = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=ROOT,
        PYTHONUNBUFFERED="1",
    )
    return result


def calls_since(emu: Emulator, before: dict[str, int]) -> dict[str, int]:
    after = emu.api.calls
    return {
        k.split(".", 1)[-1]: after[k] - before.get(k, 0)
        for k in after
        if after[k] != before.get(k, 0)
    }


def last_end(emu: Emulator, command_id: str) -> float:
    """When the command's last invocation finished (the emulator's clock: time.time())."""
    command = emu.commands.commands[command_id]
    return max(p.end or 0.0 for inv in command.invocations.values() for p in inv.plugins)


async def bench_ssmsh(emu: Emulator, n: int, command: str) -> dict[str, Any]:
    before = dict(emu.api.calls)
    started = time.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        "run",
        "--endpoint-url",
        emu.endpoint_url,
        "tag:Env",
        "--max-concurrency",
        "100%",
        "--",
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = 0
    last_line = 0.0
    while True:
        line = await proc.stdout.readline()
        if not line:
            break
        lines += 1
        last_line = time.time()
    err = await proc.stderr.read()
    code = await proc.wait()
    ended = time.time()
    if code != 0 or lines != n:
        raise SystemExit(f"ssmsh run: exit {code}, {lines} lines\n{err.decode()}")
    command_id = err.decode().split("Command ID: ", 1)[1].split()[0]
    return {
        "calls": calls_since(emu, before),
        "latency": last_line - last_end(emu, command_id),
        "wall": ended - started,
    }


def bench_baseline(emu: Emulator, n: int, command: str) -> dict[str, Any]:
    """Runs in a thread: botocore blocks, the emulator serves on the main loop."""
    session = botocore.session.get_session()
    ssm: Any = session.create_client(
        "ssm",
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    before = dict(emu.api.calls)
    started = time.time()
    sent = ssm.send_command(
        Targets=[{"Key": "tag-key", "Values": ["Env"]}],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": [command]},
        MaxConcurrency="100%",
    )["Command"]
    command_id = sent["CommandId"]
    # The script knows its instances (it chose them): every fleet id but the fixed one.
    pending = {t for t in emu.state.targets if t != "i-0123456789abcdef0"}
    seen_last = 0.0
    while pending:
        time.sleep(0.5)
        for instance_id in sorted(pending):
            try:
                found = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except ssm.exceptions.InvocationDoesNotExist:
                continue
            if found["Status"] in FINAL:
                pending.discard(instance_id)
                seen_last = time.time()
    return {
        "calls": calls_since(emu, before),
        "latency": seen_last - last_end(emu, command_id),
        "wall": time.time() - started,
    }


def show(name: str, n: int, result: dict[str, Any]) -> None:
    calls = result["calls"]
    total = sum(calls.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
    print(
        f"{name:<28} {total / n:6.3f} calls/instance ({total} calls: {detail}); "
        f"last finish -> reported {result['latency']:.2f} s; wall {result['wall']:.1f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--command", default="echo hi from $AWS_SSM_INSTANCE_ID")
    args = parser.parse_args()
    n = args.instances
    config = EmulatorConfig(instances=n)
    async with Emulator(config) as emu:
        print(f"{n} emulated instances, one command: {args.command!r}")
        show("ssmsh run", n, await bench_ssmsh(emu, n, args.command))
        baseline = await asyncio.to_thread(bench_baseline, emu, n, args.command)
        show("GetCommandInvocation each", n, baseline)


if __name__ == "__main__":
    asyncio.run(main())
