#!/usr/bin/env bash
# Installs what the JupyterHub suite (tests/hub, `pytest -m hub`) needs that pip cannot:
#   * Debian's chromium, driven by Playwright (Playwright never downloads a browser here);
#   * configurable-http-proxy from npm, into .ci/node (repo-local, ignored by git).
# Idempotent: a second run checks and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if [ ! -x .ci/node/node_modules/.bin/configurable-http-proxy ]; then
    command -v npm >/dev/null || { echo "setup.sh: npm is missing (apt-get install -y npm)" >&2; exit 1; }
    npm install --prefix .ci/node --no-audit --no-fund --loglevel=error configurable-http-proxy
fi

/usr/bin/chromium --version 2>/dev/null  # (its wrapper script warns on stderr)
echo "configurable-http-proxy $(.ci/node/node_modules/.bin/configurable-http-proxy --version)"
