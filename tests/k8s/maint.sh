#!/usr/bin/env bash
# Cordon and drain in a cluster: two daemons, each with its own libvirtd,
# on one API server.  A cordon written on node 2's tree reaches node 1
# through its Lease, and node 1 then claims no new VM; `kubectl cordon` on
# a Node object of node 1's name is honoured too; a drain asked with
# kubectl (the Node's hypersdk.io/drain annotation) moves the LiveMigrate
# VM to node 2 and stops the other; the migration URIs come from the
# Leases (--migration-uri), not from --peer.
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT

node2_require
cluster_up
ACCEL=tcg start_mountd --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$BACK" --stats-interval 1 ||
	{ not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$URI2" --stats-interval 1
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
nkey() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$1/nodes/$NODE/status" 2>/dev/null; }
key_is() { [ "$(nkey "$1" "$2")" = "$3" ]; }
owner_is() { [ "$(jp "$1" '{.status.nodeName}')" = "$2" ]; }
state2() { virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1; }

check "node 1 sees node 2's migration URI in its Lease" \
	wait_for 20 grep -qsx "migrationURI $URI2" "$M/nodes/$NODE2/status"

# ---- cordon from the other node's tree
is "echo cordon > nodes/$NODE/ctl on node 2's tree" "$("$ONEWRITE" "$M2/nodes/$NODE/ctl" cordon)" ok
check "node 1 says it is cordoned, by its Lease" wait_for 15 key_is "$M" cordon.by lease
check "node 2's tree shows node 1 cordoned" wait_for 15 key_is "$M2" cordoned true
u=${P}u
vm_yaml "$u" | k apply -f - >/dev/null
check "a new VM goes to node 2, not to the cordoned node 1" wait_for 60 owner_is "$u" "$NODE2"
is "uncordon through node 1's own tree" "$("$ONEWRITE" "$M/nodes/$NODE/ctl" uncordon)" ok
check "node 1 is not cordoned" wait_for 15 key_is "$M" cordoned false
k delete vm "$u" --wait=false >/dev/null

# ---- kubectl cordon on a Node object of the same name
k create -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $NODE
YAML
check "a Node object $NODE (no kubelet behind it)" test $? -eq 0
k cordon "$NODE" >/dev/null
check "kubectl cordon $NODE: node 1 is cordoned by its Node object" wait_for 15 key_is "$M" cordon.by node-object
is "uncordon through the tree is refused while the Node says unschedulable" \
	"$("$ONEWRITE" "$M/nodes/$NODE/ctl" uncordon)" EBUSY
like "vms/err says what to do" "$(cat "$M/vms/err")" "kubectl uncordon $NODE"
k uncordon "$NODE" >/dev/null
check "kubectl uncordon: node 1 is not cordoned" wait_for 15 key_is "$M" cordoned false

# ---- a drain asked with kubectl
a=${P}a
b=${P}b
{ vm_yaml "$a" node="$NODE" ha="evictionStrategy: LiveMigrate"; echo ---; vm_yaml "$b" node="$NODE"; } >"$T/ab.yaml"
k apply -f "$T/ab.yaml" >/dev/null
check "two VMs run on node 1" wait_for 60 phase_is "$a" Running
check "(both)" wait_for 60 phase_is "$b" Running
# The nodeSelector pins them to node 1: let the LiveMigrate one go anywhere.
k patch vm "$a" --type json -p '[{"op":"remove","path":"/spec/nodeSelector"}]' >/dev/null
k annotate --overwrite node "$NODE" hypersdk.io/drain=t1 >/dev/null
check "the drain runs and ends Succeeded" wait_for 120 key_is "$M" drain Succeeded
is "node 1 is cordoned by it" "$(nkey "$M" cordoned)" true
is "drain.moved 1" "$(nkey "$M" drain.moved)" 1
is "drain.stopped 1" "$(nkey "$M" drain.stopped)" 1
check "the LiveMigrate VM runs on node 2" wait_for 30 owner_is "$a" "$NODE2"
is "(libvirt of node 2)" "$(state2 "$a")" running
check "the other is stopped on node 1" wait_for 30 phase_is "$b" Stopped
is "and meant to be off" "$(jp "$b" '{.spec.running}')" false
done_ann() { k get lease "hypersdk-node-$NODE" -o jsonpath='{.metadata.annotations.hypersdk\.io/drain-done-node} {.metadata.annotations.hypersdk\.io/drain-result}'; }
check "node 1's Lease says the drain t1 is done, ok" wait_for 15 test "$(done_ann)" = "t1 ok"
sleep 2
is "the same annotation does not drain again" "$(nkey "$M" drain.total)" 2

# ---- a drain of node 2 from node 1's tree
is "echo drain > nodes/$NODE2/ctl on node 1 returns when node 2 is done" \
	"$("$ONEWRITE" "$M/nodes/$NODE2/ctl" drain)" EIO
like "vms/err: node 1 is cordoned, so the LiveMigrate VM has nowhere to go" "$(cat "$M/vms/err")" "no node to migrate it to"
is "and it still runs on node 2" "$(state2 "$a")" running

stop2
stop_mountd
done_testing
