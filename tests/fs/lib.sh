# Shared by the tests/fs scripts: a private daemon on a temporary mount
# over the real libvirtd, TAP helpers, and cleanup that runs even when a
# test fails or is killed.  Source it; it sets M (the mount point).
set -uo pipefail
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
MOUNTD=$BUILD/mountd/hypersdk-mountd
ONEWRITE=$BUILD/tests/fs/onewrite
VIRSH=(virsh -q -c qemu:///system)

T=$(mktemp -d /tmp/hsdk-fs.XXXXXX)
# libvirt runs QEMU as libvirt-qemu, which must reach the pool below.
chmod 755 "$T"
echo $$ >"$T/owner.new" && mv "$T/owner.new" "$T/owner" # for tests/sweep.sh
M=$T/mnt
STATE=$T/state
POOL=$T/pool
# Names unique to this run, so runs never meet each other or the
# operator's own VMs on the shared libvirtd.
NODE=t$$
P=t$$-
MOUNTD_PID=
# No dashboard unless a test asks for one: daemons of concurrent runs
# would all want 127.0.0.1:8080.
export HYPERSDK_HTTP=${HYPERSDK_HTTP:-off}

. "$TOP/tests/tap.sh"

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

start_mountd() {
	mkdir -p "$M"
	"$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" \
		--pool-dir "$POOL" --node "$NODE" --accel "${ACCEL:-auto}" \
		--stop-timeout "${STOP_TIMEOUT:-3}" "$@" >>"$T/mountd.log" 2>&1 &
	MOUNTD_PID=$!
	local end=$((SECONDS + 30))
	until [ -e "$M/vms/ctl" ]; do
		if ! kill -0 "$MOUNTD_PID" 2>/dev/null || [ $SECONDS -ge $end ]; then
			echo "# hypersdk-mountd did not come up:"; sed 's/^/# /' "$T/mountd.log"
			kill -9 "$MOUNTD_PID" 2>/dev/null
			wait "$MOUNTD_PID" 2>/dev/null
			MOUNTD_PID=
			return 1
		fi
		sleep 0.05
	done
}

stop_mountd() {
	[ -n "$MOUNTD_PID" ] || return 0
	kill -TERM "$MOUNTD_PID" 2>/dev/null
	wait "$MOUNTD_PID" 2>/dev/null
	local rc=$?
	MOUNTD_PID=
	return $rc
}

kill9_mountd() {
	[ -n "$MOUNTD_PID" ] || return 0
	kill -9 "$MOUNTD_PID" 2>/dev/null
	wait "$MOUNTD_PID" 2>/dev/null
	MOUNTD_PID=
	return 0
}

phase() { head -n 1 "$M/vms/$1/status" 2>/dev/null | cut -d' ' -f2; }
status_key() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/vms/$1/status"; }
domstate() { "${VIRSH[@]}" domstate "$1" 2>/dev/null | head -n 1; }
phase_is() { [ "$(phase "$1")" = "$2" ]; }

# ---- node 2, for the two-node tests (migration, cluster placement) ----
NODE2=${NODE}b
M2=$T/mnt2
PID2=
URI2=           # node 2's libvirt, once node2_libvirt has run
BACK=           # node 1's libvirt as node 2 reaches it

# node2_libvirt: start node 2's own libvirtd (scripts/libvirt-node2.sh).
node2_libvirt() {
	"$TOP/scripts/libvirt-node2.sh" up >"$T/node2.log" 2>&1 || return 1
	URI2=$("$TOP/scripts/libvirt-node2.sh" uri)
	BACK=$("$TOP/scripts/libvirt-node2.sh" node1-uri)
}

# node2_require: node2_libvirt, or the whole test is one SKIP.
node2_require() {
	node2_libvirt && return 0
	echo "ok 1 # SKIP a second libvirtd cannot start here: $(tail -n 1 "$T/node2.log")"
	echo "1..1"
	exit 0
}

# start_mountd2 [ARGS...]: node 2's daemon on $URI2; true once mounted.
start_mountd2() {
	mkdir -p "$M2"
	"$MOUNTD" --foreground --mount "$M2" --state-dir "$T/state2" \
		--pool-dir "$T/pool2" --node "$NODE2" --libvirt "$URI2" \
		--stop-timeout 3 "$@" >>"$T/mountd2.log" 2>&1 &
	PID2=$!
	wait_for 30 test -e "$M2/vms/ctl"
}

stop2() {
	[ -n "$PID2" ] || return 0
	kill -TERM "$PID2" 2>/dev/null; wait "$PID2" 2>/dev/null; PID2=
}

# What node 2 holds: its daemon, its mount, this run's domains and pool.
cleanup2() {
	local d
	stop2
	fusermount3 -uz "$M2" 2>/dev/null
	[ -n "$URI2" ] || return 0
	for d in $(virsh -q -c "$URI2" list --all --name 2>/dev/null | grep "^$P"); do
		virsh -q -c "$URI2" destroy "$d" >/dev/null 2>&1
		virsh -q -c "$URI2" undefine --snapshots-metadata "$d" >/dev/null 2>&1
	done
	drop_pools virsh -q -c "$URI2" "$NODE2"
	if [ "$tap_failed" -gt 0 ] && [ -s "$T/mountd2.log" ]; then
		echo "# node 2's daemon log:"
		tail -n 20 "$T/mountd2.log" | sed 's/^/#   /'
	fi
}

# This run's domains and pool on node 1.
drop_libvirt() {
	local d
	for d in $("${VIRSH[@]}" list --all --name 2>/dev/null | grep "^$P"); do
		"${VIRSH[@]}" destroy "$d" >/dev/null 2>&1
		"${VIRSH[@]}" undefine --snapshots-metadata --nvram "$d" >/dev/null 2>&1 ||
			"${VIRSH[@]}" undefine "$d" >/dev/null 2>&1
	done
	drop_pools "${VIRSH[@]}" "$NODE"
}

# drop_pools VIRSH... NODE: the node's pool and its storage classes' pools
# (hypersdk-NODE, hypersdk-NODE-CLASS).
drop_pools() {
	local node=${*: -1} p
	local v=("${@:1:$#-1}")
	# (virsh -q pads the names with spaces)
	for p in $("${v[@]}" pool-list --all --name 2>/dev/null | awk '{print $1}' |
		grep -E "^hypersdk-$node(-.*)?\$"); do
		"${v[@]}" pool-destroy "$p" >/dev/null 2>&1
		"${v[@]}" pool-undefine "$p" >/dev/null 2>&1
	done
}

cleanup() {
	cleanup2
	if [ -n "$MOUNTD_PID" ]; then
		kill -TERM "$MOUNTD_PID" 2>/dev/null
		sleep 0.5
		kill -9 "$MOUNTD_PID" 2>/dev/null
		wait "$MOUNTD_PID" 2>/dev/null
	fi
	fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
	drop_libvirt
	if [ -n "${KEEP_LOGS:-}" ] || [ "$tap_failed" -gt 0 ]; then
		echo "# daemon log:"; sed 's/^/#   /' "$T/mountd.log" 2>/dev/null | tail -n 40
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
