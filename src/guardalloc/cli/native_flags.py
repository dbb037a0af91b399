"""The native library's options as command-line flags, made from its table.

Every row of the C table of ``GUARDALLOC_OPTIONS`` (``_c/options.c``, read
through :func:`guardalloc.faults.option_table`) that is a flag becomes one:
``sample_rate`` is ``--sample-rate N``, a boolean that is off by default is
``--uaf``, one that is on by default is ``--no-native-stacks``. A value is
checked by the library's own parser, so a flag and ``GUARDALLOC_OPTIONS``
refuse a value with the same words. ``exec`` and ``run`` share them.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from guardalloc import faults

# Where the flags' values go in the argparse namespace: apart from the
# command's own arguments, whatever the table's names are.
_DEST_PREFIX = "native_option_"


def _rows(skip: Iterable[str] = ()) -> list[faults.Option]:
    return [row for row in faults.option_table() if row.flag and row.name not in skip]


def _negated(row: faults.Option) -> bool:
    """Whether the flag turns the option off (a boolean on by default)."""
    return row.type == "bool" and row.default == "1"


def flag_name(row: faults.Option) -> str:
    """The flag of a table row: ``--max-bytes``, ``--uaf``, ``--no-native-stacks``."""
    return ("--no-" if _negated(row) else "--") + row.name.replace("_", "-")


def flag_of(name: str) -> str:
    """The flag of the option called ``name`` in the table.

    Raises:
        KeyError: no such option.
    """
    for row in faults.option_table():
        if row.name == name:
            return flag_name(row)
    raise KeyError(name)


def _metavar(row: faults.Option) -> str | None:
    if row.type == "bool":
        return None
    if row.type == "choice":
        return "|".join(row.choices or ())
    if row.type == "size":
        return "SIZE"
    if row.type == "string":
        return row.name.rsplit("_", 1)[-1].upper()
    return "N"


def _value_parser(row: faults.Option):
    """An argparse ``type=``: the value as the library's parser reads it,
    refused with its message (less its ``GUARDALLOC_OPTIONS: name: `` prefix:
    argparse names the flag)."""
    prefix = f"{faults.OPTIONS_ENV}: {row.name}: "

    def parse(text: str) -> Any:
        try:
            return faults.parse_option(row.name, text)
        except ValueError as exc:
            message = str(exc)
            raise argparse.ArgumentTypeError(message[len(prefix):] if message.startswith(prefix)
                                             else message) from None
    parse.__name__ = row.name   # argparse's fallback message names the type
    return parse


def _help(row: faults.Option) -> str:
    if _negated(row):
        text = f"turn off: {row.help} (on by default)"
    elif row.type == "bool":
        text = row.help
    else:
        text = f"{row.help} (default {row.default or 'none'})"
    return text.replace("%", "%%")   # argparse formats help with %


def add_arguments(parser: argparse.ArgumentParser | Any, *, skip: Iterable[str] = ()) -> None:
    """One flag per option of the library's table (but those in ``skip``),
    on ``parser`` (or an argument group)."""
    for row in _rows(skip):
        dest = _DEST_PREFIX + row.name
        if row.type == "bool":
            parser.add_argument(flag_name(row), dest=dest, default=None, help=_help(row),
                                action="store_false" if _negated(row) else "store_true")
        else:
            parser.add_argument(flag_name(row), dest=dest, default=None, metavar=_metavar(row),
                                type=_value_parser(row), help=_help(row))


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The options given as flags, by table name (bool, int or str values,
    as :func:`guardalloc.native.options_string` takes them)."""
    found = {}
    for name, value in vars(args).items():
        if name.startswith(_DEST_PREFIX) and value is not None:
            found[name[len(_DEST_PREFIX):]] = value
    return found


def usage(skip: Iterable[str] = (), start: int = 0, indent: int = 4, width: int = 78) -> str:
    """The flags for a usage line, ``[--uaf] [--alignment N] ...``, wrapped
    to ``width`` columns: the first line starts at column ``start``, the
    others are indented by ``indent``."""
    lines = [""]
    column = start
    for row in _rows(skip):
        metavar = _metavar(row)
        word = f"[{flag_name(row)}{' ' + metavar if metavar else ''}]"   # never split
        if lines[-1] and column + 1 + len(word) > width:
            lines.append(" " * indent)
            column = indent
        if lines[-1].strip():
            lines[-1] += " "
            column += 1
        lines[-1] += word
        column += len(word)
    return "\n".join(lines)
