"""What discovery is given: the environment variables, HOME, the roots to scan.

Nothing below this module reads ``os.environ``: locators take a `Context`,
so a test points every tool at a fake HOME by building one.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The folders under HOME where people keep their projects; scanned when they exist.
CODE_FOLDERS: tuple[str, ...] = (
    "projects",
    "code",
    "src",
    "dev",
    "work",
    "repos",
    "git",
    "workspace",
)
DEFAULT_DEPTH = 3
DEFAULT_MAX_DIRS = 20_000
_VAR_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Context:
    """Everything discovery may look at, passed in rather than read from globals."""

    env: Mapping[str, str]
    home: Path
    cwd: Path
    roots: tuple[Path, ...] = ()
    default_roots: bool = True
    depth: int = DEFAULT_DEPTH
    max_dirs: int = DEFAULT_MAX_DIRS
    extra_paths: tuple[Path, ...] = field(default=())
    # The platform whose folders the tools use ("linux", "darwin", "win32"): a test runs
    # discovery as macOS would by setting it, instead of patching a global.
    platform: str = field(default_factory=lambda: sys.platform)
    # Where absolute system folders (/opt/homebrew, /opt/conda, /etc/conda) are looked up:
    # "/" on a real machine, a folder under tmp in a test that builds those layouts.
    system_root: Path = Path("/")

    @classmethod
    def from_environ(
        cls,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        roots: tuple[Path, ...] = (),
        **kwargs: object,
    ) -> Context:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        return cls(
            env=env,
            home=home,
            cwd=(cwd or Path.cwd()).absolute(),
            roots=tuple(Path(r).expanduser().absolute() for r in roots),
            **kwargs,  # type: ignore[arg-type]
        )

    # --- the few XDG/platform folders the tools use ---------------------------

    def system_path(self, path: str) -> Path:
        """An absolute system folder (``/opt/homebrew``) under this context's system root."""
        return self.system_root / path.lstrip("/")

    def expand(self, value: str) -> Path:
        """``$VAR``, ``${VAR}`` and a leading ``~`` expanded from this context, as the tools do.

        conda, hatch and pipenv call ``expanduser(expandvars(value))`` on the paths in
        their config files; this does the same with the context's env and HOME (an
        unknown variable is left as written, like ``os.path.expandvars``).
        """
        return self.expanduser(_VAR_RE.sub(lambda m: self.env.get(m.group(1) or m.group(2), m.group(0)), value))

    def expanduser(self, value: str) -> Path:
        """A leading ``~`` as this context's HOME (``Path.expanduser`` would read the process's)."""
        if value == "~" or value.startswith("~/"):
            value = str(self.home) + value[1:]
        return Path(value)

    def path_var(self, name: str) -> Path | None:
        """An environment variable holding a path, ``~`` expanded; None when unset."""
        value = self.env.get(name)
        if not value:
            return None
        if value.startswith("~"):
            value = str(self.home) + value[1:]
        return Path(value)

    def data_home(self) -> Path:
        return self.path_var("XDG_DATA_HOME") or self.home / ".local" / "share"

    def cache_home(self) -> Path:
        return self.path_var("XDG_CACHE_HOME") or self.home / ".cache"

    def config_home(self) -> Path:
        return self.path_var("XDG_CONFIG_HOME") or self.home / ".config"

    def user_data_dir(self, app: str) -> Path:
        """Where platformdirs puts an app's data, computed from this context's env."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support" / app
        if self.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_data_dir(app, appauthor=False))
        return self.data_home() / app

    def user_cache_dir(self, app: str) -> Path:
        if self.platform == "darwin":
            return self.home / "Library" / "Caches" / app
        if self.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_cache_dir(app, appauthor=False))
        return self.cache_home() / app

    def user_config_dir(self, app: str) -> Path:
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support" / app
        if self.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_config_dir(app, appauthor=False))
        return self.config_home() / app
