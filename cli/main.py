"""The one console command, ``meshfit``, that fronts every offline and serving entry point.

Each sub-command lives in its own module ``cli/<name>_cmd.py`` exposing
``register(subparsers)``. Every module listed in :data:`COMMANDS` is imported,
and one that fails to import fails the command line with its own traceback:
a command must never vanish from ``meshfit --help`` because of a typo in it.
The modules keep their heavy imports (aiohttp, kubernetes) inside the
functions that run a command, so those are paid only by the commands that
need them and ``meshfit inject`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cli.errors import CommandError

#: Sub-command modules, in the order ``meshfit --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "inject",
    "explain",
    "degrade",
    "policy",
    "certs",
    "webhook",
    "extender",
    "controller",
    "targets",
    "rollout",
    "leak",
    "fleet",
    "check",
    "reaccount",
    "demo",
)


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it imports the policy package)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from cli.version import text

        print(text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``meshfit`` parser with every command of :data:`COMMANDS`; an import error in one propagates."""
    parser = argparse.ArgumentParser(
        prog="meshfit",
        description="Mesh sidecars overcommitted from the pod's own budget.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version, the policy schema and the accounting-record version, then exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"cli.{name}_cmd").register(subparsers)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``meshfit extender simulate``: the command and its action, as a usage error names them."""
    action = getattr(args, f"{args.command}_command", None)
    return " ".join(["meshfit", args.command, *([action] if action else [])])


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn a user's mistake into one line on stderr and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"{command_name(args)}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
