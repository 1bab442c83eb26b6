#!/usr/bin/env bash
# Installs what the tests need that pip cannot:
#   * Debian's chromium, driven by Playwright (Playwright never downloads a browser here),
#     for the JupyterHub and JupyterLab suites (tests/hub, tests/lab);
#   * Debian's strace, which kills a real `sync` at a chosen rename (tests/test_writes.py);
#   * configurable-http-proxy from npm, into .ci/node (repo-local, ignored by git).
# Idempotent: a second run checks and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
command -v strace >/dev/null || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .ci/node/node_modules/.bin/configurable-http-proxy ]; then
    command -v npm >/dev/null || { echo "setup.sh: npm is missing (apt-get install -y npm)" >&2; exit 1; }
    npm install --prefix .ci/node --no-audit --no-fund --loglevel=error configurable-http-proxy
fi

/usr/bin/chromium --version 2>/dev/null  # (its wrapper script warns on stderr)
strace -V | head -n 1
echo "configurable-http-proxy $(.ci/node/node_modules/.bin/configurable-http-proxy --version)"
