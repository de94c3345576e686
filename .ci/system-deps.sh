#!/usr/bin/env bash
# Install the Debian packages the test suite needs, if they are missing.
# Works as root on a fresh Debian 12 machine; as another user it only reports.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in postgresql postgis postgresql-15-postgis-3 mosquitto chromium nodejs npm; do
  have "$p" || need+=("$p")
done
# nodejs/npm may come from elsewhere (e.g. a preinstalled node): accept those too
if command -v node >/dev/null && command -v npm >/dev/null; then
  need=("${need[@]/nodejs}"); need=("${need[@]/npm}")
fi
read -ra need <<< "${need[*]:-}"
if [ ${#need[@]} -eq 0 ]; then
  echo "system-deps: all present"; exit 0
fi
echo "system-deps: installing ${need[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; install these first: apt-get install -y ${need[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a cluster and a broker from its maintainer scripts on some images; the tests start their own.
echo "system-deps: done"
