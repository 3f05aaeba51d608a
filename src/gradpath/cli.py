"""The ``gradpath`` command line: parses arguments and calls the library. Each subcommand lives in
``gradpath.commands.<name>`` with ``add_parser(subparsers)``; its handler is stored as ``func``.

User mistakes (``GradpathError``) are printed as one line on stderr with exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

from gradpath.commands import COMMAND_MODULES
from gradpath.errors import GradpathError


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


def build_parser() -> ArgumentParser:
    from gradpath import __version__

    parser = ArgumentParser(
        prog="gradpath",
        description="Build, profile, analyse and train networks designed by gradient path analysis "
        "(PRN, CSP, ELAN; Wang, Liao & Yeh 2022).",
    )
    parser.add_argument("--version", action="version", version=f"gradpath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for mod_name in COMMAND_MODULES:
        importlib.import_module(f"gradpath.commands.{mod_name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
        return int(args.func(args) or 0)
    except GradpathError as e:
        print(f"gradpath {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
