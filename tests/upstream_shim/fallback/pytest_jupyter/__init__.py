"""Stand-in for pytest-jupyter, used only when the real one is not installed.

jupyter_client's tests/conftest.py loads ``pytest_jupyter`` and
``pytest_jupyter.jupyter_client`` and makes ``jp_environ`` autouse; the
kernelspec tests need nothing else from them. This re-creates what
``jp_environ`` sets up (pytest-jupyter's jupyter_core plugin): a temporary
HOME, Jupyter data/config/runtime dirs, jupyter_core's system and env paths
moved into tmp, PYTHONPATH = sys.path, and an ``echo`` kernelspec in the
data dir.
"""
