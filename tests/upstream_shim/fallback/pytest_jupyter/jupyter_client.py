"""The client plugin includes the core fixtures, as pytest-jupyter's does."""

from .jupyter_core import *  # noqa: F403
