"""Tables that fit the terminal, and plain text when piped.

On a terminal a table fits its width: paths are shortened in the middle at a folder
boundary (``~/.cache/…/api-Hq3kx0Qb-py3.11``), other text is cut at the end with
``…``; nothing is folded onto a second line. Piped, every row is one line with every
value whole, columns aligned by spaces, an empty cell written ``-`` (so ``awk`` counts
fields right) and no trailing spaces; ``--json`` is the format for programs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError

ELLIPSIS = "…"
GAP = "  "


@dataclass(frozen=True)
class Column:
    name: str
    path: bool = False  # shortened in the middle at a "/" rather than cut at the end
    min_width: int = 4
    shrink: bool = True  # False: short values (a version, a status) are never cut


def pick_columns(columns: Sequence[Column], wanted: str | None) -> list[Column]:
    """The columns named in ``--columns a,b,c`` (in that order), or all of them."""
    if not wanted:
        return list(columns)
    by_name = {c.name.replace(" ", "-"): c for c in columns}
    out = []
    for raw in wanted.split(","):
        key = raw.strip().replace(" ", "-")
        if key not in by_name:
            raise UsageError(
                f"--columns: no column {raw.strip()!r}",
                hint="choose from " + ",".join(by_name),
            )
        out.append(by_name[key])
    return out


def shorten_middle(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters: the start and the end kept whole, folders dropped between."""
    if len(path) <= width:
        return path
    parts = path.split("/")
    if len(parts) > 2:
        head, tail = parts[:1], parts[1:]
        # Keep the last component, then add back folders from the end and the start while they fit.
        kept_tail = [tail.pop()]
        while True:
            candidate = "/".join([*head, ELLIPSIS, *kept_tail])
            grown = False
            if tail and len("/".join([*head, ELLIPSIS, tail[-1], *kept_tail])) <= width:
                kept_tail.insert(0, tail.pop())
                grown = True
            elif tail and len(tail) > 1 and len("/".join([*head, tail[0], ELLIPSIS, *kept_tail])) <= width:
                head.append(tail.pop(0))
                grown = True
            if not grown:
                break
        candidate = "/".join([*head, ELLIPSIS, *kept_tail])
        if len(candidate) <= width:
            return candidate
        candidate = ELLIPSIS + "/" + kept_tail[-1]
        if len(candidate) <= width:
            return candidate
    # Even the last name is too long: keep its start and its end, which tell environments apart.
    if width <= 2:
        return cut_end(path, width)
    keep_end = (width - 1) // 2
    return path[: width - 1 - keep_end] + ELLIPSIS + path[len(path) - keep_end :]


def cut_end(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    return text[: width - 1].rstrip() + ELLIPSIS


def terminal_width() -> int | None:
    """The terminal's width when stdout is one, else None (piped: nothing is shortened)."""
    if not sys.stdout.isatty():
        return None
    # COLUMNS first, as shutil and rich do; then the terminal's own size.
    return shutil.get_terminal_size((100, 24)).columns


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[list[str]]:
    """The rows' cells, shortened so the table fits ``width`` (None: as they are)."""
    cells = [[cell or "" for cell in row] for row in rows]
    if width is None:
        return cells
    natural = [max([len(c.name), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    widths = list(natural)
    budget = width - len(GAP) * (len(columns) - 1)
    # Shrink the widest shrinkable column one step at a time: the table keeps every column readable.
    while sum(widths) > budget:
        candidates = [i for i, c in enumerate(columns) if c.shrink and widths[i] > max(c.min_width, len(c.name))]
        if not candidates:
            break
        # The widest column gives first, a path a little before text (its middle says least).
        i = max(candidates, key=lambda j: widths[j] * (1.5 if columns[j].path else 1.0))
        widths[i] -= 1
    out = []
    for row in cells:
        out.append(
            [
                (shorten_middle(cell, widths[i]) if columns[i].path else cut_end(cell, widths[i]))
                for i, cell in enumerate(row)
            ]
        )
    return out


def lines(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> list[str]:
    """The table as lines of text: header first, aligned, no trailing spaces."""
    fitted = fit(columns, rows, width)
    if width is None:
        fitted = [[cell or "-" for cell in row] for row in fitted]
    table = [[c.name for c in columns], *fitted]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    return [GAP.join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]


def home_short(path: os.PathLike[str] | str, home: os.PathLike[str] | str) -> str:
    """``path`` with HOME written ``~``."""
    text, prefix = str(path), str(home).rstrip("/")
    if prefix and (text == prefix or text.startswith(prefix + "/")):
        return "~" + text[len(prefix) :]
    return text
