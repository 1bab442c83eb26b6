"""Loaded (through PYTHONPATH) by the Python subprocesses tests start: jupyter_core's
system-wide and environment-wide folders are redirected into the test's tmp folder,
as pytest-jupyter's ``jp_environ`` does in-process. Without it a subprocess would see
(and `--scope system` would write) /usr/local/share/jupyter and the test venv's own
share/jupyter (which holds ipykernel's python3 kernel when ipykernel is installed there).
"""

import os

_root = os.environ.get("KK_TEST_JUPYTER_ROOT")
if _root:
    try:
        import jupyter_core.paths as _paths
    except ImportError:  # a Python without Jupyter (a kernel's own env): nothing to redirect
        pass
    else:
        _paths.SYSTEM_JUPYTER_PATH = [os.path.join(_root, "system", "share", "jupyter")]
        _paths.ENV_JUPYTER_PATH = [os.path.join(_root, "env", "share", "jupyter")]
        _paths.SYSTEM_CONFIG_PATH = [os.path.join(_root, "system", "etc", "jupyter")]
        _paths.ENV_CONFIG_PATH = [os.path.join(_root, "env", "etc", "jupyter")]
