"""``ssmsh ssh [user@]TARGET [ssh args]`` and ``ssmsh ssh-config``: OpenSSH through Session Manager.

``ssmsh ssh`` runs the system's ``ssh`` with ``ssmsh proxy`` as its ProxyCommand, so
``ssh``'s own options, port forwards, agent and ``scp``/``rsync`` habits all work, with
no inbound port and no bastion. TARGET is resolved as everywhere in ssmsh (an id, or
a Name tag), and the connection goes to the instance id, so ``known_hosts`` keeps one
entry per instance whatever name was used.

With ``--push-key``, a new Ed25519 key pair is made for this connection, its public
half pushed with EC2 Instance Connect (``SendSSHPublicKey``: accepted by the
instance's sshd for 60 s) and its private half given to ssh alone
(``IdentitiesOnly``), then deleted when ssh ends: no key needs to be on the instance.

``ssmsh ssh-config`` prints a ``~/.ssh/config`` block that makes plain ``ssh``,
``scp`` and ``rsync`` reach instances by id the same way, and one for each alias of
the config file (:mod:`.config`), with its user.

ssh owns the terminal while it runs: Ctrl-C goes to it (and the remote), not to
ssmsh; SIGTERM and SIGHUP are passed on. The exit status is ssh's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import shlex
import shutil
import signal
import sys

from ..aws.instance_connect import OneTimeKey, push_key
from ..exceptions import UsageError
from ..terminal.tty import Terminal
from .choose import choose_target
from .common import LOCAL_CREDENTIALS, LOCAL_REGION, add_common_options, default_target, setting
from .config import load_config
from .portsession import session_service
from .runtime import Reporter

__all__ = [
    "configure_ssh",
    "configure_ssh_config",
    "proxy_command",
    "run_ssh",
    "run_ssh_config",
    "split_destination",
]


def configure_ssh(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--push-key",
        action="store_true",
        help="push a one-time key with EC2 Instance Connect (valid 60 s; nothing needed "
        "on the instance but EC2 Instance Connect's sshd setup)",
    )
    parser.add_argument(
        "--ssh", default="ssh", metavar="PROGRAM", help="the ssh program to run (default ssh)"
    )
    add_common_options(parser, suppress=True)
    parser.add_argument(
        "destination",
        metavar="[USER@]TARGET",
        nargs="?",
        help="an instance id, Name tag or alias (picked from a list on a terminal when "
        "left out); USER defaults to the alias's user, else [defaults]', else ssh's",
    )
    parser.add_argument(
        "ssh_args",
        nargs=argparse.REMAINDER,
        metavar="SSH_ARGS",
        help="passed to ssh as they are (options, then a remote command)",
    )


def configure_ssh_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts",
        default="i-* mi-*",
        metavar="PATTERNS",
        help="the Host patterns of the block (default: 'i-* mi-*', instance ids)",
    )
    add_common_options(parser, suppress=True)


def split_destination(destination: str) -> tuple[str | None, str]:
    """``user@target`` -> ``(user, target)``; ``target`` -> ``(None, target)``."""
    user, at, target = destination.rpartition("@")
    if not at:
        return None, destination
    if not user or not target:
        raise UsageError(f"invalid destination {destination!r} (give [USER@]TARGET)")
    return user, target


def _ssmsh_argv(args: argparse.Namespace, endpoint_url: str | None) -> list[str]:
    """How the ProxyCommand runs this ssmsh, with the options that reach AWS."""
    argv = [sys.executable, "-m", "ssmsh"]
    if endpoint_url:
        argv += ["--endpoint-url", endpoint_url]
    if getattr(args, "profile", None):
        argv += ["--profile", args.profile]
    if getattr(args, "region", None):
        argv += ["--region", args.region]
    return argv


def proxy_command(args: argparse.Namespace, endpoint_url: str | None = None) -> str:
    """The ProxyCommand line: ``ssmsh proxy %h %p`` with this run's AWS options."""
    words = [shlex.quote(w) for w in _ssmsh_argv(args, endpoint_url or args.endpoint_url)]
    return " ".join([*words, "proxy", "%h", "%p"])


async def run_ssh(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh ssh``: ssh's exit status."""
    program = shutil.which(args.ssh)
    if program is None:
        raise UsageError(f"{args.ssh!r} is not installed (OpenSSH's ssh client is needed)")
    user, word = split_destination(args.destination) if args.destination else (None, None)
    target = await choose_target(args, reporter, lambda: default_target(args, word))
    if user is None and not _user_given(args.ssh_args):
        user = setting(args, "user")  # the alias's, else [defaults]'; else ssh's own
    async with session_service(args, reporter) as aws:
        instance_id = await aws.resolve_target(target)
        endpoint = aws.settings.endpoint_url if args.local else None
        env = dict(os.environ)
        if args.local:  # the in-process emulator: the proxy reaches it with its credentials
            env.update(
                AWS_ACCESS_KEY_ID=LOCAL_CREDENTIALS.access_key,
                AWS_SECRET_ACCESS_KEY=LOCAL_CREDENTIALS.secret_key,
                AWS_DEFAULT_REGION=args.region or LOCAL_REGION,
            )
            env.pop("AWS_PROFILE", None)
        argv = [program, "-o", f"ProxyCommand={proxy_command(args, endpoint)}"]
        key: OneTimeKey | None = None
        try:
            if args.push_key:
                key = OneTimeKey()
                os_user = user or getpass.getuser()
                await push_key(aws, instance_id, os_user, key.public)
                reporter.status(f"pushed a one-time key for {os_user} on {instance_id} (60 s)")
                argv += ["-i", str(key.path), "-o", "IdentitiesOnly=yes"]
            destination = f"{user}@{instance_id}" if user else instance_id
            return await _run([*argv, destination, *args.ssh_args], env)
        finally:
            if key is not None:
                key.remove()


#: ssh's options that take a value (ssh(1)).
_SSH_VALUE_OPTIONS = "BbcDEeFIiJLlmOoPpQRSWw"


def _user_given(ssh_args: list[str]) -> bool:
    """Whether ssh's own options (before the remote command) name the user: ``-l USER``
    or ``-o User=USER``."""
    words = iter(ssh_args)
    for word in words:
        if not word.startswith("-") or word == "-":
            return False  # the remote command
        if word == "--":
            return False
        for position in range(1, len(word)):
            flag = word[position]
            if flag in _SSH_VALUE_OPTIONS:
                value = word[position + 1 :] or next(words, "")
                if flag == "l":
                    return True
                if flag == "o" and value.replace(" ", "=").lower().startswith("user="):
                    return True
                break
    return False


async def _run(argv: list[str], env: dict[str, str]) -> int:
    """Run ssh in the foreground; SIGINT/SIGQUIT are its own (the terminal sends them
    to both of us), SIGTERM/SIGHUP are passed on to it."""
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    passed = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # like system(3): the child decides
        for sig in passed:
            loop.add_signal_handler(sig, proc.send_signal, sig)
        status = await proc.wait()
    finally:
        for sig in passed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, handler)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return status if status >= 0 else 128 - status


async def run_ssh_config(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh ssh-config``: the block on stdout."""
    if args.local:
        raise UsageError("ssh-config is for AWS (the --local emulator lives only as long as ssmsh)")
    config = load_config()

    def command(given: argparse.Namespace) -> str:
        words = _ssmsh_argv(given, getattr(given, "endpoint_url", None))[3:]
        return " ".join(["ssmsh", *(shlex.quote(w) for w in words)])

    lines = [
        "# ssmsh: ssh, scp and rsync to managed instances by id, through Session Manager.",
        "# No key on the instance? ssmsh ssh --push-key USER@TARGET pushes a one-time one.",
        f"Host {args.hosts}",
        f"    ProxyCommand {command(args)} proxy %h %p",
        "    ServerAliveInterval 30",
    ]
    if config.hosts:
        lines.append(f"# The aliases of {config.path}: ssmsh proxy resolves them.")
    for name, host in sorted(config.hosts.items()):
        # The options given here, where the alias does not set its own.
        given = argparse.Namespace(**vars(args))
        for key in ("profile", "region", "endpoint_url"):
            if getattr(host, key):
                setattr(given, key, None)
        lines.append(f"Host {name}")
        if host.user:
            lines.append(f"    User {host.user}")
        lines += [f"    ProxyCommand {command(given)} proxy %h %p", "    ServerAliveInterval 30"]
    print("\n".join(lines))
    return 0
