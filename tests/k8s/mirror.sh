#!/usr/bin/env bash
# The tree and the VirtualMachine objects are two views of one state:
# round trips in both directions against a real kube-apiserver, checked
# in the tree, in kubectl and in libvirt; two nodes, each with its own
# libvirtd (scripts/libvirt-node2.sh), sharing one API server (placement
# by nodeSelector, a claim race, ctl and spec writes on one node for a VM
# owned by the other, which only the owner acts on and which it would
# refuse with EBUSY for its phase); the API server away while the tree is
# written to.
. "$(dirname "$0")/lib.sh"

jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
trap 'cluster_down; cleanup' EXIT
# Node 2 gets a libvirtd of its own; where none can start, it shares node
# 1's (each daemon touches only the domains whose metadata names it).
node2_libvirt || URI2=qemu:///system
# domains NAME: how many libvirtds of the two run NAME
domains() { { "${VIRSH[@]}" list --name; [ "$URI2" = qemu:///system ] ||
	virsh -q -c "$URI2" list --name; } 2>/dev/null | grep -c "^$1\$"; }

cluster_up

start_mountd --kubeconfig "$KC/kubeconfig" --namespace default ||
	{ not_ok "daemon starts in cluster mode"; done_testing; }
ok "daemon mounts in cluster mode"

# kubectl -> tree -> libvirt
a=${P}a
t0=$(date +%s%N)
vm_yaml "$a" node="$NODE" | k apply -f - >/dev/null
wait_for 5 test -d "$M/vms/$a"
t1=$(date +%s%N)
check "kubectl apply: the VM appears in the tree ($(((t1 - t0) / 1000000)) ms from kubectl start)" test -d "$M/vms/$a"
wait_for 20 phase_is "$a" Running
t2=$(date +%s%N)
is "and is started by its owner: Running in the tree" "$(phase "$a")" Running
echo "# apply to Running: $(((t2 - t0) / 1000000)) ms"
wait_for 5 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $a -o jsonpath='{.status.phase}')\" = Running ]"
is "Running in kubectl" "$(jp "$a" '{.status.phase}')" Running
is "nodeName in kubectl" "$(jp "$a" '{.status.nodeName}')" "$NODE"
is "running in libvirt" "$(domstate "$a")" running

# tree -> kubectl
echo stop > "$M/vms/$a/ctl"
is "echo stop: Stopped in the tree" "$(phase "$a")" Stopped
wait_for 5 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $a -o jsonpath='{.spec.running}/{.status.phase}')\" = false/Stopped ]"
is "spec.running=false and phase Stopped in kubectl" "$(jp "$a" '{.spec.running}/{.status.phase}')" "false/Stopped"
cat "$M/vms/$a/spec" > "$T/spec.yaml"
sed -i 's/^cpus: .*/cpus: 2/' "$T/spec.yaml"
is "a spec written through the tree" "$("$ONEWRITE" "$M/vms/$a/spec" - < "$T/spec.yaml")" ok
wait_for 5 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $a -o jsonpath='{.spec.cpus}')\" = 2 ]"
is "becomes a patch kubectl sees" "$(jp "$a" '{.spec.cpus}')" 2

# kubectl patch -> tree -> libvirt
k patch vm "$a" --type merge -p '{"spec":{"running":true}}' >/dev/null
wait_for 20 phase_is "$a" Running
is "kubectl patch running=true starts it" "$(phase "$a")" Running
like "with the new vCPU count" "$("${VIRSH[@]}" dominfo "$a" | grep '^CPU(s)')" 2

# create through the tree -> kubectl
b=${P}b
is "create via vms/ctl" "$("$ONEWRITE" "$M/vms/ctl" "create $b memory=64Mi disk=64Mi")" ok
is "kubectl sees it" "$(jp "$b" '{.metadata.name}')" "$b"
wait_for 5 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $b -o jsonpath='{.status.nodeName}')\" = $NODE ]"
is "owned by this node" "$(jp "$b" '{.status.nodeName}')" "$NODE"
is "refused in the tree when kubectl has the name" "$("$ONEWRITE" "$M/vms/ctl" "create $a")" EEXIST

# A second node on the same API server.
start_mountd2 --kubeconfig "$KC/kubeconfig"
check "second node mounts (libvirt $URI2)" test -e "$M2/vms/ctl"
wait_for 5 test -d "$M2/vms/$a"
check "it sees the VMs of the first" test -d "$M2/vms/$a"
wait_for 10 test -e "$M/nodes/$NODE2/status"
like "node 1 lists node 2 under nodes/ (from its lease)" "$(cat "$M/nodes/$NODE2/status" 2>&1)" "alive true"
like "node 2's own status says cluster" "$(cat "$M2/nodes/$NODE2/status")" "mode cluster"
c=${P}c
vm_yaml "$c" node="$NODE2" | k apply -f - >/dev/null
wait_for 20 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $c -o jsonpath='{.status.phase}')\" = Running ]"
is "nodeSelector places it on node 2" "$(jp "$c" '{.status.nodeName}')" "$NODE2"
wait_for 5 phase_is "$c" Running
is "node 1's tree shows it Running" "$(phase "$c")" Running
echo stop > "$M/vms/$c/ctl"
is "a ctl write on node 1 for node 2's VM works" "$(phase "$c")" Stopped
is "node 2 did it" "$(head -n 1 "$M2/vms/$c/status")" "phase Stopped"
is "in node 2's libvirt" "$(virsh -q -c "$URI2" domstate "$c" 2>/dev/null | head -n 1)" "shut off"

# What the owner would refuse for its phase is refused on node 1 too, with
# the owner's text, and nothing changes (no patch, no DELETE).
is "stop again on node 1: EBUSY, as on the owner" "$("$ONEWRITE" "$M/vms/$c/ctl" stop)" EBUSY
e1=$(cat "$M/vms/$c/err")
is "the owner's own tree says EBUSY too" "$("$ONEWRITE" "$M2/vms/$c/ctl" stop)" EBUSY
is "with the same err text" "$e1" "$(cat "$M2/vms/$c/err")"
is "spec.running stays false" "$(jp "$c" '{.spec.running}')" false
# A spec written on node 1: only the merge patch; node 2 defines and starts it.
cat "$M/vms/$c/spec" > "$T/c.yaml"
sed -i -e 's/^cpus: .*/cpus: 2/' -e 's/^running: .*/running: true/' "$T/c.yaml"
is "a spec written on node 1 for node 2's VM" "$("$ONEWRITE" "$M/vms/$c/spec" - < "$T/c.yaml")" ok
is "returns once node 2 runs it" "$(phase "$c")" Running
is "node 2's libvirt runs it" "$(virsh -q -c "$URI2" domstate "$c" 2>/dev/null | head -n 1)" running
like "with the new vCPU count" "$(virsh -q -c "$URI2" dominfo "$c" | grep '^CPU(s)')" 2
is "one domain running in the two libvirtds" "$(domains "$c")" 1
if [ "$URI2" != qemu:///system ]; then
	check "node 1's libvirt never defined it" bash -c "! ${VIRSH[*]} dominfo $c >/dev/null 2>&1"
fi
is "the spec reached the API server" "$(jp "$c" '{.spec.cpus}/{.spec.running}')" "2/true"
is "start on node 1 while it runs: EBUSY" "$("$ONEWRITE" "$M/vms/$c/ctl" start)" EBUSY
e1=$(cat "$M/vms/$c/err")
"$ONEWRITE" "$M2/vms/$c/ctl" start >/dev/null
is "with the owner's text" "$e1" "$(cat "$M2/vms/$c/err")"
like "which names the phase" "$e1" "start: vm $c is Running"
# delete / rmdir from node 1: EBUSY while it runs, unless delete force.
is "delete on node 1 while node 2 runs it: EBUSY" "$("$ONEWRITE" "$M/vms/$c/ctl" delete)" EBUSY
like "err says why" "$(cat "$M/vms/$c/err")" "delete: vm $c is Running \(stop it first, or delete force\)"
like "rmdir on node 1: EBUSY" "$(rmdir "$M/vms/$c" 2>&1)" "busy"
is "the object is still there" "$(jp "$c" '{.metadata.name}')" "$c"
is "and still runs on node 2" "$(virsh -q -c "$URI2" domstate "$c" 2>/dev/null | head -n 1)" running
is "delete force on node 1" "$("$ONEWRITE" "$M/vms/$c/ctl" "delete force")" ok
check "the directory is gone on node 1" test ! -e "$M/vms/$c"
is "and the object" "$(jp "$c" '{.metadata.name}')" ""
wait_for 20 bash -c "! virsh -q -c $URI2 dominfo $c >/dev/null 2>&1"
check "node 2 destroyed and undefined the domain" bash -c "! virsh -q -c $URI2 dominfo $c >/dev/null 2>&1"

# Claim race: no nodeSelector, both nodes see it at once.
d=${P}d
vm_yaml "$d" | k apply -f - >/dev/null
wait_for 20 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $d -o jsonpath='{.status.phase}')\" = Running ]"
owner=$(jp "$d" '{.status.nodeName}')
like "one node claimed it" "$owner" "^($NODE|$NODE2)\$"
n=$(cat "$M/vms/$d/events" "$M2/vms/$d/events" 2>/dev/null | grep -c "Scheduled")
is "exactly one claim won" "$n" 1
is "one domain in the two libvirtds" "$(domains "$d")" 1

# Capacity: a VM no node can hold is claimed by none.
e=${P}e
vm_yaml "$e" memory=64Ti | k apply -f - >/dev/null
sleep 2
is "a VM bigger than any node stays unowned" "$(jp "$e" '{.status.nodeName}')" ""
check "and has no domain" bash -c "! ${VIRSH[*]} dominfo $e >/dev/null 2>&1"
k delete vm "$e" >/dev/null

# kubectl delete -> domain and directory gone
k delete vm "$a" >/dev/null
wait_for 10 test ! -e "$M/vms/$a"
check "kubectl delete removes the directory" test ! -e "$M/vms/$a"
wait_for 10 bash -c "! ${VIRSH[*]} dominfo $a >/dev/null 2>&1"
check "and the domain" bash -c "! ${VIRSH[*]} dominfo $a >/dev/null 2>&1"
wait_for 5 test ! -e "$M2/vms/$a"
check "on every node" test ! -e "$M2/vms/$a"

# The API server away: the owner keeps acting, writes wait in the outbox.
"$TOP/tests/k8s/cluster.sh" stop-apiserver "$KC" >/dev/null 2>&1
echo start > "$M/vms/$b/ctl"
is "with the API server down, the owner still starts its VM" "$(phase "$b")" Running
echo pause > "$M/vms/$b/ctl"
echo resume > "$M/vms/$b/ctl"
is "and keeps serving its tree" "$(phase "$b")" Running
wait_for 10 grep -q "apiserver unreachable" "$M/nodes/$NODE/status"
is "a create needs the API server: EIO" "$("$ONEWRITE" "$M/vms/ctl" "create ${P}z memory=64Mi")" EIO
like "err says why" "$(cat "$M/vms/err")" "unreachable"
is "a delete needs it too: EIO" "$("$ONEWRITE" "$M/vms/$b/ctl" "delete force")" EIO
is "and changes nothing" "$(phase "$b")" Running
sleep "${OUTAGE_SECONDS:-30}"
"$TOP/tests/k8s/cluster.sh" start-apiserver "$KC" >/dev/null 2>&1
check "the API server comes back" test $? -eq 0
wait_for 30 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $b -o jsonpath='{.spec.running}/{.status.phase}')\" = true/Running ]"
is "once it is back, kubectl converges" "$(jp "$b" '{.spec.running}/{.status.phase}')" "true/Running"
echo stop > "$M/vms/$b/ctl"
wait_for 10 bash -c "[ \"\$(kubectl --kubeconfig=$KC/kubeconfig --cache-dir=$T/kcache get vm $b -o jsonpath='{.status.phase}')\" = Stopped ]"
is "and the watch is back too" "$(jp "$b" '{.status.phase}')" Stopped

for v in "$b" "$c" "$d"; do k delete vm "$v" --wait=false >/dev/null 2>&1; done
wait_for 20 bash -c "! ${VIRSH[*]} list --all --name | grep -q '^$P'"
wait_for 20 bash -c "! virsh -q -c $URI2 list --all --name | grep -q '^$P'"
stop2
done_testing
