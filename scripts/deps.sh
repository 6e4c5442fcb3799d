#!/usr/bin/env bash
# Install the Debian packages the product and its tests need (idempotent,
# fast when everything is there).  Usage: scripts/deps.sh [run|test]
set -euo pipefail

run_pkgs=(meson ninja-build pkg-config gcc libfuse3-dev fuse3
  libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils dnsmasq-base iptables
  libjson-c-dev libyaml-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
  xorriso)
test_pkgs=(libcmocka-dev clang-14 libclang-rt-14-dev etcd-server openssl cpio
  libfuse3-dev chromium nodejs jq curl)
# The dashboard's browser test drives Chromium with playwright-core from
# npm, kept outside the repository, once per machine (it needs Node >= 20,
# the nodejs this machine image ships; Debian 12's own is 18).
# Debian 12's Node 18 gets the last playwright-core that supports it.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -ge 20 ] 2>/dev/null; then
  PLAYWRIGHT_VERSION=1.65.1
else
  PLAYWRIGHT_VERSION=1.49.1
fi
NPM_DIR=${HYPERSDK_NPM_CACHE:-/var/cache/hypersdk/npm}

want=("${run_pkgs[@]}")
if [ "${1:-run}" = test ]; then
  want+=("${test_pkgs[@]}")
  # Some nodejs builds carry npm; Debian's is a package of its own.
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

npm_deps() {
  [ "${1:-run}" = test ] || return 0
  [ -f "$NPM_DIR/node_modules/playwright-core/package.json" ] &&
    grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" \
      "$NPM_DIR/node_modules/playwright-core/package.json" && return 0
  mkdir -p "$NPM_DIR"
  echo "deps: npm install playwright-core@$PLAYWRIGHT_VERSION into $NPM_DIR" >&2
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
}

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  npm_deps "${1:-run}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
npm_deps "${1:-run}"
