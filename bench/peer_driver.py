"""Run one peer discovery tool and print what it found as JSON.

Runs inside bench/.peers-venv (``python peer_driver.py PEER``), as a fresh
process with the farm as HOME; run.py times the whole process.  Prints
``{"pythons": [interpreter paths]}`` on stdout.

Configuration comes from the environment, as a user would set it:

* ``KK_BENCH_PATH_FILE``: a file holding a PATH value.  At N = 10,000 the PATH a
  user would need (one bin dir per environment) is longer than Linux lets one
  environment variable be across exec (128 KiB), so it is put into
  ``os.environ["PATH"]`` here, before the peer reads it, and the ordinary PATH
  is put back once the peer has taken its copy, so that the interpreters it
  runs still start.
* environment_kernels reads its traitlets config the way Jupyter does, from
  ``$JUPYTER_CONFIG_DIR/jupyter_server_config.json``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable


def _with_path(make: Callable[[], object]) -> object:
    """Build the peer's finder with the favourable PATH, then restore PATH."""
    path_file = os.environ.get("KK_BENCH_PATH_FILE")
    if not path_file:
        return make()
    saved = os.environ.get("PATH", "")
    with open(path_file) as f:
        os.environ["PATH"] = f.read().strip()
    try:
        return make()
    finally:
        os.environ["PATH"] = saved


def run_findpython() -> list[str]:
    from findpython import Finder

    finder = _with_path(Finder)
    assert isinstance(finder, Finder)
    return [str(p.executable) for p in finder.find_all()]


def run_pythonfinder() -> list[str]:
    if os.environ.get("KK_BENCH_PATH_FILE"):
        # pythonfinder reads PATH at import time (is pyenv installed?) and when
        # its Finder is made; give it the long PATH for both.
        def make() -> object:
            from pythonfinder import Finder

            return Finder()

        finder = _with_path(make)
    else:
        from pythonfinder import Finder

        finder = Finder()
    found = finder.find_all_python_versions()  # type: ignore[attr-defined]
    return [str(p.path) for p in found]


def run_environment_kernels() -> list[str]:
    from environment_kernels import EnvironmentKernelSpecManager
    from jupyter_core.paths import jupyter_config_dir
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader

    config = Config()
    path = os.path.join(jupyter_config_dir(), "jupyter_server_config.json")
    if os.path.exists(path):
        config = JSONFileConfigLoader("jupyter_server_config.json", jupyter_config_dir()).load_config()
    manager = EnvironmentKernelSpecManager(config=config)
    specs = manager.get_all_specs()
    return [spec["spec"]["argv"][0] for spec in specs.values() if spec["spec"].get("argv")]


PEERS: dict[str, Callable[[], list[str]]] = {
    "findpython": run_findpython,
    "pythonfinder": run_pythonfinder,
    "environment_kernels": run_environment_kernels,
}


def main() -> int:
    pythons = PEERS[sys.argv[1]]()
    json.dump({"pythons": pythons}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
