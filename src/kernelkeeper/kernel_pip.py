"""``%pip`` and ``!pip`` in a kernel whose environment has no pip of its own.

Copied into every ipykernel overlay as ``_kernelkeeper_pip.py`` with a ``.pth`` line that imports
it, so it runs in the kernel's process only (``site.addsitedir(overlay)`` reads the ``.pth``),
before ipykernel starts, and in no other process. IPython's ``%pip`` runs ``sys.executable -m pip``,
which fails in an environment built without pip (``uv venv``, a notebook's declared
environment). When pip is found only in the overlay:

- ``%pip ...`` runs ``<the environment's Python> <overlay>/pip/__pip-runner__.py ...``: pip's own
  runner imports pip, and nothing else, from the overlay, and installs into the environment;
- ``!pip ...``: the overlay's ``bin`` (holding only ``pip`` and ``pip3``, which do the same) goes on
  ``PATH`` after the environment's own ``bin``, and ``PIP_PYTHON`` names the environment's Python.

The environment itself stays exactly what it was until ``pip install`` is run.
Standard library and IPython only; nothing lands in the user's namespace.
"""

from __future__ import annotations

import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "pip", "__pip-runner__.py")


def _pip(self: object, line: str) -> None:
    """Run pip (the ipykernel overlay's) for this kernel's environment, which has no pip of its own.

    Usage:
      %pip install [pkgs]
    """
    self.shell.system(" ".join([shlex.quote(sys.executable), shlex.quote(RUNNER), line]))  # type: ignore[attr-defined]
    print("Note: you may need to restart the kernel to use updated packages.")


def _pip_only_here() -> bool:
    """True when the first pip on ``sys.path`` is the overlay's: the environment has none."""
    for entry in sys.path:
        if os.path.isdir(os.path.join(entry, "pip")):
            return os.path.abspath(entry) == HERE
    return False


def install() -> None:
    if not os.path.isfile(RUNNER) or not _pip_only_here():
        return
    try:
        from IPython.core.magics.packaging import PackagingMagics
    except ImportError:
        return
    # Magics are looked up by name when the shell registers the class: the kernel's shell gets this one.
    PackagingMagics.pip = _pip  # type: ignore[method-assign]
    bin_dir = os.path.join(os.path.dirname(HERE), "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if os.path.isdir(bin_dir) and bin_dir not in path:
        own = os.path.dirname(sys.executable)
        at = path.index(own) + 1 if own in path else 0
        os.environ["PATH"] = os.pathsep.join([*path[:at], bin_dir, *path[at:]])
    os.environ["PIP_PYTHON"] = sys.executable


install()
