#!/usr/bin/env bash
# Live migration in cluster mode: two daemons, each with its own libvirtd,
# on one API server.  A VMOperation migrate made with kubectl moves a
# running VM from node 1 to node 2; ownership (status.nodeName) moves only
# once the guest runs there; node 2 then acts on it, and ctl writes on
# node 1 (stop force, start, pause, resume) reach it there.  Then back
# through node 2's tree; cancels; and migrateSpec.live: false (the guest
# paused while its memory moves).  Disks: a disk of the node's own pool
# is copied into the target's pool (copy-storage) and leaves none behind;
# one on a shared storage class is not copied at all.
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT

node2_require
cluster_up
# In a cluster kernelBoot is off unless the node names its kernel folder:
# the guest VM below boots a kernel from $T/guest, on either node.
SAN=$T/san
mkdir -p "$SAN" && chmod 755 "$SAN"
ACCEL=tcg start_mountd --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$BACK" --kernel-dir "$T/guest" --storage-class "san=$SAN:shared" ||
	{ not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$URI2" --kernel-dir "$T/guest" --storage-class "san=$SAN:shared"
check "node 2's daemon mounts on its own libvirtd" test -e "$M2/vms/ctl"

a=${P}a
jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
opphase() { k get vmoperation "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
is_op() { [ "$(opphase "$1")" = "$2" ]; }
state2() { virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1; }
owner_is() { [ "$(jp "$a" '{.status.nodeName}')" = "$1" ]; }

vm_yaml "$a" node="$NODE" | k apply -f - >/dev/null
wait_for 30 phase_is "$a" Running
is "a VM placed on node 1 runs there" "$(domstate "$a")" running

# mig_op NAME VM [FIELD...]: a VMOperation migrating VM to node 2, with
# more migrateSpec fields ("live: false") as arguments.
mig_op() {
	local name=$1 vm=$2 f extra=
	shift 2
	for f in "$@"; do extra+=$'\n'"    $f"; done
	k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: $name
spec:
  vmRef:
    name: $vm
  operation: migrate
  migrateSpec:
    targetNode: $NODE2$extra
YAML
}
mig_op "${P}mig" "$a"
check "kubectl's VMOperation migrate Succeeds" wait_for 60 is_op "${P}mig" Succeeded
is "node 2's libvirt runs the guest" "$(state2 "$a")" running
is "node 1's libvirt has no such domain" "$(domstate "$a")" ""
disk2() { virsh -q -c "$URI2" domblklist "$1" 2>/dev/null | awk '$1 == "vda" { print $2 }'; }
is "its disk was copied into node 2's pool" "$(disk2 "$a")" "$T/pool2/${a}_root.qcow2"
is "and node 1's copy is gone" "$(test -e "$T/pool/${a}_root.qcow2" && echo there)" ""
check "status.nodeName is node 2" wait_for 10 owner_is "$NODE2"
check "node 2's tree shows it Running" wait_for 10 bash -c "head -n 1 '$M2/vms/$a/status' | grep -q 'phase Running'"
like "and names node 2 in node 1's tree" "$(status_key "$a" node)" "^$NODE2\$"
is "a ctl write on node 1 reaches the new owner" "$("$ONEWRITE" "$M/vms/$a/ctl" "stop force")" ok
is "node 2's libvirt: shut off" "$(state2 "$a")" "shut off"
is "start it again through node 1's tree" "$("$ONEWRITE" "$M/vms/$a/ctl" start)" ok
is "running on node 2" "$(state2 "$a")" running
is "pause through node 1's tree" "$("$ONEWRITE" "$M/vms/$a/ctl" pause)" ok
is "node 2's libvirt: paused" "$(state2 "$a")" paused
is "resume through node 1's tree" "$("$ONEWRITE" "$M/vms/$a/ctl" resume)" ok
is "node 2's libvirt: running" "$(state2 "$a")" running
is "migrate back through node 2's tree" "$("$ONEWRITE" "$M2/vms/$a/ctl" "migrate $NODE")" ok
check "owned by node 1 again" wait_for 10 owner_is "$NODE"
is "node 1's libvirt runs it" "$(domstate "$a")" running
is "from node 1's pool again, nothing left in node 2's" \
	"$(virsh -q -c qemu:///system domblklist "$a" | awk '$1 == "vda" { print $2 }') $(ls "$T/pool2" | grep -c "^$a")" \
	"$T/pool/${a}_root.qcow2 0"

# A disk on a shared class is not copied: the target runs the same file.
s=${P}s
vm_yaml "$s" class=san node="$NODE" | k apply -f - >/dev/null
wait_for 30 phase_is "$s" Running
ino=$(stat -c %i "$SAN/${s}_root.qcow2" 2>/dev/null)
mig_op "${P}migs" "$s"
check "a VM on shared storage migrates" wait_for 60 is_op "${P}migs" Succeeded
is "node 2 runs it from the same file, not a copy" \
	"$(disk2 "$s") $(stat -c %i "$SAN/${s}_root.qcow2" 2>/dev/null)" "$SAN/${s}_root.qcow2 $ino"
k delete vm "$s" --wait=false >/dev/null
ev=$(k get events --field-selector "involvedObject.name=$a" -o jsonpath='{range .items[*]}{.reason} {end}' 2>&1)
like "kubectl get events: the migration (Migrating)" "$ev" "Migrating"
like "and Migrated" "$ev" "Migrated"
op=$(k get vmoperation -o name | grep -- "$a-migrate-" | head -n 1)
check "kubectl sees the tree's migration as a VMOperation" test -n "$op"
is "Succeeded" "$(opphase "${op#*/}")" Succeeded
# Cancel, from kubectl and from the other node's tree, of migrations slowed
# to 1 MiB/s (a kernel-booted guest: its RAM is not all zero pages).
GUEST=$T/guest
if "$TOP/tests/guest/build.sh" "$GUEST" >"$T/build.log" 2>&1; then
	ok "guest kernel and initramfs ready"
else
	not_ok "tests/guest/build.sh builds the guest" "$(tail -n 5 "$T/build.log")"
	done_testing
fi
g=${P}g
# On class san there is no disk to copy: the slowed copy is the memory's.
vm_yaml "$g" memory=128Mi class=san node="$NODE" "  kernelBoot:
    kernel: $GUEST/vmlinuz
    initrd: $GUEST/initrd.img
    cmdline: console=ttyS0" | k apply -f - >/dev/null
wait_for 60 phase_is "$g" Running
is "a kernel-booted guest runs on node 1" "$(domstate "$g")" running
slow() { mig_op "$1" "$g" "bandwidth: 8Mbps" "live: ${2:-true}"; } # NAME [LIVE]
slow "${P}slow1"
check "a slow migration runs" wait_for 20 is_op "${P}slow1" Running
k patch vmoperation "${P}slow1" --type merge -p '{"spec":{"cancel":true}}' >/dev/null
check "kubectl patch spec.cancel=true: Cancelled" wait_for 30 is_op "${P}slow1" Cancelled
is "the guest still runs on node 1" "$(domstate "$g")" running
is "and owns it" "$(jp "$g" '{.status.nodeName}')" "$NODE"
slow "${P}slow2"
check "another slow migration runs" wait_for 20 is_op "${P}slow2" Running
is "cancel written in node 2's tree" "$("$ONEWRITE" "$M2/vms/$g/ctl" cancel)" ok
is "reaches node 1's operation: Cancelled" "$(opphase "${P}slow2")" Cancelled
is "the guest runs on node 1" "$(domstate "$g")" running
# live: false pauses the guest while its memory moves: libvirt shows the
# source paused for as long as the (slowed) copy runs.
slow "${P}slow3" false
check "a slow migration with live: false runs" wait_for 20 is_op "${P}slow3" Running
check "the guest is paused on node 1 meanwhile" wait_for 20 bash -c "[ \"\$(virsh -q -c qemu:///system domstate $g | head -n 1)\" = paused ]"
like "the daemon says it is not live" "$(grep "migrating vm $g " "$T/mountd.log" | tail -n 1)" "not live"
k patch vmoperation "${P}slow3" --type merge -p '{"spec":{"cancel":true}}' >/dev/null
check "cancelled" wait_for 30 is_op "${P}slow3" Cancelled
check "the guest runs again on node 1" wait_for 10 bash -c "[ \"\$(virsh -q -c qemu:///system domstate $g | head -n 1)\" = running ]"
k delete vm "$g" --wait=false >/dev/null

# A whole non-live migration, from kubectl.
mig_op "${P}still" "$a" "live: false"
check "a VMOperation migrate with live: false Succeeds" wait_for 60 is_op "${P}still" Succeeded
is "node 2's libvirt runs the guest" "$(state2 "$a")" running
is "node 1's libvirt has no such domain" "$(domstate "$a")" ""
check "status.nodeName is node 2" wait_for 10 owner_is "$NODE2"
like "node 1 moved it paused, not live" "$(grep "migrating vm $a " "$T/mountd.log" | tail -n 1)" "not live"

k delete vm "$a" --wait=false >/dev/null
wait_for 30 bash -c "! virsh -q -c $URI2 dominfo $a >/dev/null 2>&1"
check "kubectl delete removes the domain (on node 2)" bash -c "! virsh -q -c $URI2 dominfo $a >/dev/null 2>&1"
done_testing
