"""which: the kernel a notebook asks for, the kernelspec Jupyter picks, and what that runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import safeio
from .discovery import Discovery
from .errors import UserError
from .kernelspecs import KernelList, _interpreter, check_name
from .plan import env_of_kernel


@dataclass(frozen=True)
class Which:
    notebook: Path
    asks_for: str | None
    asks_display_name: str | None
    kernelspec: str | None = None
    interpreter: str | None = None
    env: str | None = None
    env_kind: str | None = None
    starts: bool = False
    reason: str | None = None
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notebook"] = str(self.notebook)
        return data


def read_notebook_kernel(path: Path) -> tuple[str | None, str | None]:
    try:
        # Notebooks run to megabytes of outputs: a larger limit than for config files.
        data = safeio.loads_json(safeio.read_bytes(path, 256 * safeio.LIMIT), str(path))
    except FileNotFoundError as e:
        raise UserError(f"{path}: no such notebook") from e
    except OSError as e:
        raise UserError(f"{path} is not a readable notebook: {safeio.why(e)}", hint="is it an .ipynb file?") from e
    except ValueError as e:
        raise UserError(f"{path} is not a readable notebook: {e}", hint="is it an .ipynb file?") from e
    metadata = data.get("metadata") if isinstance(data, dict) else None
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    if not isinstance(spec, dict):
        return None, None
    name = spec.get("name")
    display = spec.get("display_name")
    return (str(name) if name else None), (str(display) if display else None)


def which(path: Path, kernels: KernelList, found: Discovery, dynamic: dict[str, Any] | None = None) -> Which:
    """``dynamic``: the kernelkeeper provider's spec for the name, when the provider is enabled."""
    name, display = read_notebook_kernel(path)
    base: dict[str, Any] = {"notebook": path, "asks_for": name, "asks_display_name": display}
    if name is None:
        return Which(**base, starts=False, reason="the notebook names no kernel: Jupyter will ask which one to use")
    visible = kernels.visible()
    spec = visible.get(name.lower())
    if spec is None and dynamic is not None:
        argv = tuple(str(a) for a in dynamic["argv"])
        exe = _interpreter(argv, None, {str(k): str(v) for k, v in (dynamic.get("env") or {}).items()})
        runs = str(exe) if exe is not None else argv[0]
        env = next((e for e in found.environments if e.python is not None and str(e.python) == runs), None)
        return Which(
            **base,
            kernelspec=f"{name} (kernelkeeper provider)",
            interpreter=runs,
            env=str(env.prefix) if env else None,
            env_kind=env.kind if env else None,
            starts=True,
        )
    if spec is None:
        try:
            check_name(name)
            fix = f"kernelkeeper add ENV --name {name}   # ENV: the environment this notebook belongs to"
        except UserError:
            fix = None
        return Which(
            **base, starts=False, reason=f"no kernelspec named {name!r}: Jupyter will ask which kernel to use", fix=fix
        )
    env = env_of_kernel(spec, found.environments)
    starts = spec.status in ("ok", "shadowed")
    fixes = {
        "stale": f"kernelkeeper remove {spec.name}   # then: kernelkeeper add ENV --name {spec.name}",
        "no-ipykernel": f"{spec.interpreter} -m pip install ipykernel",
        "invalid": f"kernelkeeper remove {spec.name}   # then: kernelkeeper add ENV --name {spec.name}",
    }
    return Which(
        **base,
        kernelspec=str(spec.resource_dir),
        interpreter=str(spec.interpreter) if spec.interpreter else None,
        env=str(env.prefix) if env else (str(spec.env_prefix) if spec.env_prefix else None),
        env_kind=env.kind if env else None,
        starts=starts,
        reason=None if starts else f"it would fail to start: {spec.reason}",
        fix=fixes.get(spec.status),
    )
