"""The ``gradpath`` command line: parses arguments and calls the library. Each subcommand lives in
``gradpath.commands.<module>`` with ``add_parser(subparsers)``; its handler is stored as ``func``.

Only the module of the command being run is imported; the others are listed from their summaries in
``gradpath.commands.COMMANDS`` (so ``gradpath --help`` and ``gradpath models`` do not pay for the trainer's
imports).

User mistakes (``GradpathError``) are printed as one line on stderr with exit code 2, never a traceback;
``GradpathWarning``s as one line each. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
import warnings
from typing import Callable, Iterable

from gradpath import __version__
from gradpath.commands import COMMANDS
from gradpath.errors import GradpathError, GradpathWarning


class ArgumentParser(argparse.ArgumentParser):
    """argparse with near-name suggestions for mistyped options and subcommands.

    Abbreviated options are refused (``--epoch 3`` must not silently mean ``--epochs``); the error suggests the
    full name instead.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        m = re.search(r"unrecognized arguments: (.+)", message)
        if m:
            opts = sorted(_all_options(self))
            hints = []
            for word in m.group(1).split():
                if word.startswith("-"):
                    close = difflib.get_close_matches(word.split("=")[0], opts, n=2, cutoff=0.6)
                    if close:
                        hints.append(f"{word} → {' or '.join(close)}")
            if hints:
                message += f" (did you mean: {'; '.join(hints)}?)"
        m = re.search(r"invalid choice: '([^']+)'", message)
        if m:
            choices = []
            for a in self._actions:
                if a.choices:
                    choices.extend(a.choices)
            close = difflib.get_close_matches(m.group(1), [str(c) for c in choices], n=3, cutoff=0.5)
            if close:
                message += f" (did you mean: {', '.join(close)}?)"
        self.exit(2, f"{self.prog}: error: {message}\n")


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings of a parser and all its subparsers (argparse reports unknown ones at the top)."""
    opts: set[str] = set()
    for a in parser._actions:
        opts.update(a.option_strings)
        if isinstance(a, argparse._SubParsersAction):
            for sp in a.choices.values():
                opts |= _all_options(sp)
    return opts


def build_parser(load: Iterable[str] | None = None) -> ArgumentParser:
    """The full parser (``load=None``: every command's module imported), or one whose commands outside ``load``
    are summary-only placeholders (enough to list them and to suggest a mistyped name)."""
    parser = ArgumentParser(
        prog="gradpath",
        description="Build, profile, analyse and train networks designed by gradient path analysis "
        "(PRN, CSP, ELAN; Wang, Liao & Yeh 2022).",
    )
    parser.add_argument("--version", action="version", version=f"gradpath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    wanted = set(COMMANDS if load is None else load)
    for name, (module, summary) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(f"gradpath.commands.{module}").add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def invoked_command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option (the top-level options, --help and
    --version, take no value), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = invoked_command(argv)
    parser = build_parser(load=[command] if command in COMMANDS else [])
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report unknown options from the subcommand's parser, so suggestions come from its own options.
        sub = next((a.choices.get(args.command) for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)), None) if args.command else None
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():  # restores the process's warning display on the way out
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except GradpathError as e:
        print(f"gradpath {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a training run says where its interrupt checkpoint is
        print(str(e) or "interrupted", file=sys.stderr)
        return int(getattr(e, "exit_code", 130))
    except BrokenPipeError:
        return 0


def _one_line(text: str) -> str:
    """A message on one line (the CLI's promise), whatever line breaks the message carries."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _one_line_warnings(command: str, show: Callable) -> Callable:
    """A ``warnings.showwarning`` that prints ``GradpathWarning``s as ``gradpath CMD: warning: ...`` and hands any
    other warning to ``show`` (they may come from bugs and keep their file and line)."""

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' API)
        if issubclass(category, GradpathWarning):
            print(f"gradpath {command}: warning: {_one_line(str(message))}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


if __name__ == "__main__":
    sys.exit(main())
