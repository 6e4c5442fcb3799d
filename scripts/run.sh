#!/usr/bin/env bash
# The README's run command: install what the product needs (apt), build the
# daemon and hyperctl, start libvirt, and mount the tree in standalone mode
# (local libvirt, local state).  Extra arguments go to hypersdk-mountd (see
# `hypersdk-mountd --help`).  Every failing step says what failed and why.
set -euo pipefail
cd "$(dirname "$0")/.."
ME=run
. scripts/quietly.sh

scripts/deps.sh run
# The product alone: test programs need packages that only
# `scripts/deps.sh test` installs, and a build dir the test command
# configured already has them (its own targets are left alone here).
if [ ! -f build/build.ninja ]; then
  quietly "configure (meson setup build)" meson setup build
fi
quietly "build (ninja)" ninja -C build mountd/hypersdk-mountd cli/hyperctl
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
# Members of this group may make VMs of their own in the tree
# (docs/security.md); it starts empty: `usermod -aG hypersdk USER`.
getent group hypersdk >/dev/null || quietly "groupadd hypersdk" groupadd --system hypersdk
LOG=/var/log/hypersdk/mountd.log
mkdir -p /var/log/hypersdk
# The daemon prints its own start-up error; the log's tail says more.
if ! ./build/mountd/hypersdk-mountd --log-file "$LOG" "$@"; then
  show_tail "$LOG" "$LOG" 15 || true
  echo "run: hypersdk-mountd did not mount $MOUNT (see the error above)" >&2
  exit 1
fi
echo "hypersdk: $MOUNT is mounted (log: $LOG)"
echo "try:  echo 'create web memory=64Mi disk=64Mi' > $MOUNT/vms/ctl; echo start > $MOUNT/vms/web/ctl; cat $MOUNT/vms/web/status"
echo "stop: umount $MOUNT   (VMs keep running; hyperctl is build/cli/hyperctl)"
