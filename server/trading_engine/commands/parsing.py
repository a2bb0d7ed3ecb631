"""argparse, made to help: each command's own usage on a mistake, with a suggestion.

argparse reports a flag a subcommand does not know from the top-level parser,
with the top-level usage and no hint. Here every parser checks what is left of
its own arguments, so the usage shown is the subcommand's, and a near miss
(`--grpc-prot`, `sevre`) is answered with what was probably meant. Renamed
flags keep their old spelling as hidden, deprecated aliases.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeAlias

_COMMAND_HELP_FORMATTER = argparse.RawDescriptionHelpFormatter


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """'; did you mean X?' for the closest of `known`, or '' when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=2, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {' or '.join(close)}?"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors name the command's own usage and suggest a fix."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _COMMAND_HELP_FORMATTER)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]  # typeshed overloads the namespace type
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            # Said here, by the parser whose arguments these were, with its usage.
            self.error(self._unrecognized(extras))
        return parsed, extras

    def _unrecognized(self, extras: list[str]) -> str:
        first = extras[0]
        if first.startswith("-"):
            flag = first.split("=", 1)[0]
            return f"unknown flag {flag}{did_you_mean(flag, self._current_flags())}"
        return f"unexpected argument {first!r}"

    def _current_flags(self) -> list[str]:
        """Every flag but the deprecated spellings (settings left out of short help count)."""
        return [
            flag
            for action in self._actions
            if not isinstance(action, DeprecatedAlias)
            for flag in action.option_strings
        ]

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # A choice (a command name included) that is not one: say which was probably meant.
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            what = (
                f"unknown command {value!r}"
                if isinstance(action, argparse._SubParsersAction)
                else f"invalid choice: {value!r}"
            )
            raise argparse.ArgumentError(
                action,
                f"{what}{did_you_mean(str(value), choices)} (choose from {', '.join(choices)})",
            )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` explains more)\n")


# What a command adds its subcommands to (a type for mypy only: argparse's is not generic).
Commands: TypeAlias = "argparse._SubParsersAction[CommandParser]"


def show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command's action when run without a subcommand: its help, and success."""

    def run(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return run


class DeprecatedAlias(argparse.Action):
    """The old spelling of a renamed flag: still works, says the new name, hidden from help."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.replacement: str = kwargs.pop("replacement")
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: {option_string} is deprecated and will go: use {self.replacement}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str
) -> None:
    """Accept `old` for the flag now called `new` (same destination), with a warning."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, replacement=new)
