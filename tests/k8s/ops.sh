#!/usr/bin/env bash
# Operations against a real kube-apiserver: a ctl verb becomes a
# VMOperation or VMSnapshot that kubectl sees; a VMOperation or
# VMSnapshot made with kubectl is run by the VM's owner, checked in
# libvirt; failures end Failed with a reason; a snapshot's retention.
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT

cluster_up
start_mountd --kubeconfig "$KC/kubeconfig" --namespace default --stats-interval 1 ||
	{ not_ok "daemon starts in cluster mode"; done_testing; }
ok "daemon mounts in cluster mode"

a=${P}a
w() { "$ONEWRITE" "$@"; }
opphase() { k get vmoperation "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
snapphase() { k get vmsnapshot "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
is_op() { [ "$(opphase "$1")" = "$2" ]; }
is_snap() { [ "$(snapphase "$1")" = "$2" ]; }

vm_yaml "$a" | k apply -f - >/dev/null
wait_for 30 phase_is "$a" Running
is "a VM applied with kubectl runs" "$(phase "$a")" Running

# ---- tree -> kubectl --------------------------------------------------
is "snapshot through ctl" "$(w "$M/vms/$a/ctl" "snapshot ${P}s1 memory")" ok
check "kubectl sees the VMSnapshot Ready" wait_for 10 is_snap "${P}s1" Ready
is "with vmState Running" "$(k get vmsnapshot "${P}s1" -o jsonpath='{.status.vmState}')" Running
like "libvirt has it" "$("${VIRSH[@]}" snapshot-list --name "$a" | tr '\n' ' ')" "${P}s1"
is "resize through ctl" "$(w "$M/vms/$a/ctl" "resize cpus=2")" ok
op=$(k get vmoperation -o name | grep -- "$a-resize-" | head -n 1)
check "kubectl sees the resize VMOperation" test -n "$op"
check "Succeeded" wait_for 10 is_op "${op#*/}" Succeeded
is "and the VM's spec says cpus 2" "$(k get vm "$a" -o jsonpath='{.spec.cpus}')" 2

# ---- kubectl -> tree -> libvirt -----------------------------------------
c=${P}c
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-clone
spec:
  vmRef:
    name: $a
  operation: clone
  cloneSpec:
    targetName: $c
YAML
check "a VMOperation clone (full, of a running VM) from kubectl Succeeds" \
	wait_for 60 is_op "${P}op-clone" Succeeded ||
	echo "# $(k get vmoperation "${P}op-clone" -o jsonpath='{.status.message}')"
is "progress 100" "$(k get vmoperation "${P}op-clone" -o jsonpath='{.status.progress}')" 100
check "the clone is in the tree" test -d "$M/vms/$c"
check "and in kubectl" k get vm "$c"
is "libvirt has it" "$(domstate "$c")" "shut off"

k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMSnapshot
metadata:
  name: ${P}s2
spec:
  vmRef:
    name: $a
  includeMemory: false
  retention:
    keepDays: 0
    autoDelete: true
YAML
gone() { ! k get vmsnapshot "${P}s2" >/dev/null 2>&1 &&
	! "${VIRSH[@]}" snapshot-list --name "$a" | grep -qx "${P}s2"; }
check "a VMSnapshot with keepDays 0 is taken, expires and is deleted" wait_for 20 gone

k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-restore
spec:
  vmRef:
    name: $a
  operation: restore
  snapshotSpec:
    snapshotName: ${P}s1
YAML
check "a restore VMOperation Succeeds" wait_for 30 is_op "${P}op-restore" Succeeded
is "the VM runs from the memory snapshot" "$(domstate "$a")" running

k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-stop
spec:
  vmRef:
    name: $a
  operation: stop
  force: true
YAML
check "a stop VMOperation Succeeds" wait_for 30 is_op "${P}op-stop" Succeeded
is "libvirt: shut off" "$(domstate "$a")" "shut off"

# ---- failures -----------------------------------------------------------------
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-bad
spec:
  vmRef:
    name: $a
  operation: clone
  cloneSpec:
    targetName: $c
YAML
check "a clone onto an existing name ends Failed" wait_for 30 is_op "${P}op-bad" Failed
like "with the reason" "$(k get vmoperation "${P}op-bad" -o jsonpath='{.status.message}')" "already exists"
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-mig
spec:
  vmRef:
    name: $a
  operation: migrate
  migrateSpec:
    targetNode: no-such-node
YAML
check "a migration to a node that does not exist ends Failed" wait_for 30 is_op "${P}op-mig" Failed
like "saying so" "$(k get vmoperation "${P}op-mig" -o jsonpath='{.status.message}')" "does not exist"
check "the API server refuses an unknown operation" \
	bash -c "! kubectl --kubeconfig=$KC/kubeconfig apply -f - >/dev/null 2>&1 <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op-x
spec:
  vmRef:
    name: $a
  operation: explode
YAML"

# ---- cleanup through kubectl ------------------------------------------------------
k delete vm "$c" --wait=false >/dev/null
wait_for 30 test ! -e "$M/vms/$c"
check "kubectl delete of the clone removes it" test ! -e "$M/vms/$c"
done_testing
