#!/usr/bin/env bash
# Install the Debian packages the product (run) or the product and its
# tests (test) need.  Idempotent, and quick when everything is there.
# Usage: scripts/deps.sh [run|test]
set -euo pipefail
ME=deps
. "$(dirname "$0")/quietly.sh"

mode=${1:-run}
case $mode in run | test) ;; *) echo "usage: $0 [run|test]" >&2; exit 2 ;; esac

run_pkgs=(meson ninja-build pkg-config gcc libfuse3-dev fuse3
  libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils dnsmasq-base iptables
  libjson-c-dev libyaml-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
  xorriso)
# mmdebstrap makes the bare Debian 12 root of the fresh-machine check
# (tests/fresh) and the image's root (deploy/image/build.sh); git clones the
# checkout into it.  containerd, runc and socat make the test cluster's node
# (tests/k8s/node.sh); libc6-dev's static libc builds its pause program.
test_pkgs=(libcmocka-dev clang-14 libclang-rt-14-dev etcd-server openssl cpio python3
  chromium nodejs jq curl mmdebstrap git containerd runc socat libc6-dev)
NPM_DIR=${HYPERSDK_NPM_CACHE:-/var/cache/hypersdk/npm}

want=("${run_pkgs[@]}")
if [ "$mode" = test ]; then
  want+=("${test_pkgs[@]}")
fi

# The dashboard's browser test drives Chromium with playwright-core from
# npm, kept outside the repository, once per machine.  Its version follows
# the Node.js installed (known only after apt): Debian 12's own Node 18
# gets the last playwright-core that supports it.
npm_deps() {
  local major version
  [ "$mode" = test ] || return 0
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -ge 20 ]; then version=1.65.1; else version=1.49.1; fi
  grep -qs "\"version\": \"$version\"" \
    "$NPM_DIR/node_modules/playwright-core/package.json" && return 0
  mkdir -p "$NPM_DIR"
  echo "deps: npm install playwright-core@$version into $NPM_DIR" >&2
  QUIET_HINT="the npm registry must be reachable" quietly "npm install" \
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
    "playwright-core@$version"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done
# Some nodejs builds carry npm; Debian's is a package of its own.
if [ "$mode" = test ] && ! command -v npm >/dev/null 2>&1 && ! installed npm; then
  missing+=(npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages (run as root to install): ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  QUIET_HINT="Debian's archive must be reachable (see /etc/apt/sources.list.d)" \
    quietly "apt-get update" apt-get update
  QUIET_HINT="packages: ${missing[*]}" \
    quietly "apt-get install" apt-get install -y "${missing[@]}"
fi
npm_deps
