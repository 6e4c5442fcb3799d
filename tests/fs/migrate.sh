#!/usr/bin/env bash
# Live migration between two nodes, each a daemon with its own libvirtd
# (node 2 from scripts/libvirt-node2.sh): there and back with a guest that
# keeps running, cancel in the middle, another operation refused while one
# runs, and a node that does not exist.
STOP_TIMEOUT=3
. "$(dirname "$0")/lib.sh"

node2_require
ok "node 2's libvirtd answers at $URI2"

# The guest VM below boots a kernel from $T/guest, on either node.
ACCEL=tcg start_mountd --peer "$NODE2=$URI2" --kernel-dir "$T/guest" ||
	{ not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --peer "$NODE=$BACK" --kernel-dir "$T/guest"
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

a=${P}a
w() { "$ONEWRITE" "$@"; }
phase2() { head -n 1 "$M2/vms/$1/status" 2>/dev/null | cut -d' ' -f2; }
state2() { virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1; }
# watch NAME: until the file $T/stop-watch exists, sample both nodes and
# count the samples where the guest ran on neither (it may be paused for
# the switch-over, never shut off or gone).
watch() {
	local gaps=0 n=0 s1 s2
	while [ ! -e "$T/stop-watch" ]; do
		s1=$(virsh -q -c qemu:///system domstate "$1" 2>/dev/null | head -n 1)
		s2=$(virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1)
		case "$s1/$s2" in
		running/* | */running | paused/* | */paused) ;;
		*) gaps=$((gaps + 1)) ;;
		esac
		n=$((n + 1))
	done
	echo "$gaps/$n"
}

is "create on node 1" "$(w "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi running=true")" ok
is "it runs" "$(phase "$a")" Running
rm -f "$T/stop-watch"; watch "$a" >"$T/watch1" & wpid=$!
is "migrate to node 2" "$(w "$M/vms/$a/ctl" "migrate $NODE2")" ok
touch "$T/stop-watch"; wait "$wpid"
check "it leaves node 1's tree" wait_for 5 test ! -e "$M/vms/$a"
is "libvirt on node 1 has no such domain" "$(domstate "$a")" ""
check "it appears in node 2's tree" wait_for 10 test -d "$M2/vms/$a"
is "Running there" "$(phase2 "$a")" Running
is "node 2's libvirt runs it" "$(state2 "$a")" running
is "the guest ran the whole time on one node or the other ($(cat "$T/watch1") gaps/samples)" \
	"$(cut -d/ -f1 "$T/watch1")" 0
like "node 2's status names node 2" "$(awk '$1 == "node" { print $2 }' "$M2/vms/$a/status")" "^$NODE2\$"
op=$(ls "$M/operations" | grep -- "$a-migrate-" | head -n 1)
is "the operation Succeeded" "$(head -n 1 "$M/operations/$op/status")" "phase Succeeded"

rm -f "$T/stop-watch"; watch "$a" >"$T/watch2" & wpid=$!
is "and back to node 1" "$(w "$M2/vms/$a/ctl" "migrate $NODE")" ok
touch "$T/stop-watch"; wait "$wpid"
check "it is in node 1's tree again" wait_for 10 test -d "$M/vms/$a"
is "Running on node 1" "$(phase "$a")" Running
is "node 1's libvirt runs it" "$(domstate "$a")" running
is "and ran the whole way back ($(cat "$T/watch2"))" "$(cut -d/ -f1 "$T/watch2")" 0

is "a node that does not exist is ENOENT" "$(w "$M/vms/$a/ctl" "migrate ${P}nowhere")" ENOENT
like "err says so" "$(cat "$M/vms/$a/err")" "does not exist"
check "and the VM stays" test "$(phase "$a")" = Running

# A migration slowed to 1 MiB/s of a guest whose RAM holds a Linux kernel
# and initramfs (zero pages cost nothing, so an empty guest moves at once):
# time to look at it, to try another operation, and to cancel it.
is "delete force the first VM" "$(w "$M/vms/$a/ctl" "delete force")" ok
GUEST=$T/guest
if "$TOP/tests/guest/build.sh" "$GUEST" >"$T/build.log" 2>&1; then
	ok "guest kernel and initramfs ready"
else
	not_ok "tests/guest/build.sh builds the guest" "$(tail -n 5 "$T/build.log")"
	done_testing
fi
g=${P}g
is "create a guest VM" "$(w "$M/vms/ctl" "create $g memory=128Mi disk=64Mi")" ok
cat >"$T/spec.yaml" <<EOF
cpus: 1
memory: 128Mi
running: false
disks:
- name: root
  size: 64Mi
kernelBoot:
  kernel: $GUEST/vmlinuz
  initrd: $GUEST/initrd.img
  cmdline: console=ttyS0
EOF
is "give it a kernel" "$("$ONEWRITE" "$M/vms/$g/spec" "$(cat "$T/spec.yaml")")" ok
is "start it" "$(w "$M/vms/$g/ctl" start)" ok
sleep 2
t0=$(date +%s)
w "$M/vms/$g/ctl" "migrate $NODE2 bandwidth=8Mbps" >"$T/slow.out" 2>&1 &
slow=$!
running_op() { op=$(ls "$M/operations" | grep -- "$g-migrate-" | while read -r o; do
	head -n 1 "$M/operations/$o/status" | grep -q Running && echo "$o"; done | head -n 1)
	[ -n "$op" ]; }
check "a slow migration runs" wait_for 10 running_op
wait_for 5 phase_is "$g" Migrating
is "the VM's phase is Migrating meanwhile" "$(phase "$g")" Migrating
is "its operation is migrate" "$(status_key "$g" operation)" migrate
is "another operation on it is EBUSY" "$(w "$M/vms/$g/ctl" "snapshot x1")" EBUSY
like "err says what runs" "$(cat "$M/vms/$g/err")" "migrate in progress"
sleep 2
like "progress is shown" "$(cat "$M/operations/$op/status")" "progress [0-9]+"
is "cancel" "$(w "$M/vms/$g/ctl" cancel)" ok
wait "$slow"
echo "# the slow migration ran $(($(date +%s) - t0)) s before the cancel ended it"
is "the migrate write ends ECANCELED" "$(cat "$T/slow.out")" ECANCELED
is "the operation is Cancelled" "$(head -n 1 "$M/operations/$op/status")" "phase Cancelled"
is "the VM still runs on node 1" "$(domstate "$g")" running
is "its phase is Running again" "$(phase "$g")" Running
is "and it is not on node 2" "$(state2 "$g")" ""
is "delete force" "$(w "$M/vms/$g/ctl" "delete force")" ok
done_testing
