#!/usr/bin/env bash
# The seed's lifecycle scenario (its deploy/test-vm-lifecycle.sh), with
# kubectl only, against a real kube-apiserver and one node: template, VM
# from the template, stop by patch, start by patch, snapshot, clone,
# delete.  Every step is checked in kubectl and in libvirt.  Snapshot and
# clone are VM operations, a later issue: their objects are accepted, and
# the steps that need them to act are reported as SKIP, not as passed.
. "$(dirname "$0")/lib.sh"

EX=$TOP/deploy/examples
jp() { k get "$1" "$2" -o jsonpath="$3" 2>/dev/null; }
jp_is() { [ "$(jp "$1" "$2" "$3")" = "$4" ]; }
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $1 # SKIP $2"; }
trap 'cluster_down; cleanup' EXIT

cluster_up "CRDs installed as in the seed's Quick Start"
start_mountd --kubeconfig "$KC/kubeconfig" || { not_ok "node starts"; done_testing; }
ok "one node serves the namespace"

# The examples as written, with names of this run (libvirt domains are
# named after VMs, and other runs may share this libvirtd).
vm=${P}my-vm
sub() { sed -e "s/name: my-vm\$/name: $vm/" -e "s/targetName: my-vm-clone\$/targetName: ${vm}-clone/" "$1"; }

sub "$EX/vmtemplate-ubuntu.yaml" | k apply -f - >/dev/null
is "1. template created" "$(jp vmtpl ubuntu-22-04-template '{.spec.version}')" "22.04"

sub "$EX/vm-ubuntu.yaml" | k apply -f - >/dev/null
is "2. VM from the template created" "$(jp vm "$vm" '{.spec.image.templateRef.name}')" ubuntu-22-04-template
wait_for 30 jp_is vm "$vm" '{.status.phase}' Running
is "   it runs (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Running
is "   it runs (libvirt)" "$(domstate "$vm")" running
like "   with the manifest's 4 vCPUs and 8Gi" "$("${VIRSH[@]}" dominfo "$vm" | tr -s ' ' | grep -E '^(CPU\(s\)|Max memory)' | tr '\n' ' ')" "CPU\(s\): 4 Max memory: 8388608 KiB"
check "   and its cloud-init seed" test -e "$POOL/${vm}_cidata.iso"
skip "   its disk is cloned from the template's image" "templates are a later issue: the disk is blank"

k patch vm "$vm" --type merge -p '{"spec":{"running":false}}' >/dev/null
wait_for 60 jp_is vm "$vm" '{.status.phase}' Stopped
is "3. stopped by patch (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Stopped
is "   (libvirt)" "$(domstate "$vm")" "shut off"

k patch vm "$vm" --type merge -p '{"spec":{"running":true}}' >/dev/null
wait_for 30 jp_is vm "$vm" '{.status.phase}' Running
is "4. started by patch (kubectl)" "$(jp vm "$vm" '{.status.phase}')" Running
is "   (libvirt)" "$(domstate "$vm")" running

sub "$EX/vmsnapshot.yaml" | sed "s/name: my-vm\$/name: $vm/" | k apply -f - >/dev/null
is "5. snapshot object accepted" "$(jp vmsnap my-vm-snapshot '{.spec.vmRef.name}')" "$vm"
skip "   snapshot Ready and in virsh snapshot-list" "VM operations are a later issue"

sub "$EX/vmoperation-clone.yaml" | sed "s/name: my-vm\$/name: $vm/" | k apply -f - >/dev/null
is "6. clone operation accepted" "$(jp vmop clone-my-vm '{.spec.cloneSpec.targetName}')" "${vm}-clone"
skip "   clone Succeeded and the clone runs" "VM operations are a later issue"

k delete vm "$vm" >/dev/null
wait_for 30 bash -c "! ${VIRSH[*]} dominfo $vm >/dev/null 2>&1"
check "7. deleted: the domain is gone" bash -c "! ${VIRSH[*]} dominfo $vm >/dev/null 2>&1"
check "   its volumes too" test ! -e "$POOL/${vm}_root.qcow2"
wait_for 10 test ! -e "$M/vms/$vm"
check "   and the tree forgot it" test ! -e "$M/vms/$vm"
k delete vmsnap my-vm-snapshot >/dev/null 2>&1
k delete vmop clone-my-vm >/dev/null 2>&1
k delete vmtpl ubuntu-22-04-template >/dev/null 2>&1
done_testing
