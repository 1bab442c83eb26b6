"""What discovery is given: the environment variables, HOME, the roots to scan.

Nothing below this module reads ``os.environ``: locators take a `Context`,
so a test points every tool at a fake HOME by building one.
"""

from __future__ import annotations

import os
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
        if sys.platform == "darwin":
            return self.home / "Library" / "Application Support" / app
        if sys.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_data_dir(app, appauthor=False))
        return self.data_home() / app

    def user_cache_dir(self, app: str) -> Path:
        if sys.platform == "darwin":
            return self.home / "Library" / "Caches" / app
        if sys.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_cache_dir(app, appauthor=False))
        return self.cache_home() / app

    def user_config_dir(self, app: str) -> Path:
        if sys.platform == "darwin":
            return self.home / "Library" / "Application Support" / app
        if sys.platform == "win32":  # pragma: no cover - not tested here
            import platformdirs

            return Path(platformdirs.user_config_dir(app, appauthor=False))
        return self.config_home() / app
