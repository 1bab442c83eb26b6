"""kernelkeeper: every Python environment on the machine as a Jupyter kernel."""

from __future__ import annotations

__version__ = "0.1.0"
