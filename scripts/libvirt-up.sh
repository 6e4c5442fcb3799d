#!/bin/bash
# Bring up libvirt + QEMU on this machine: nothing starts them at boot here
# (no systemd), so the daemons are started by hand.  Idempotent; run as root.
set -euo pipefail

URI=qemu:///system
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/quietly.sh"
WAIT_S=${LIBVIRT_UP_WAIT:-20}

LOGDIR=/var/log/libvirt
# Without systemd the daemons' errors would go to a /dev/null stderr;
# warnings and errors go to these files, shown when a start fails.
LIBVIRTD_LOG=$LOGDIR/libvirtd.log
VIRTLOGD_LOG=$LOGDIR/virtlogd.log
VIRTLOCKD_LOG=$LOGDIR/virtlockd.log
TAIL_LOG=

die() {
	[ -z "$TAIL_LOG" ] || [ ! -s "$TAIL_LOG" ] || show_tail "$TAIL_LOG" "$TAIL_LOG" 15
	echo "libvirt-up: $*" >&2
	exit 1
}
say() { echo "libvirt-up: $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v libvirtd >/dev/null || die "libvirtd not installed (libvirt-daemon-system)"
command -v virtlogd >/dev/null || die "virtlogd not installed (libvirt-daemon-system)"
command -v virsh >/dev/null || die "virsh not installed (libvirt-clients)"
command -v virtlockd >/dev/null || die "virtlockd not installed (libvirt-daemon)"

answers() { virsh -c "$URI" version >/dev/null 2>&1; }

# libvirt runs QEMU as libvirt-qemu (group kvm); /dev/kvm often ships 0600
# root:root, which silently forces TCG.
if [ -e /dev/kvm ]; then
	if getent group kvm >/dev/null; then
		chgrp kvm /dev/kvm && chmod 660 /dev/kvm ||
			say "warning: cannot make /dev/kvm usable; guests will use tcg"
	else
		say "warning: no kvm group; guests will use tcg"
	fi
else
	say "no /dev/kvm: guests will use tcg"
fi

mkdir -p /run/libvirt "$LOGDIR"

# Live migration between two libvirtd on one machine (scripts/libvirt-node2.sh)
# needs distinct host UUIDs; without one libvirtd reads SMBIOS, which is the
# same for both nodes, and refuses with "Attempt to migrate guest to the same
# host".  Written once; a running libvirtd is restarted only when it changed.
NODE1_UUID=00000000-0000-4000-8000-000000000001
CONF=/etc/libvirt/libvirtd.conf
conf_changed=0
if ! grep -Eq '^[[:space:]]*host_uuid[[:space:]]*=' "$CONF"; then
	printf '\n# hypersdk: distinct from node 2 (scripts/libvirt-node2.sh)\nhost_uuid = "%s"\n' \
		"$NODE1_UUID" >>"$CONF"
	conf_changed=1
fi

# libvirt's lock manager (docs/ha.md): virtlockd holds a lock on each disk
# a guest has open, on the disk file itself.  On a folder that several
# nodes share (a :shared storage class) a second node's QEMU then cannot
# open a disk that a first one still runs, whatever the daemons believe.
# On local disks it costs nothing, so it is always on.  A lock manager the
# operator chose (sanlock) is left alone.
QEMU_CONF=/etc/libvirt/qemu.conf
if ! grep -Eq '^[[:space:]]*lock_manager[[:space:]]*=' "$QEMU_CONF"; then
	printf '\n# hypersdk: virtlockd guards disks on shared storage (docs/ha.md)\nlock_manager = "lockd"\n' >>"$QEMU_CONF"
	conf_changed=1
elif ! grep -Eq '^[[:space:]]*lock_manager[[:space:]]*=[[:space:]]*"lockd"' "$QEMU_CONF"; then
	say "warning: $QEMU_CONF names another lock_manager; left alone (shared storage classes rely on one)"
fi

# By pid file, not by process name: a second node's daemons (own mount
# namespace, scripts/libvirt-node2.sh) have the same names.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# Without virtlogd, domain start fails with "Failed to connect socket to
# .../virtlogd-sock".
if ! alive /run/virtlogd.pid; then
	say "starting virtlogd"
	TAIL_LOG=$VIRTLOGD_LOG
	LIBVIRT_LOG_OUTPUTS="3:file:$VIRTLOGD_LOG" "$HERE/detached" virtlogd -d ||
		die "virtlogd failed to start"
fi

# Before libvirtd: with lock_manager "lockd" a domain's start fails
# without it.
if ! alive /run/virtlockd.pid; then
	say "starting virtlockd"
	TAIL_LOG=$VIRTLOCKD_LOG
	LIBVIRT_LOG_OUTPUTS="3:file:$VIRTLOCKD_LOG" "$HERE/detached" virtlockd -d ||
		die "virtlockd failed to start"
fi

if [ "$conf_changed" = 1 ] && alive /run/libvirtd.pid; then
	say "restarting libvirtd for its configuration (host_uuid, lock_manager)"
	kill "$(cat /run/libvirtd.pid)"
	for _ in $(seq 40); do alive /run/libvirtd.pid || break; sleep 0.25; done
fi

if ! answers; then
	if ! alive /run/libvirtd.pid; then
		say "starting libvirtd"
		LIBVIRT_LOG_OUTPUTS="3:file:$LIBVIRTD_LOG" "$HERE/detached" libvirtd -d ||
			die "libvirtd failed to start"
	fi
	TAIL_LOG=$LIBVIRTD_LOG
	i=0
	while ! answers; do
		i=$((i + 1))
		[ "$i" -le $((WAIT_S * 4)) ] ||
			die "libvirtd at $URI does not answer after ${WAIT_S}s: $(virsh -c "$URI" version 2>&1 | tail -1)"
		sleep 0.25
	done
fi
say "libvirtd answers at $URI ($(virsh -c "$URI" version 2>/dev/null | awk -F': ' '/Running hypervisor/ {print $2}'))"

# The backend uses the "default" NAT network when it is active and falls
# back to user networking otherwise, so failure here is not fatal.
# (Output is captured first: grep -q exiting early would SIGPIPE virsh and
# pipefail would turn that into "not active".)
if info=$(virsh -c "$URI" net-info default 2>/dev/null); then
	if grep -Eq '^Active:[[:space:]]+yes' <<<"$info"; then
		say "network default is active"
	elif out=$(virsh -c "$URI" net-start default 2>&1); then
		say "network default started"
	else
		say "warning: cannot start network default ($(echo "$out" | grep -v '^$' | tail -1)); VMs get user networking"
	fi
	out=$(virsh -c "$URI" net-autostart default 2>&1) ||
		say "warning: cannot mark network default autostart ($(echo "$out" | grep -v '^$' | tail -1))"
else
	say "network default is not defined; VMs get user networking"
fi
exit 0
