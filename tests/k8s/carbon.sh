#!/usr/bin/env bash
# Carbon-aware placement and deferral in a cluster: two daemons, each with
# its own libvirtd and its own grid zone, served by two loopback providers
# that speak Electricity Maps' API (tests/carbon/server.py).  Each node
# publishes its reading in its Lease; a new carbonAware VM from kubectl
# lands on the greener node, whichever it is; a VM held to the dirty node
# waits Pending with CarbonDelayed (kubectl's columns and Events say so)
# and runs once its grid comes under the limit; a VMOperation start with
# now: true cuts a wait short.
. "$(dirname "$0")/lib.sh"

SRV=()
trap 'for p in "${SRV[@]}"; do kill "$p" 2>/dev/null; done; cluster_down; cleanup' EXIT

node2_require
cluster_up

# grid N INTENSITY: what provider N (1 or 2) says from the next request on.
grid() {
	printf '{"intensity":%s,"mode":"ok"}\n' "$2" >"$T/grid$1.new" && mv "$T/grid$1.new" "$T/grid$1"
}
for n in 1 2; do
	grid $n 302
	python3 "$TOP/tests/carbon/server.py" --port-file "$T/port$n" --state "$T/grid$n" \
		--log "$T/requests$n" 2>>"$T/server$n.log" &
	SRV+=($!)
done
wait_for 10 test -s "$T/port1" -a -s "$T/port2" || { not_ok "the loopback providers start"; done_testing; }
grid 2 120
printf 'token-%s\n' "$$" >"$T/token"
chmod 600 "$T/token"
carbon() { # ZONE N
	echo --carbon-provider electricitymaps --carbon-zone "$1" --carbon-token-file "$T/token" \
		--carbon-url "http://127.0.0.1:$(cat "$T/port$2")" --carbon-interval 1
}
# shellcheck disable=SC2046
ACCEL=tcg start_mountd --kubeconfig "$KC/kubeconfig" --namespace default \
	--stats-interval 1 $(carbon DE 1) || { not_ok "node 1's daemon starts"; done_testing; }
# shellcheck disable=SC2046
start_mountd2 --accel tcg --kubeconfig "$KC/kubeconfig" --namespace default \
	--stats-interval 1 $(carbon FR 2)
check "node 2's daemon mounts" test -e "$M2/vms/ctl"

nkey() { awk -v k="$3" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$1/nodes/$2/status" 2>/dev/null; }
nkey_is() { [ "$(nkey "$1" "$2" "$3")" = "$4" ]; }
jp() { k get vm "$1" -o jsonpath="$2" 2>/dev/null; }
owner_is() { [ "$(jp "$1" '{.status.nodeName}')" = "$2" ]; }
phase_k() { [ "$(jp "$1" '{.status.phase}')" = "$2" ]; }
carbon_yaml() { # NAME [vm_yaml options]
	vm_yaml "$@" "  carbonAware:" "    enabled: true" "    maxIntensity: 200"
}

check "node 1 sees node 2's grid in its Lease (FR 120)" wait_for 30 nkey_is "$M" "$NODE2" carbonIntensity 120
is "and its zone" "$(nkey "$M" "$NODE2" carbonZone)" FR
check "node 2 sees node 1's (DE 302)" wait_for 30 nkey_is "$M2" "$NODE" carbonIntensity 302
like "a Lease carries the annotations" \
	"$(k get lease -o jsonpath='{.items[*].metadata.annotations}' 2>/dev/null)" 'hypersdk.io/carbon-intensity'

# ---- placement: the greener node, whichever it is
g=${P}g
carbon_yaml "$g" | k apply -f - >/dev/null
check "a new carbonAware VM lands on node 2 (FR 120 < DE 302)" wait_for 60 owner_is "$g" "$NODE2"
check "and runs there at once" wait_for 90 phase_k "$g" Running
wide=$(k get vm "$g" -o wide 2>/dev/null)
like "kubectl get vm -o wide has the Carbon and Intensity columns" "$wide" 'CARBON +INTENSITY'
like "which say IntensityBelow and 120" "$wide" 'IntensityBelow +120'
k delete vm "$g" --wait=false >/dev/null

grid 1 90
grid 2 350
check "now DE 90 is greener than FR 350" wait_for 30 nkey_is "$M2" "$NODE" carbonIntensity 90
check "node 1 sees FR 350" wait_for 30 nkey_is "$M" "$NODE2" carbonIntensity 350
h=${P}h
carbon_yaml "$h" | k apply -f - >/dev/null
check "the next one lands on node 1" wait_for 60 owner_is "$h" "$NODE"
check "and runs" wait_for 90 phase_k "$h" Running
k delete vm "$h" --wait=false >/dev/null

# ---- deferral on the node a VM is held to
grid 1 302
check "DE is back at 302" wait_for 30 nkey_is "$M" "$NODE" carbonIntensity 302
w=${P}w
carbon_yaml "$w" node="$NODE" | k apply -f - >/dev/null
check "kubectl apply of a VM held to node 1: Pending" wait_for 60 phase_k "$w" Pending
check "with CarbonDelayed IntensityAbove" wait_for 30 eval \
	'[ "$(jp "$w" "{.status.conditions[?(@.type==\"CarbonDelayed\")].reason}")" = IntensityAbove ]'
like "its message names 302 and DE" "$(jp "$w" '{.status.conditions[?(@.type=="CarbonDelayed")].message}')" \
	'302 gCO2eq/kWh in DE \(electricitymaps'
is "status.carbon.intensity 302" "$(jp "$w" '{.status.carbon.intensity}')" 302
check "libvirt has not started it" eval '[ "$(domstate "$w")" != running ]'
events_of() {
	k get events --field-selector "involvedObject.name=$1" \
		-o jsonpath='{range .items[*]}{.reason}|{.message}{"\n"}{end}' 2>/dev/null
}
has_event() { events_of "$1" | grep -q -- "$2"; }
check "kubectl get events shows CarbonDelayed" wait_for 30 has_event "$w" '^CarbonDelayed|302'
grid 1 150
check "DE drops to 150: it runs" wait_for 30 phase_k "$w" Running
check "libvirt runs it" wait_for 10 eval '[ "$(domstate "$w")" = running ]'
check "kubectl get events shows CarbonStart" wait_for 30 has_event "$w" '^CarbonStart|150'

# ---- a VMOperation start with now: true
grid 1 302
check "302 again" wait_for 30 nkey_is "$M" "$NODE" carbonIntensity 302
x=${P}x
carbon_yaml "$x" node="$NODE" | k apply -f - >/dev/null
check "another waits" wait_for 60 phase_k "$x" Pending
k apply -f - >/dev/null <<YAML
apiVersion: hypersdk.io/v1alpha1
kind: VMOperation
metadata:
  name: ${x}-now
spec:
  vmRef:
    name: $x
  operation: start
  now: true
YAML
check "a VMOperation start with now: true runs it" wait_for 60 phase_k "$x" Running
is "reason StartNow" "$(jp "$x" '{.status.conditions[?(@.type=="CarbonDelayed")].reason}')" StartNow
k delete vm "$w" "$x" --wait=false >/dev/null

done_testing
