#!/usr/bin/env bash
# A node that starts while the API server is away (a host reboot during a
# control-plane outage): the daemon mounts from its state directory, acts
# on its own VMs, keeps what it wrote in the outbox, and converges once
# the server is back.
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT
jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }

cluster_up
start_mountd --kubeconfig "$KC/kubeconfig" --namespace default ||
	{ not_ok "daemon starts in cluster mode"; done_testing; }
a=${P}a
vm_yaml "$a" node="$NODE" | k apply -f - >/dev/null
wait_for 30 phase_is "$a" Running
is "a VM of this node runs" "$(phase "$a")" Running

stop_mountd
"$TOP/tests/k8s/cluster.sh" stop-apiserver "$KC" >/dev/null 2>&1
start_mountd --kubeconfig "$KC/kubeconfig" --namespace default --http 127.0.0.1:0
URL=$(grep -o "dashboard on http://[^ ]*" "$T/mountd.log" | tail -n 1 |
	sed 's|dashboard on ||; s|/k8s/vms$||')
metric() { curl -sS --max-time 10 "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
check "with the API server down, the daemon still starts" test -e "$M/vms/ctl"
like "and says why it is offline" "$(cat "$T/mountd.log")" "unreachable at start-up"
check "its VM is in the tree" test -d "$M/vms/$a"
wait_for 10 phase_is "$a" Running
is "Running, read from libvirt" "$(phase "$a")" Running
is "it acts on its own VM" "$("$ONEWRITE" "$M/vms/$a/ctl" stop)" ok
is "libvirt: shut off" "$(domstate "$a")" "shut off"
like "nodes/ says the server is unreachable" "$(cat "$M/nodes/$NODE/status")" "unreachable"
is "the readiness probe fails, and says why (the pod turns NotReady)" \
	"$("$MOUNTD" --probe ready --mount "$M"; echo "exit $?")" "ready: the API server is unreachable
exit 1"
is "the liveness probe passes (the pod is not restarted)" "$("$MOUNTD" --probe live --mount "$M")" "live: ok"
is "/metrics: hypersdk_sync_online 0" "$(metric hypersdk_sync_online)" 0
like "/metrics: the stop waits in the outbox" "$(metric hypersdk_sync_outbox_entries)" '^[1-9][0-9]*$'
sleep 2
like "/metrics: hypersdk_sync_lag_seconds counts its age" "$(metric hypersdk_sync_lag_seconds)" '^([2-9]|[1-9][0-9]+)$'

"$TOP/tests/k8s/cluster.sh" start-apiserver "$KC" >/dev/null 2>&1
check "the API server comes back" test $? -eq 0
converged() { [ "$(jp "$a" '{.spec.running}/{.status.phase}')" = false/Stopped ]; }
check "kubectl converges: running=false, Stopped" wait_for 60 converged
ready_again() { "$MOUNTD" --probe ready --mount "$M" >/dev/null; }
check "the readiness probe passes again" wait_for 30 ready_again
drained() { [ "$(metric hypersdk_sync_outbox_entries)" = 0 ]; }
check "/metrics: the outbox drains" wait_for 30 drained
is "/metrics: lag 0, online 1" "$(metric hypersdk_sync_lag_seconds) $(metric hypersdk_sync_online)" "0 1"
stopped_event() {
	k get events --field-selector "involvedObject.name=$a" -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' |
		grep -qx Stopped
}
check "the stop made while it was away arrives as an Event" wait_for 30 stopped_event
k patch vm "$a" --type merge -p '{"spec":{"running":true}}' >/dev/null
wait_for 30 phase_is "$a" Running
is "and the watch works: a patch starts it" "$(phase "$a")" Running
k delete vm "$a" --wait=false >/dev/null
wait_for 30 bash -c "! ${VIRSH[*]} dominfo $a >/dev/null 2>&1"
check "kubectl delete removes the domain" bash -c "! ${VIRSH[*]} dominfo $a >/dev/null 2>&1"
done_testing
