"""The JupyterHub suite (`pytest -m hub`); a package so that its conftest is not the top-level `conftest`."""
