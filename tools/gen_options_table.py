"""Write the table of GUARDALLOC_OPTIONS in docs/native.md from the library's
own table (``_c/options.c``, read through ``guardalloc.faults.option_table``).

    python tools/gen_options_table.py           # rewrite the table in place
    python tools/gen_options_table.py --check   # exit 1 (and show the diff) if it is stale

The table sits between the two marker lines below; the rest of the file is
left alone. Needs guardalloc built (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys

from guardalloc import faults

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "native.md")
BEGIN = "<!-- options table: made by tools/gen_options_table.py from _c/options.c; edit the C table -->"
END = "<!-- end of the options table -->"


def _number(n: int) -> str:
    """n, or 2^k-1 for the largest values of k bits (they read better)."""
    if n >= 1 << 20 and (n + 1) & n == 0:
        return f"2^{(n + 1).bit_length() - 1}-1"
    return str(n)


def _values(row: faults.Option) -> str:
    """What a row accepts, in words."""
    if row.type == "bool":
        return "bool"
    if row.type == "choice":
        return ", ".join(f"`{choice}`" for choice in row.choices or ())
    if row.type == "string":
        return f"text, up to {row.max} bytes"
    assert row.min is not None and row.max is not None   # numbers have bounds
    bounds = f"{_number(row.min)}..{_number(row.max)}"
    if row.type == "size":
        return f"size, `K`/`M`/`G`/`T` suffixes, {bounds}"
    if row.type == "pow2" and row.min == 0:   # the parser's rule: min 0 admits "auto" (0)
        return f"`auto` (0) or a power of two, 1..{_number(row.max)}"
    if row.type == "pow2":
        return f"a power of two, {bounds}"
    return bounds


def table() -> str:
    """The markdown table of every option: name, values, default, meaning."""
    lines = ["| option | values | default | meaning |", "| --- | --- | --- | --- |"]
    for row in faults.option_table():
        default = f"`{row.default}`" if row.default else "(none)"
        meaning = row.help.replace("|", "\\|")
        lines.append(f"| `{row.name}` | {_values(row)} | {default} | {meaning} |")
    return "\n".join(lines)


def updated(text: str) -> str:
    """text with the part between the markers replaced by the table.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} lacks the marker lines {BEGIN!r} ... {END!r}")
    return text[:start] + BEGIN + "\n\n" + table() + "\n\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the table is current")
    args = parser.parse_args(argv)
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    new = updated(text)
    if args.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       "docs/native.md", "generated"))
            print("docs/native.md: the options table is stale: run python tools/gen_options_table.py")
            return 1
        return 0
    if new != text:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
