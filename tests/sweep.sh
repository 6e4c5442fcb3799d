#!/usr/bin/env bash
# Before a run: remove what earlier runs killed with SIGKILL (CI's time
# limit, a lost terminal) left behind, since their EXIT traps never ran:
#   - FUSE mounts under /tmp/hsdk-fs.* whose daemon is gone;
#   - domains and pools on node 1 (and on node 2 when it answers) named
#     after a test's pid (t<pid>-*, tb<pid>-*, tw<pid>-*, d<pid>-*,
#     hypersdk-t<pid>[b], be-smoke-[full-]<pid>, ...) when that process no
#     longer exists; a domain only when its hypersdk metadata names a
#     test's node, a pool only when its folder is a test's temporary one,
#     so nobody else's is touched;
#   - a test's folder (/tmp/hsdk-fs.*, /var/tmp/be-*) when its owner
#     (tests/fs/lib.sh and tests/backend/be_test.c write it) is gone;
#   - users and groups of tests/security (hsdk<pid>, hsdc<pid>, hsdw<pid>,
#     hsdwa<pid>, hsdwb<pid>) whose test is gone;
#   - a killed Kubernetes node's processes, mounts and host changes
#     (tests/k8s/node.sh), when its test is gone;
#   - a fresh-machine check's machine (/var/tmp/hsdk-fresh.*, with an
#     owner file) with every process and namespace in it.
# Everything of a test that still runs is left alone, so two runs can
# share the machine.  Prints what it removed.
set -uo pipefail
. "$(dirname "$0")/fresh/root.sh"

URIS=(qemu:///system)
URI2=$("$(dirname "$0")/../scripts/libvirt-node2.sh" uri)
virsh -q -c "$URI2" version >/dev/null 2>&1 && URIS+=("$URI2")

alive() { [ -n "$1" ] && [ -d "/proc/$1" ]; }

# The pid in a test's name, if that test is gone.
dead_owner() { # NAME
	local pid
	if [[ $1 =~ ^(hypersdk-)?t[bw]?([0-9]+)b?(-|$) ]] ||
		[[ $1 =~ ^(hypersdk-)?d([0-9]+)(-|$) ]] ||
		[[ $1 =~ ^be-smoke-(full-)?([0-9]+)$ ]]; then
		pid=${BASH_REMATCH[2]}
	else
		return 1
	fi
	! alive "$pid"
}

# A domain a test made: its hypersdk metadata names a test's node (the
# tests' t<pid>, t<pid>b, tw<pid>, d<pid>, or be_ops and be_smoke's
# fixed ones), so an operator's VM that happens to look like a test's
# name is never touched.
test_node() { # URI DOMAIN
	virsh -q -c "$1" metadata "$2" https://hypersdk.io/xmlns/vm/1 2>/dev/null |
		grep -Eq '<(hypersdk:)?node>(t[bw]?[0-9]+b?|d[0-9]+|ops-node2?|smoke-node)</'
}

sweep_libvirt() { # URI
	local uri=$1 d p
	for d in $(virsh -q -c "$uri" list --all --name 2>/dev/null); do
		dead_owner "$d" || continue
		test_node "$uri" "$d" || continue
		virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1
		virsh -q -c "$uri" undefine "$d" --nvram --snapshots-metadata \
			--checkpoints-metadata >/dev/null 2>&1 ||
			virsh -q -c "$uri" undefine "$d" >/dev/null 2>&1
		echo "sweep: domain $d ($uri)"
	done
	for p in $(virsh -q -c "$uri" pool-list --all --name 2>/dev/null); do
		dead_owner "$p" || continue
		virsh -q -c "$uri" pool-dumpxml "$p" 2>/dev/null |
			grep -Eq '<path>(/tmp/hsdk-fs\.|/var/tmp/be-)' || continue
		virsh -q -c "$uri" pool-destroy "$p" >/dev/null 2>&1
		virsh -q -c "$uri" pool-undefine "$p" >/dev/null 2>&1
		echo "sweep: pool $p ($uri)"
	done
}

while read -r _ mnt type _; do
	case $mnt in /tmp/hsdk-fs.*) ;; *) continue ;; esac
	[[ $type == fuse* ]] || continue
	# A live test may keep a stale mount on purpose (restart.sh).
	d=${mnt%/*}
	[ -f "$d/owner" ] && alive "$(cat "$d/owner")" && continue
	# A live daemon answers; a dead one's mount says ENOTCONN.
	stat "$mnt" >/dev/null 2>&1 && continue
	umount -l "$mnt" 2>/dev/null && echo "sweep: unmounted $mnt"
done </proc/mounts

for uri in "${URIS[@]}"; do
	sweep_libvirt "$uri"
done

# A cluster with a node (tests/k8s/quickstart.sh) whose test and watchdog
# were both killed: its processes, containers, mounts and host changes
# (tests/k8s/node.sh undoes them), then the tree's shared bind mount.
for d in /tmp/hsdk-fs.*; do
	[ -d "$d/cluster/node" ] || continue
	[ -s "$d/owner" ] || continue
	alive "$(cat "$d/owner")" && continue
	"$(dirname "$0")/k8s/cluster.sh" down "$d/cluster" >/dev/null 2>&1 &&
		echo "sweep: stopped the cluster and node of $d"
	umount -R -l "$d/run" 2>/dev/null
done

# A test's folder (disk images included) once its owner is gone and
# nothing is mounted in it any more.
for d in /tmp/hsdk-fs.* /var/tmp/be-ops-* /var/tmp/be-smoke-*; do
	# An owner file is written whole (renamed into place).
	[ -s "$d/owner" ] || continue
	alive "$(cat "$d/owner")" && continue
	grep -q " $d/" /proc/mounts && continue
	rm -rf "$d" && echo "sweep: removed $d"
done

# The users and groups tests/security makes: users hsdwa<pid> and
# hsdwb<pid> (web.sh), groups hsdk<pid> (owners.sh), hsdc<pid>
# (console.sh), hsdw<pid> (web.sh).
for u in $(getent passwd | cut -d: -f1 | grep -E '^hsdw[ab][0-9]+$'); do
	alive "${u#hsdw?}" && continue
	userdel "$u" 2>/dev/null && echo "sweep: user $u"
done
for g in $(getent group | cut -d: -f1 | grep -E '^hsd[kcw][0-9]+$'); do
	alive "${g#hsd?}" && continue
	groupdel "$g" 2>/dev/null && echo "sweep: group $g"
done

for d in /var/tmp/hsdk-fresh.*; do
	[ -s "$d/owner" ] || continue
	alive "$(cat "$d/owner")" && continue
	fresh_remove "$d" && echo "sweep: removed $d"
done
exit 0
