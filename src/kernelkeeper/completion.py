"""Shell completion (bash, zsh, fish) through argcomplete, the completion library made for argparse.

Completion runs ``kernelkeeper`` itself with ``_ARGCOMPLETE`` set; ``cli.main``
hands that to argcomplete before anything else, so a normal run never imports
it. Commands, options and choices come from the parser; these completers add
what only this machine knows: kernel names, environment names, overlay keys.
A completer never raises and never prints: a broken kernel folder must not
break the shell.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def kernel_names(**_: Any) -> list[str]:
    try:
        from .kernelspecs import list_kernelspecs

        return sorted({k.name for k in list_kernelspecs(native=False).kernels})
    except Exception:  # completion must never break the shell
        return []


def environment_names(prefix: str = "", **_: Any) -> list[str]:
    """Environment names from discovery, and folders (a TARGET may be a path)."""
    names: list[str] = []
    try:
        from .context import Context
        from .state import discover_cached

        found = discover_cached(Context.from_environ())
        names = sorted({e.name for e in found.environments})
    except Exception:  # completion must never break the shell
        names = []
    if prefix.startswith((".", "/", "~")) or os.sep in prefix:
        from argcomplete.completers import DirectoriesCompleter

        return list(DirectoriesCompleter()(prefix))
    return names


def overlay_keys(**_: Any) -> list[str]:
    try:
        from .context import Context
        from .overlay import list_overlays

        return [o.key for o in list_overlays(Context.from_environ())]
    except Exception:  # completion must never break the shell
        return []


# (command, sub-command or None, argument dest) -> completer
COMPLETERS = {
    ("remove", None, "names"): kernel_names,
    ("adopt", None, "names"): kernel_names,
    ("add", None, "target"): environment_names,
    ("overlay", "build", "target"): environment_names,
    ("overlay", "remove", "keys"): overlay_keys,
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def attach(parser: argparse.ArgumentParser) -> None:
    """Give the arguments in ``COMPLETERS`` their completer (argcomplete reads ``action.completer``)."""
    for (command, sub, dest), completer in COMPLETERS.items():
        target = _subparsers(parser).get(command)
        if target is not None and sub is not None:
            target = _subparsers(target).get(sub)
        if target is None:
            continue
        for action in target._actions:
            if action.dest == dest:
                action.completer = completer  # type: ignore[attr-defined]


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit (argcomplete does both)."""
    import argcomplete

    attach(parser)
    argcomplete.autocomplete(parser)
