#!/usr/bin/env bash
# The README's run command: install what is needed, build, start libvirt,
# and mount the tree in standalone mode (local libvirt, local state).
# Extra arguments go to hypersdk-mountd (see `hypersdk-mountd --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh run
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null
scripts/libvirt-up.sh

MOUNT=/run/hypersdk
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --mount) MOUNT=${args[i + 1]:-$MOUNT} ;;
    --mount=*) MOUNT=${args[i]#--mount=} ;;
  esac
done

if [ -e "$MOUNT/vms/ctl" ]; then
  echo "hypersdk-mountd already serves $MOUNT"
  exit 0
fi
mkdir -p /var/log/hypersdk
./build/mountd/hypersdk-mountd --log-file /var/log/hypersdk/mountd.log "$@"
echo "hypersdk: $MOUNT is mounted (log: /var/log/hypersdk/mountd.log)"
echo "try:  echo 'create web memory=64Mi' > $MOUNT/vms/ctl; echo start > $MOUNT/vms/web/ctl; cat $MOUNT/vms/web/status"
