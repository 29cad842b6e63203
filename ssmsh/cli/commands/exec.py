"""``ssmsh exec [-t] TARGET COMMAND...``: run one command (:mod:`ssmsh.cli.shell`).

The words after TARGET are the command line, as with ssh (``ssmsh exec web-1 ls -ld
/tmp``): the options of ``exec`` come before them (see ``command_after_target``)."""

from __future__ import annotations

from ..registry import Command
from ..shell import configure_exec, run_exec

__all__ = ["COMMAND"]

COMMAND = Command(
    name="exec",
    help="run a command on a managed instance",
    description="Run COMMAND on TARGET and exit with its status, as ssh does: the words "
    "after TARGET are the command line (ssmsh exec web-1 ls -ld /tmp), so exec's own "
    "options come before them; -- ends the options (ssmsh exec --local -- uptime has no "
    "TARGET: --local's or SSMSH_TARGET's). The words are joined with spaces and run by sh "
    "on the target (PowerShell on Windows). stdout and stderr stay separate unless -t is "
    "given.",
    configure=configure_exec,
    run=run_exec,
    command_after_target="words",
)
