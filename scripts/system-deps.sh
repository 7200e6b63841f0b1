#!/usr/bin/env bash
# Installs the Debian packages the tests need, if missing: chromium (browser tests), postgresql, and
# nodejs + npm (the JavaScript SDK tests) where there is no `node` yet. A machine image's own Node
# (e.g. NodeSource's, which bundles npm) is kept: Debian's npm package conflicts with it.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
[ -x /usr/lib/postgresql/*/bin/initdb ] 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v node >/dev/null || need+=(nodejs npm)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Please install: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo ">> Installing Debian packages: ${need[*]} (a minute or two)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
