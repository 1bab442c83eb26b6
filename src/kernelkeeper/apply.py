"""Apply a plan: the only code that writes or removes kernelspecs."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .kernelspecs import locked, remove_kernelspec, write_kernelspec
from .plan import Action, Plan


@dataclass(frozen=True)
class Applied:
    action: Action
    error: str | None = None


def apply(plan: Plan, progress: Callable[[Action], None] | None = None, *, lock: bool = True) -> list[Applied]:
    """Run every action, each folder under its lock (``lock=False``: the caller holds it).

    One failed action doesn't stop the others; each result says what happened.
    """
    by_folder: dict[Path, list[Action]] = defaultdict(list)
    for action in plan.actions:
        by_folder[action.folder].append(action)
    done: list[Applied] = []
    for folder, actions in by_folder.items():
        with locked(folder) if lock else contextlib.nullcontext():
            for action in actions:
                if progress is not None:
                    progress(action)
                try:
                    _run(action)
                except PermissionError as e:
                    done.append(Applied(action, f"permission denied: {e.filename or action.path}"))
                except (OSError, UserError) as e:
                    done.append(Applied(action, str(e)))
                else:
                    done.append(Applied(action))
    return done


def _run(action: Action) -> None:
    if action.action in ("add", "update"):
        assert action.spec is not None
        if action.action == "add" and action.path.exists():
            raise UserError(f"{action.path} appeared meanwhile; left untouched")
        write_kernelspec(action.folder, action.kernel, action.spec, action.files)
    elif action.action == "remove":
        if action.path.exists() or action.path.is_symlink():
            remove_kernelspec(action.path)
    else:  # pragma: no cover - plans only hold the three
        raise ValueError(action.action)
