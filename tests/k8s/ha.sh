#!/usr/bin/env bash
# Node loss with two nodes (each a daemon with its own libvirtd) on one
# API server, sharing one folder as storage class "san" (:shared):
#   - host death: node 1's daemon is killed (-9) and its QEMU destroyed; an
#     HA VM on shared storage runs on node 2 within 60 s, kubectl agrees on
#     nodeName, a watcher sampling both libvirts never sees two copies
#     running, and events say FailedOver;
#   - a VM on local disks of the dead node becomes Unknown with NodeLost,
#     and is not started elsewhere.
. "$(dirname "$0")/lib.sh"
trap 'kill "$WATCH_PID" 2>/dev/null; cluster_down; cleanup' EXIT
WATCH_PID=

node2_require
cluster_up
SAN=$T/san
mkdir -p "$SAN" && chmod 755 "$SAN"
ACCEL=tcg start_mountd --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$BACK" --storage-class "san=$SAN:shared" ||
	{ not_ok "node 1's daemon starts"; done_testing; }
start_mountd2 --accel tcg --kubeconfig "$KC/kubeconfig" --namespace default \
	--migration-uri "$URI2" --storage-class "san=$SAN:shared"
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
owner_is() { [ "$(jp "$1" '{.status.nodeName}')" = "$2" ]; }
state1() { virsh -q -c qemu:///system domstate "$1" 2>/dev/null | head -n 1; }
state2() { virsh -q -c "$URI2" domstate "$1" 2>/dev/null | head -n 1; }

a=${P}a  # HA, on shared storage: fails over
l=${P}l  # HA, on node 1's local pool: cannot move
vm() { # NAME CLASS
	cat <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: $1
spec:
  cpus: 1
  memory: 64Mi
  running: true
  disks:
  - name: root
    size: 64Mi
${2:+    storageClass: $2}
  nodeSelector:
    hypersdk.io/node: $NODE
  highAvailability:
    enabled: true
    restartPolicy: Always
YAML
}
vm "$a" san | k apply -f - >/dev/null
vm "$l" "" | k apply -f - >/dev/null
check "the shared VM runs on node 1" wait_for 60 phase_is "$a" Running
check "the local one too" wait_for 60 phase_is "$l" Running
check "its disk is in the shared folder" test -f "$SAN/${a}_root.qcow2"
# The nodeSelector put them on node 1; node 2 may take the shared one.
k patch vm "$a" --type json -p '[{"op":"remove","path":"/spec/nodeSelector"}]' >/dev/null
k patch vm "$l" --type json -p '[{"op":"remove","path":"/spec/nodeSelector"}]' >/dev/null

# watch: until $T/stop-watch, count samples where both libvirts run $a.
watch() {
	local both=0 n=0
	while [ ! -e "$T/stop-watch" ]; do
		[ "$(state1 "$a")" = running ] && [ "$(state2 "$a")" = running ] &&
			both=$((both + 1))
		n=$((n + 1))
		sleep 0.2
	done
	echo "$both/$n" >"$T/watch.out"
}
watch &
WATCH_PID=$!

# ---- host death
sleep 25        # both nodes online for a whole Lease period
t0=$SECONDS
kill9_mountd
virsh -q -c qemu:///system destroy "$a" >/dev/null 2>&1
virsh -q -c qemu:///system destroy "$l" >/dev/null 2>&1
check "the shared VM runs on node 2 within 60 s" wait_for 60 owner_is "$a" "$NODE2"
running2() { [ "$(state2 "$a")" = running ]; }
check "(libvirt of node 2)" wait_for 30 running2
took=$((SECONDS - t0))
echo "# failover: $took s from host death to Running on node 2"
is "kubectl: phase Running" "$(jp "$a" '{.status.phase}')" Running
like "its events say FailedOver from node 1" "$(cat "$M2/vms/$a/events")" "FailedOver from $NODE after"
nl() { [ "$(jp "$l" '{.status.phase}/{.status.conditions[?(@.type=="Ready")].reason}')" = Unknown/NodeLost ]; }
check "the local VM: Unknown, NodeLost" wait_for 30 nl
is "still assigned to node 1" "$(jp "$l" '{.status.nodeName}')" "$NODE"
is "and not started on node 2" "$(state2 "$l")" ""
touch "$T/stop-watch"
wait "$WATCH_PID"
like "never two copies running (samples with both / all)" "$(cat "$T/watch.out")" '^0/[0-9]+$'

stop2
done_testing
