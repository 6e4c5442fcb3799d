#!/usr/bin/env bash
# VM operations through the tree, checked in libvirt and qemu-img:
# snapshots with memory, revert, retention, resize (live and over the
# maximum), full and linked clones, cancel, operations/, and the refusals
# that must change nothing.
STOP_TIMEOUT=3
. "$(dirname "$0")/lib.sh"

start_mountd --stats-interval 1 || { not_ok "daemon starts"; done_testing; }
ok "daemon mounts $M"

a=${P}a
c=${P}c
l=${P}l
w() { "$ONEWRITE" "$@"; }
snap_phase() { awk '$1 == "phase" { print $2 }' "$M/vms/$1/snapshots/$2/status" 2>/dev/null; }
skey() { awk -v k="$3" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/vms/$1/snapshots/$2/status"; }
backing() { qemu-img info -U --output=json "$POOL/$1" 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename",""))'; }
virsh_snaps() { "${VIRSH[@]}" snapshot-list --name "$1" 2>/dev/null | tr '\n' ' '; }

is "create" "$(w "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi")" ok
is "start" "$(w "$M/vms/$a/ctl" start)" ok

# ---- snapshots ---------------------------------------------------------
is "snapshot with memory of a running VM" "$(w "$M/vms/$a/ctl" "snapshot s1 memory")" ok
check "snapshots/s1 appears in the tree" test -d "$M/vms/$a/snapshots/s1"
is "its status is Ready" "$(snap_phase "$a" s1)" Ready
is "taken while Running" "$(skey "$a" s1 vmState)" Running
is "ready to restore" "$(skey "$a" s1 readyToRestore)" true
like "its size counts the saved memory and the disk" "$(skey "$a" s1 size)" "^[1-9][0-9]*(Ki|Mi|Gi)?$"
like "libvirt lists it" "$(virsh_snaps "$a")" "s1"
is "the VM still runs" "$(phase "$a")" Running
is "the same name again is EEXIST" "$(w "$M/vms/$a/ctl" "snapshot s1")" EEXIST
like "err names it" "$(cat "$M/vms/$a/err")" "s1"
is "a second snapshot, disk only" "$(w "$M/vms/$a/ctl" "snapshot s2")" ok
is "its parent is s1" "$(skey "$a" s2 parentSnapshot)" s1
is "and its chain is s1" "$(skey "$a" s2 snapshotChain)" s1
is "mkdir in snapshots/ takes one" "$(mkdir "$M/vms/$a/snapshots/s3" && echo ok)" ok
is "and it is Ready" "$(snap_phase "$a" s3)" Ready
like "ls snapshots/" "$(ls "$M/vms/$a/snapshots" | tr '\n' ' ')" "s1 s2 s3"
check "mkdir for a VM that does not exist fails" \
	bash -c "! mkdir '$M/vms/${P}nosuch/snapshots/x' 2>/dev/null"
is "cancel with nothing running is ENOENT" "$(w "$M/vms/$a/ctl" cancel)" ENOENT

# ---- resize ---------------------------------------------------------------
is "resize cpus=2 live" "$(w "$M/vms/$a/ctl" "resize cpus=2")" ok
like "virsh dominfo shows 2 CPUs" "$("${VIRSH[@]}" dominfo "$a" | awk -F: '/^CPU\(s\)/ {print $2}')" "2"
is "status says cpus 2" "$(status_key "$a" cpus)" 2
like "spec says cpus: 2" "$(cat "$M/vms/$a/spec")" "cpus: 2"
is "no restart needed" "$(status_key "$a" condition.RestartRequired)" false
is "over the maximum is EINVAL" "$(w "$M/vms/$a/ctl" "resize cpus=500")" EINVAL
like "err gives the limit" "$(cat "$M/vms/$a/err")" "maximum"
is "and the VM keeps 2 CPUs" "$(status_key "$a" cpus)" 2

# ---- revert ---------------------------------------------------------------
is "revert to the memory snapshot" "$(w "$M/vms/$a/ctl" "revert s1")" ok
is "the VM runs again from it" "$(phase "$a")" Running
is "libvirt says running" "$(domstate "$a")" running
like "libvirt's current snapshot is s1" \
	"$("${VIRSH[@]}" snapshot-current --name "$a" 2>/dev/null)" "^s1$"
is "with the vCPUs it had then" "$("${VIRSH[@]}" vcpucount "$a" --live --active 2>/dev/null)" 1
is "revert to a missing snapshot fails" "$(w "$M/vms/$a/ctl" "revert nosuch")" ENOENT
is "ctl revert in the snapshot's directory" "$(w "$M/vms/$a/snapshots/s2/ctl" revert)" ok
is "a disk-only snapshot leaves the VM stopped" "$(phase "$a")" Stopped
like "and spec.running false" "$(cat "$M/vms/$a/spec")" "running: false"
is "rmdir deletes a snapshot" "$(rmdir "$M/vms/$a/snapshots/s3" && echo ok)" ok
check "it is gone from the tree" test ! -e "$M/vms/$a/snapshots/s3"
check "and from libvirt" bash -c "! virsh -q -c qemu:///system snapshot-list --name '$a' | grep -qx s3"

# ---- retention ------------------------------------------------------------
is "snapshot keep=0d" "$(w "$M/vms/$a/ctl" "snapshot s4 keep=0d")" ok
gone() { [ ! -e "$M/vms/$a/snapshots/$1" ] && ! virsh_snaps "$a" | grep -qw "$1"; }
check "it expires and is deleted" wait_for 10 gone s4
is "snapshot count=1 (keep the newest one)" "$(w "$M/vms/$a/ctl" "snapshot s5 count=1")" ok
is "another with count=1" "$(w "$M/vms/$a/ctl" "snapshot s6 count=1")" ok
check "the older one goes" wait_for 10 gone s5
check "the newer one stays" test -d "$M/vms/$a/snapshots/s6"

# ---- clones ---------------------------------------------------------------
is "full clone" "$(w "$M/vms/$a/ctl" "clone $c")" ok
is "the clone is Stopped" "$(phase "$c")" Stopped
is "libvirt has it" "$(domstate "$c")" "shut off"
check "its disk has no backing file" test -z "$(backing "${c}_root.qcow2")"
check "with a new UUID" test "$(status_key "$c" uuid)" != "$(status_key "$a" uuid)"
mac() { "${VIRSH[@]}" domiflist "$1" | awk 'NF >= 5 { print $5 }' | head -n 1; }
check "and a new MAC" test "$(mac "$c")" != "$(mac "$a")"
is "a clone onto an existing name is EEXIST" "$(w "$M/vms/$a/ctl" "clone $c")" EEXIST
is "linked clone, started" "$(w "$M/vms/$a/ctl" "clone $l linked start")" ok
is "it runs" "$(phase "$l")" Running
like "its disk is an overlay on the source's" "$(backing "${l}_root.qcow2")" "${a}_root.qcow2"
is "the source cannot be deleted under it" "$(w "$M/vms/$a/ctl" delete)" EBUSY
like "err names the linked clone" "$(cat "$M/vms/$a/err")" "$l"
check "the source is still there" test -d "$M/vms/$a"

# A linked clone of a running VM freezes its disk; snapshots from before
# can then no longer be reverted to.
b=${P}b
is "a running VM" "$(w "$M/vms/ctl" "create $b cpus=1 memory=64Mi disk=64Mi running=true")" ok
is "with a snapshot" "$(w "$M/vms/$b/ctl" "snapshot bs1 memory")" ok
is "linked clone of the running VM" "$(w "$M/vms/$b/ctl" "clone ${P}bl linked")" ok
is "the source ran on" "$(domstate "$b")" running
like "it writes into an overlay now, on the frozen base" "$(backing "$(basename "$("${VIRSH[@]}" domblklist "$b" | awk '$1 == "vda" { print $2 }')")")" "${b}_root.qcow2"
like "and so does the clone" "$(backing "${P}bl_root.qcow2")" "${b}_root.qcow2"
is "reverting the older snapshot is refused" "$(w "$M/vms/$b/ctl" "revert bs1")" EBUSY
like "err says why" "$(cat "$M/vms/$b/err")" "frozen for a linked clone"
is "the clone starts" "$(w "$M/vms/${P}bl/ctl" start)" ok
is "delete the clone" "$(w "$M/vms/${P}bl/ctl" "delete force")" ok
is "delete the source" "$(w "$M/vms/$b/ctl" "delete force")" ok
check "none of its files are left" bash -c "! ls '$POOL' | grep -q '^${b}_'"

# ---- operations/ ------------------------------------------------------------
ops=$(ls "$M/operations" | tr '\n' ' ')
like "operations/ lists the clones" "$ops" "$a-clone-"
op=$(ls "$M/operations" | grep -- "-clone-" | head -n 1)
is "an operation's status: Succeeded" "$(head -n 1 "$M/operations/$op/status")" "phase Succeeded"
like "with progress 100" "$(cat "$M/operations/$op/status")" "progress 100"
like "and its spec" "$(cat "$M/operations/$op/spec")" "targetName"
check "operations cannot be written" bash -c "! echo x 2>/dev/null > '$M/operations/$op/status'"
like "resize is an operation too" "$ops" "$a-resize-"

# ---- a busy VM refuses other operations ---------------------------------------
is "delete the linked clone first (force)" "$(w "$M/vms/$l/ctl" "delete force")" ok
is "now the source can go" "$(w "$M/vms/$a/ctl" delete)" ok
check "its snapshots went with it" test ! -e "$M/vms/$a"

# ---- state survives a restart -------------------------------------------------
nops=$(ls "$M/operations" | wc -l)
stop_mountd
start_mountd --stats-interval 1 || not_ok "daemon restarts"
is "operations are still listed after a restart" "$(ls "$M/operations" | wc -l)" "$nops"
done_testing
