#!/usr/bin/env bash
# Kubernetes Events from a real daemon on a real API server: each line of
# a VM's events is an events.k8s.io/v1 Event regarding its VirtualMachine
# (`kubectl get events --field-selector involvedObject.name=VM`), an
# operation's start and end are Events of its VMOperation, repeats become
# one Event with a series (Events made while the API server is away wait
# in the outbox: tests/k8s/offline.sh).
. "$(dirname "$0")/lib.sh"
trap 'cluster_down; cleanup' EXIT

cluster_up
start_mountd --kubeconfig "$KC/kubeconfig" --namespace default ||
	{ not_ok "daemon starts in cluster mode"; done_testing; }
a=${P}a
vm_yaml "$a" node="$NODE" | k apply -f - >/dev/null
check "a VM runs" wait_for 60 phase_is "$a" Running

# events_of NAME: "reason|type|note|count" per Event about NAME (core/v1's
# view of events.k8s.io: involvedObject is the regarding object).
events_of() {
	k get events --field-selector "involvedObject.name=$1" \
		-o jsonpath='{range .items[*]}{.reason}|{.type}|{.message}|{.series.count}{"\n"}{end}' 2>/dev/null
}
has_event() { events_of "$1" | grep -q -- "$2"; }

check "kubectl get events shows its Started" wait_for 30 has_event "$a" "^Started|Normal|"
check "and its Scheduled (claimed by this node)" has_event "$a" "^Scheduled|Normal|claimed by node $NODE"
e=$(k get events.events.k8s.io -o json | python3 -c '
import json, sys
for e in json.load(sys.stdin)["items"]:
    if e["regarding"]["name"] == sys.argv[1] and e["reason"] == "Started":
        r = e["regarding"]
        print(e["reportingController"], e["reportingInstance"], r["kind"], r["apiVersion"], bool(r.get("uid")), e["action"])
        break' "$a")
is "reported by hypersdk.io/mountd on this node, about the VirtualMachine (with its uid)" \
	"$e" "hypersdk.io/mountd $NODE VirtualMachine hypersdk.io/v1alpha1 True Started"

k patch vm "$a" --type merge -p '{"spec":{"running":false}}' >/dev/null
check "stopped by patch" wait_for 60 phase_is "$a" Stopped
check "kubectl get events shows its Stopped" wait_for 30 has_event "$a" "^Stopped|Normal|"

# Three refusals of one bad spec: one Warning Event with a series of 3.
for _ in 1 2 3; do
	"$ONEWRITE" "$M/vms/$a/spec" "cpus: lots" >/dev/null 2>&1
done
series3() { events_of "$a" | grep -q "^Error|Warning|.*|3$"; }
check "three identical refusals are one Warning Event with series.count 3" wait_for 30 series3
is "not three Events" "$(events_of "$a" | grep -c '^Error|')" 1

# An operation's Events go on its VMOperation.
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${P}op
spec:
  operation: start
  vmRef:
    name: $a
YAML
check "a VMOperation's start is an Event on it" wait_for 60 has_event "${P}op" "^Started|Normal|start of vm $a on node $NODE"
check "and its end" wait_for 60 has_event "${P}op" "^Succeeded|Normal|"

# RBAC: exactly create and patch of events.k8s.io Events (also checked with
# the DaemonSet's ServiceAccount in deploy.sh).
rbac=$T/rbac.yaml
sed 's/namespace: hypersdk-system/namespace: default/' "$TOP/deploy/rbac/hypersdk-mountd.yaml" >"$rbac"
k apply -f "$rbac" >/dev/null 2>&1
sa=system:serviceaccount:default:hypersdk-mountd
can() { k auth can-i "$@" --as "$sa" -n default 2>/dev/null; }
is "can-i create events.events.k8s.io: yes" "$(can create events.events.k8s.io)" yes
is "can-i patch events.events.k8s.io: yes" "$(can patch events.events.k8s.io)" yes
is "can-i delete events.events.k8s.io: no" "$(can delete events.events.k8s.io)" no
is "can-i list events.events.k8s.io: no" "$(can list events.events.k8s.io)" no

stop_mountd
done_testing
