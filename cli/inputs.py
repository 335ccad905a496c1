"""``-f FILE|DIR|-``, the one way every command is given what it reads, and the old spellings kept for scripts.

kubectl's habit: a file, a directory (its ``*.yaml``, ``*.yml`` and ``*.json``,
sorted) or ``-`` for standard input, repeatable where several inputs make
sense. A spelling an earlier release used keeps working as a deprecated alias:
it does what it did and says once, on stderr, what to write instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cli.errors import CommandError

SUFFIXES = (".yaml", ".yml", ".json")


def add_filename_option(parser: argparse.ArgumentParser, *, what: str, repeatable: bool = False,
                        required: bool = True, flags: Sequence[str] = ("-f", "--filename"),
                        dest: str | None = None) -> None:
    """``-f/--filename FILE|DIR|-``; ``what`` says what the files hold."""
    extra = {"dest": dest} if dest else {}
    parser.add_argument(*flags, action="append" if repeatable else "store", required=required,
                        metavar="FILE|DIR|-", **extra,
                        help=f"{what}: a file, a directory (its *.yaml, *.yml, *.json) or - for stdin"
                             + ("; repeatable" if repeatable else ""))


def deprecation(parser_prog: str, old: str, new: str) -> None:
    print(f"{parser_prog}: {old} is deprecated, use {new} (it still works for now)", file=sys.stderr)


class DeprecatedAlias(argparse.Action):
    """An old option spelling: stores into the new option's ``dest`` and prints a one-line note."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, replacement: str, **kwargs: Any) -> None:
        self.replacement = replacement
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        deprecation(parser.prog, str(option_string), self.replacement)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: Any, old: str, *, dest: str, replacement: str, metavar: str | None = None) -> None:
    """``old`` as a hidden, deprecated spelling of the option ``replacement`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, replacement=replacement, metavar=metavar,
                        default=argparse.SUPPRESS)


def deprecated_positional(values: Sequence[str] | str | None, old: str, new: str, *, prog: str = "") -> list[str]:
    """Positional arguments an older grammar took, with the note; an empty list when none were given."""
    given = [values] if isinstance(values, str) else list(values or ())
    if given:
        deprecation(prog or "meshfit", f"the positional {old}", new)
    return given


def files_of(source: str) -> list[Path]:
    """The files one ``-f`` names; a missing one is a :class:`CommandError` that names it."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not path.exists():
        raise CommandError(f"{source}: no such file or directory (-f takes a file, a directory or - for stdin)")
    return [path]


def read_texts(sources: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of every file the ``-f`` options name, in order; ``-`` is standard input, once."""
    used_stdin = False
    for source in sources:
        if source == "-":
            if used_stdin:
                raise CommandError("-f - given twice: standard input can be read once")
            used_stdin = True
            yield "<stdin>", sys.stdin.read()
            continue
        for path in files_of(source):
            try:
                yield str(path), path.read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None
