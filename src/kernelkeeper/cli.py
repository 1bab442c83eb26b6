"""The command line. Commands build values; this module alone prints them.

Exit codes: 0 done, 1 a problem the message explains, 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .context import CODE_FOLDERS, DEFAULT_DEPTH, DEFAULT_MAX_DIRS, Context
from .environments import KINDS
from .errors import UserError


def config_path(env: dict[str, str]) -> Path:
    explicit = env.get("KERNELKEEPER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    probe = Context.from_environ(env=env, cwd=Path("/"))
    return probe.user_config_dir("kernelkeeper") / "config.toml"


def build_context(args: argparse.Namespace, env: dict[str, str]) -> Context:
    from .config import load_config

    config = load_config(config_path(env))
    roots = [*config.roots, *(Path(r) for r in args.root)]
    for root in args.root:
        if not Path(root).expanduser().is_dir():
            raise UserError(f"--root {root}: no such folder", hint="pass a folder that exists")
    depth = args.depth if args.depth is not None else config.depth
    return Context.from_environ(
        env=env,
        roots=tuple(roots),
        depth=DEFAULT_DEPTH if depth is None else depth,
        max_dirs=config.max_dirs if config.max_dirs is not None else DEFAULT_MAX_DIRS,
        default_roots=config.default_roots and not args.no_default_roots,
        extra_paths=config.paths,
    )


# --- envs ----------------------------------------------------------------------


def cmd_envs(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .discovery import discover

    ctx = build_context(args, env)
    found = discover(ctx)
    environments = found.environments
    if args.kind:
        environments = tuple(e for e in environments if args.kind in e.kinds)
    for skipped in found.skipped:
        print(f"kernelkeeper: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.json:
        _print_json([e.to_json() for e in environments])
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "kind", "python", "ipykernel", "project", "path"):
        table.add_column(column, overflow="fold")
    for e in environments:
        kind = e.kind if len(e.kinds) == 1 else f"{e.kind} ({', '.join(e.kinds[1:])})"
        python = e.version or "?"
        if not e.healthy:
            python += " [red]broken[/red]"
        table.add_row(
            e.name,
            kind,
            python,
            "yes" if e.has_ipykernel else "no",
            _home_short(e.project, ctx.home) if e.project else "",
            _home_short(e.prefix, ctx.home),
        )
    console = _console()
    if environments:
        console.print(table)
    broken = [e for e in environments if not e.healthy]
    for e in broken:
        console.print(f"[yellow]{e.name}[/yellow] ({e.prefix}): {'; '.join(e.problems)}", highlight=False)
    console.print(
        f"{len(environments)} environment{'s' if len(environments) != 1 else ''}"
        + (f", {len(broken)} broken" if broken else ""),
        style="dim",
        highlight=False,
    )
    return 0


def _home_short(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def _console() -> Any:
    from rich.console import Console

    # Piped output is for grep and awk: one row a line, never folded at 80 columns.
    width = None if sys.stdout.isatty() else 10_000
    return Console(highlight=False, soft_wrap=False, width=width)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# --- parser and entry point -------------------------------------------------------


def _add_discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for projects below DIR (repeatable)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        metavar="N",
        help=f"how many folder levels below each root to look for projects (default {DEFAULT_DEPTH})",
    )
    p.add_argument(
        "--no-default-roots",
        action="store_true",
        help=f"don't scan HOME and ~/{{{','.join(CODE_FOLDERS)}}}",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelkeeper",
        description="Every Python environment on this machine as a Jupyter kernel.",
    )
    parser.add_argument("--version", action="version", version=f"kernelkeeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    envs = sub.add_parser(
        "envs",
        help="list the Python environments on this machine",
        description="List every Python environment found by reading files (no interpreter is run).",
    )
    envs.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    envs.add_argument("--kind", choices=KINDS, help="only environments of this kind")
    _add_discovery_options(envs)
    envs.set_defaults(func=cmd_envs)
    return parser


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the command line; return the exit code. ``env`` replaces os.environ (tests)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, dict(os.environ if env is None else env)))
    except UserError as e:
        print(f"kernelkeeper: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"kernelkeeper: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("kernelkeeper: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `kernelkeeper envs | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def run() -> None:
    sys.exit(main())
