"""A badge per environment kind: the logos of kernelkeeper's kernels (issue 16).

Each kind has a folder here with ``logo-svg.svg``, ``logo-32x32.png`` and ``logo-64x64.png``
(the names Jupyter looks for), drawn by ``python -m kernelkeeper.logos.make``: a coloured rounded
square with a short label, so launcher tiles of different kinds are told apart at a glance.
Written kernels get copies; the provider points a kernel's resource_dir at the folder itself.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("logo-svg.svg", "logo-32x32.png", "logo-64x64.png")

#: kind -> (label, background colour). Every other kind gets GENERIC's badge.
BADGES: dict[str, tuple[str, str]] = {
    "venv": ("VE", "#2563eb"),
    "uv": ("UV", "#c026d3"),
    "poetry": ("PO", "#0284c7"),
    "pipenv": ("PE", "#c2410c"),
    "conda": ("CO", "#15803d"),
    "pyenv": ("PYE", "#dc2626"),
    "hatch": ("HA", "#92400e"),
    "pdm": ("PDM", "#7c3aed"),
    "pixi": ("PX", "#d97706"),
    "virtualenv": ("VI", "#475569"),
    "virtualenvwrapper": ("VW", "#0f766e"),
}
GENERIC = "generic"
GENERIC_BADGE = ("PY", "#6b7280")
# Kinds that are another kind's flavour: a pyenv-virtualenv env is pyenv's, a uv-managed Python uv's.
ALIASES = {"pyenv-virtualenv": "pyenv", "uv-python": "uv"}


def badge_kind(kind: str) -> str:
    """The folder name of a kind's badge: the kind, its alias, or ``generic``."""
    kind = ALIASES.get(kind, kind)
    return kind if kind in BADGES else GENERIC


def logo_dir(kind: str) -> Path:
    """The shipped folder holding the kind's logos."""
    return HERE / badge_kind(kind)


def logo_files(kind: str) -> dict[str, Path]:
    """The kind's logos by the name they get beside kernel.json."""
    folder = logo_dir(kind)
    return {name: folder / name for name in FILES if (folder / name).is_file()}
