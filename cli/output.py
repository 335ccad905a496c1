"""``-o table|yaml|json``: how every command that prints results prints them.

``table`` is for a person (aligned columns, or the prose of ``meshfit
explain``); ``json`` and ``yaml`` carry the same data for a script, with the
same keys in both. ``meshfit inject`` prints manifests, so its default is
``yaml``, and its ``table`` is a summary of what it did.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import yaml

OUTPUTS = ("table", "yaml", "json")


def add_output_option(parser: argparse.ArgumentParser, *, default: str = "table", table: str = "") -> None:
    """``-o/--output``; ``table`` says what the table form is, when it is not a table of the results."""
    what = f" ({table})" if table else ""
    parser.add_argument("-o", "--output", choices=OUTPUTS, default=default,
                        help=f"table{what}, yaml or json (default: {default})")


def structured(data: Any, output: str) -> str:
    """``data`` (plain dicts, lists, strings, numbers) as ``-o json`` or ``-o yaml`` prints it."""
    if output == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
