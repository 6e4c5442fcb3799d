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
  libfuse3-dev)

want=("${run_pkgs[@]}")
if [ "${1:-run}" = test ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
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
