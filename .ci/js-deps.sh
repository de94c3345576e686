#!/usr/bin/env bash
# npm packages for the browser and glTF-validation tests (installed from the npm registry, no browser download).
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
[ -f package.json ] || { echo "js-deps: no tests/js/package.json yet"; exit 0; }
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package.json ]; then
  echo "js-deps: present"; exit 0
fi
export PUPPETEER_SKIP_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
