"""The `zoomguard` command: parse arguments, load settings, dispatch to a subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zoomguard.commands.registry import COMMANDS
from zoomguard.errors import ConfigError, ZoomguardError


def build_parser() -> argparse.ArgumentParser:
    """One subparser per entry of `COMMANDS`; each remembers its command's `run` as `args.handler`."""
    parser = argparse.ArgumentParser(prog="zoomguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 2 for bad settings, 1 for any other zoomguard error (each with one line on stderr)."""
    args = build_parser().parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # what `eval` writes into its table
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"zoomguard: configuration error: {exc}", file=sys.stderr)
        return 2
    except ZoomguardError as exc:
        print(f"zoomguard: {exc.kind}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
