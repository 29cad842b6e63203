"""``ssmsh completion bash|zsh|fish``: shell completion, and the target names it offers.

The script is written from ssmsh's own parser when it is asked for, so it always has
the commands and options of the installed version; pressing Tab then runs no Python
at all. Targets come from a short list on disk, ``$XDG_CACHE_HOME/ssmsh/targets``
(``~/.cache/ssmsh/targets``): the instance ids and Name tags that ``ssmsh ls`` last
listed (:func:`remember_targets`). ``ssmsh ls`` refreshes it; nothing else calls AWS
for completion. The aliases of the config file come from it directly (sed, at Tab).

``--document`` completes to AWS's own Session documents (:data:`SESSION_DOCUMENTS`; for
``run``, its Command documents).
zsh uses the bash function through ``bashcompinit``, as zsh documents for bash
completions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable

from ..exceptions import UsageError
from ..terminal.tty import Terminal
from .common import add_common_options
from .config import xdg_dir
from .runtime import Reporter

__all__ = ["configure_completion", "remember_targets", "run_completion", "targets_file"]

SHELLS = ("bash", "zsh", "fish")

#: sed's program printing the aliases of the config file: its ``[hosts.NAME]`` and
#: ``[hosts."NAME"]`` tables (:mod:`.config`). Single-quoted as it is in sh and fish alike.
ALIASES_SED = (
    r's/^[[:space:]]*\[[[:space:]]*hosts\."\{0,1\}\([A-Za-z0-9_][A-Za-z0-9._-]*\)'
    r'"\{0,1\}[[:space:]]*\].*/\1/p'
)


def targets_file() -> str:
    return str(xdg_dir("XDG_CACHE_HOME", ".cache") / "targets")


def remember_targets(instances: Iterable[dict[str, object]]) -> None:
    """Keep the ids and Name tags of ``instances`` for completion (best effort)."""
    words: list[str] = []
    for item in instances:
        for key in ("InstanceId", "NameTag"):
            value = item.get(key)
            if isinstance(value, str) and value and value.isprintable() and " " not in value:
                words.append(value)
    path = targets_file()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(f"{w}\n" for w in sorted(set(words))))
        os.replace(tmp, path)
    except OSError:
        pass  # completion is a convenience: never fail a listing for it


def configure_completion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")


def _commands_and_options() -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(commands, options before a command, each command's options) from the parser."""
    from . import registry  # every command's declaration (imports them all: only here)

    top_parser = argparse.ArgumentParser(add_help=False)
    add_common_options(top_parser)
    top = sorted(o for a in top_parser._actions for o in a.option_strings if o.startswith("--"))
    per: dict[str, list[str]] = {}
    for name, command in registry.load().items():
        if command.passthrough is not None:  # its words are another program's (plugin)
            per[name] = []
            continue
        sub = argparse.ArgumentParser(prog=name, **dict(command.parser_options))
        command.configure(sub)
        per[name] = sorted({o for a in sub._actions for o in a.option_strings})
    return sorted(per), ["--version", "--help", *top], per


#: What ``--document`` completes to: AWS's own Session documents (every account has them).
#: An account's own documents are not listed: that would call AWS at every Tab.
SESSION_DOCUMENTS = (
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
    "AWS-StartPortForwardingSession",
    "AWS-StartPortForwardingSessionToRemoteHost",
    "AWS-StartPortForwardingSessionToSocket",
    "AWS-StartSSHSession",
    "AWS-PasswordReset",
)
#: ... and for ``ssmsh run``, AWS's own Command documents.
COMMAND_DOCUMENTS = (
    "AWS-RunShellScript",
    "AWS-RunPowerShellScript",
    "AWS-RunPatchBaseline",
    "AWS-ConfigureAWSPackage",
    "AWS-UpdateSSMAgent",
    "AWS-ApplyAnsiblePlaybooks",
)


def _bash(commands: list[str], top: list[str], per: dict[str, list[str]]) -> str:
    cases = "\n".join(
        f"        {name}) opts={' '.join(options)!r} ;;" for name, options in per.items()
    )
    return f"""# ssmsh completion for bash (ssmsh completion bash)
_ssmsh_complete() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd="" i opts=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in -*) ;; *) cmd=${{COMP_WORDS[i]}}; break ;; esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "{" ".join(commands)} {" ".join(top)}" -- "$cur"))
        return
    fi
    case $cmd in
{cases}
    esac
    case ${{COMP_WORDS[COMP_CWORD-1]}} in
        --document|--document-name)
            local docs="{" ".join(SESSION_DOCUMENTS)}"
            [[ $cmd == run ]] && docs="{" ".join(COMMAND_DOCUMENTS)}"
            COMPREPLY=($(compgen -W "$docs" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        local file=${{XDG_CACHE_HOME:-$HOME/.cache}}/ssmsh/targets
        local conf=${{SSMSH_CONFIG:-${{XDG_CONFIG_HOME:-$HOME/.config}}/ssmsh/config.toml}}
        local aliases=$(sed -n '{ALIASES_SED}' "$conf" 2>/dev/null)
        COMPREPLY=($(compgen -W "$(cat "$file" 2>/dev/null) $aliases" -- "$cur"))
    fi
}}
complete -o default -F _ssmsh_complete ssmsh
"""


def _fish(commands: list[str], top: list[str], per: dict[str, list[str]]) -> str:
    lines = [
        "# ssmsh completion for fish (ssmsh completion fish)",
        "complete -c ssmsh -f",
        f"complete -c ssmsh -n __fish_use_subcommand -a '{' '.join(commands)}'",
    ]
    lines += [f"complete -c ssmsh -n __fish_use_subcommand -l {o[2:]}" for o in top]
    for name, options in per.items():
        for option in options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            lines.append(f"complete -c ssmsh -n '__fish_seen_subcommand_from {name}' {flag}")
    for option in ("document", "document-name"):
        for when, names in (("not ", SESSION_DOCUMENTS), ("", COMMAND_DOCUMENTS)):
            lines.append(
                f"complete -c ssmsh -n '{when}__fish_seen_subcommand_from run' -l {option} -x "
                f"-a '{' '.join(names)}'"
            )
    lines.append(
        "complete -c ssmsh -n 'not __fish_use_subcommand' -a "
        "'(cat (set -q XDG_CACHE_HOME; and echo $XDG_CACHE_HOME; or echo ~/.cache)"
        "/ssmsh/targets 2>/dev/null)'"
    )
    lines.append(
        "complete -c ssmsh -n 'not __fish_use_subcommand' -a "
        f"'(sed -n \\'{ALIASES_SED}\\' (set -q SSMSH_CONFIG; and echo $SSMSH_CONFIG; "
        "or echo (set -q XDG_CONFIG_HOME; and echo $XDG_CONFIG_HOME; or echo ~/.config)"
        "/ssmsh/config.toml) 2>/dev/null)'"
    )
    return "\n".join(lines) + "\n"


async def run_completion(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh completion SHELL``: the script on stdout."""
    commands, top, per = _commands_and_options()
    if args.shell == "bash":
        script = _bash(commands, top, per)
    elif args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + _bash(commands, top, per)
    elif args.shell == "fish":
        script = _fish(commands, top, per)
    else:  # argparse's choices make this unreachable
        raise UsageError(f"no completion for {args.shell!r}")
    sys.stdout.write(script)
    return 0
