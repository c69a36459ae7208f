"""Shell completion of ``agentvisor`` and ``agentvisorctl`` for bash, zsh and fish.

argcomplete does it from the argparse parsers themselves, so completion
always knows every command and option there is: the shell calls the
program with ``_ARGCOMPLETE`` set, :func:`autocomplete` answers from the
parser before anything else runs, and exits. ``completion SHELL`` prints the
script a shell sources once (``eval "$(agentvisorctl completion bash)"``).

``NAME`` arguments of agentvisorctl complete to the services of the running
agentvisor, asked through the same address as any command (``-c``, ``-s``,
``AGENTVISOR_URL``) within :data:`NAMES_TIMEOUT`; when it cannot be reached
there is nothing to offer and the shell offers nothing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

SHELLS = ("bash", "zsh", "fish")
#: Seconds a Tab may wait for the service names.
NAMES_TIMEOUT = 2.0
NameSource = Callable[[argparse.Namespace], list[str]]


def add_completion_command(commands: argparse._SubParsersAction[Any], prog: str) -> None:
    text = f"print the {'/'.join(SHELLS)} completion script of {prog}"
    sub = commands.add_parser("completion", help=text, description=text, epilog=_usage(prog))
    sub.add_argument("shell", choices=SHELLS, metavar="SHELL", help=" | ".join(SHELLS))
    sub.set_defaults(completion_of=prog)


def _usage(prog: str) -> str:
    return (
        f'bash: eval "$({prog} completion bash)" in ~/.bashrc; '
        f'zsh: eval "$({prog} completion zsh)" in ~/.zshrc (after compinit); '
        f"fish: {prog} completion fish > ~/.config/fish/completions/{prog}.fish"
    )


def script(prog: str, shell: str) -> str:
    """What ``shell`` sources to complete ``prog``."""
    from argcomplete.shell_integration import shellcode

    code: str = shellcode([prog], shell=shell)
    return code


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _everywhere(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for sub in dict.fromkeys(_commands(parser).values()):
        yield sub
        yield from _everywhere(sub)


def complete_service_names(
    parser: argparse.ArgumentParser, names: NameSource, commands: Collection[str]
) -> None:
    """Let ``NAME`` of each of ``commands``, and every ``--option NAME``, complete to
    service names (``register NAME`` and ``route create NAME`` name something new)."""

    def completer(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        return [name for name in names(parsed_args) if name.startswith(prefix)]

    top = _commands(parser)
    unknown = set(commands) - set(top)
    assert not unknown, f"no such commands: {sorted(unknown)}"
    for sub in _everywhere(parser):
        positional = any(sub is top[command] for command in commands)
        for action in sub._actions:
            if action.metavar == "NAME" and (positional or action.option_strings):
                action.completer = completer  # type: ignore[attr-defined]


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell and exit when it asks for completions; otherwise return at once.

    argcomplete (~60 ms to import) is loaded only when a shell asks: ``agentvisor run``
    starts its first worker without it."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser, always_complete_options=False)  # options after a "-"


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str
) -> argparse.Namespace | None:
    """The parsed command line; None when it was ``PROG completion SHELL`` (script printed)."""
    autocomplete(parser)  # a shell asking for completions is answered here, and we exit
    args = parser.parse_args(argv)
    if getattr(args, "completion_of", None):
        print(script(prog, args.shell), end="")
        return None
    return args
