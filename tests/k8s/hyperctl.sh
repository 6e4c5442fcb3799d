#!/usr/bin/env bash
# hyperctl k8s against a real kube-apiserver with the CRDs installed: the
# manifest of every mutating -op is accepted by `kubectl apply -f -` (the
# deletes by `kubectl delete -f -`) and reads back as asked; every golden
# of tests/cli passes a server-side dry run; vm-list, vm-snapshot-list and
# template-list print what `kubectl get` prints.  No daemon is needed.
. "$(dirname "$0")/lib.sh"

HYPERCTL=$BUILD/cli/hyperctl
trap 'cluster_down; cleanup' EXIT
[ -x "$HYPERCTL" ] || { not_ok "hyperctl is built ($HYPERCTL)"; done_testing; }

cluster_up
h() { "$HYPERCTL" k8s "$@" -kubeconfig "$KC/kubeconfig"; }
hm() { "$HYPERCTL" k8s "$@"; } # manifest ops: no kubeconfig needed
jp() { k get "$1" "$2" -o jsonpath="$3" 2>/dev/null; }
# applied DESC OP ARGS...: hyperctl k8s OP ARGS | kubectl apply -f - works
applied() {
	local d=$1
	shift
	if hm "$@" >"$T/m.yaml" 2>"$T/m.err" && k apply -f "$T/m.yaml" >"$T/apply.out" 2>&1; then
		ok "$d"
	else
		not_ok "$d" "$(cat "$T/m.err" "$T/apply.out" "$T/m.yaml" 2>/dev/null)"
	fi
}
# same_table DESC CMD1 CMD2: equal outputs once the AGE column is dropped
# (the two ran a moment apart)
same_table() {
	local d=$1 a b
	a=$(eval "$2" 2>&1 | sed -E 's/[[:space:]]+[^[:space:]]+$//')
	b=$(eval "$3" 2>&1 | sed -E 's/[[:space:]]+[^[:space:]]+$//')
	is "$d" "$a" "$b"
}

vm=${P}web
k create namespace prod >/dev/null 2>&1
for f in "$TOP"/tests/cli/golden/*.yaml; do
	if k apply --dry-run=server -f "$f" >"$T/dry.out" 2>&1; then
		ok "golden $(basename "$f") passes a server-side dry run"
	else
		not_ok "golden $(basename "$f") passes a server-side dry run" "$(cat "$T/dry.out")"
	fi
done

applied "vm-create | kubectl apply" -op vm-create -vm "$vm" -cpus 2 -memory 1Gi \
	-disk 2Gi -template ubuntu-22-04-template
is "   kubectl sees its cpus, memory, disk and template" \
	"$(jp vm "$vm" '{.spec.cpus} {.spec.memory} {.spec.disks[0].size} {.spec.image.templateRef.name}')" \
	"2 1Gi 2Gi ubuntu-22-04-template"
is "   the CRD's defaults fill the rest" "$(jp vm "$vm" '{.spec.running}')" false
applied "vm-create again (apply is idempotent)" -op vm-create -vm "$vm" -cpus 2 -memory 1Gi \
	-disk 2Gi -template ubuntu-22-04-template

now=$(date +%s)
export HYPERCTL_NOW=$now
for op in start stop restart; do
	applied "vm-$op | kubectl apply" -op "vm-$op" -vm "$vm"
	is "   VMOperation $vm-$op-$now asks for $op" \
		"$(jp vmop "$vm-$op-$now" '{.spec.vmRef.name} {.spec.operation}')" "$vm $op"
done
applied "vm-clone | kubectl apply" -op vm-clone -vm "$vm" -target "$vm-copy"
is "   its cloneSpec" "$(jp vmop "$vm-clone-$now" '{.spec.cloneSpec.targetName}')" "$vm-copy"
applied "vm-migrate | kubectl apply" -op vm-migrate -vm "$vm" -target-node node-2
is "   its migrateSpec" "$(jp vmop "$vm-migrate-$now" '{.spec.migrateSpec.targetNode} {.spec.migrateSpec.live}')" "node-2 true"
applied "vm-resize | kubectl apply" -op vm-resize -vm "$vm" -cpus 4 -memory 2Gi
is "   its resizeSpec" "$(jp vmop "$vm-resize-$now" '{.spec.resizeSpec.cpus} {.spec.resizeSpec.memory}')" "4 2Gi"
applied "vm-snapshot-create | kubectl apply" -op vm-snapshot-create -vm "$vm" -snapshot "$vm-s1" -include-memory
is "   VMSnapshot with memory" "$(jp vmsnap "$vm-s1" '{.spec.vmRef.name} {.spec.includeMemory}')" "$vm true"
applied "vm-snapshot-create without -snapshot names it" -op vm-snapshot-create -vm "$vm"
is "   $vm-snap-$now" "$(jp vmsnap "$vm-snap-$now" '{.spec.includeMemory}')" false
applied "vm-snapshot-restore | kubectl apply" -op vm-snapshot-restore -vm "$vm" -snapshot "$vm-s1"
is "   a restore VMOperation" "$(jp vmop "$vm-restore-$now" '{.spec.operation} {.spec.snapshotSpec.snapshotName}')" "restore $vm-s1"
unset HYPERCTL_NOW

# Lists, as kubectl prints them; a phase set through the status subresource.
k patch vm "$vm" --subresource=status --type=merge -p '{"status":{"phase":"Running","nodeName":"n1"}}' >/dev/null
same_table "vm-list prints what kubectl get vm prints" "h -op vm-list" "k get vm"
like "   with the phase and node" "$(h -op vm-list)" "$vm +Running +2 +1Gi +n1 "
same_table "vm-snapshot-list prints what kubectl get vmsnap prints" "h -op vm-snapshot-list" "k get vmsnap"
is "vm-snapshot-list -vm filters by VM" "$(h -op vm-snapshot-list -vm nosuch 2>&1)" \
	"No resources found in default namespace."
k apply -f "$TOP/deploy/examples/vmtemplate-ubuntu.yaml" >/dev/null
same_table "template-list prints what kubectl get vmtpl prints" "h -op template-list" "k get vmtpl"
is "an empty namespace: kubectl's message, exit 0" "$(h -op vm-list -namespace empty 2>&1; echo "rc=$?")" \
	"No resources found in empty namespace.
rc=0"
applied "vm-create -namespace prod" -op vm-create -vm "$vm" -namespace prod
like "vm-list -namespace prod lists it" "$(h -op vm-list -namespace prod)" "^NAME .*
$vm "
KUBECONFIG=$KC/kubeconfig "$HYPERCTL" k8s -op vm-list >"$T/env.out" 2>&1
like "\$KUBECONFIG is used without -kubeconfig" "$(cat "$T/env.out")" "$vm +Running"

# Deletes go through kubectl delete -f -.
hm -op vm-snapshot-delete -vm "$vm" -snapshot "$vm-s1" | k delete -f - >/dev/null 2>&1
check "vm-snapshot-delete | kubectl delete removes it" test -z "$(jp vmsnap "$vm-s1" '{.metadata.name}')"
hm -op vm-delete -vm "$vm" | k delete -f - >/dev/null 2>&1
check "vm-delete | kubectl delete removes it" test -z "$(jp vm "$vm" '{.metadata.name}')"

# Failures: one line, exit 1.
sed -E 's|server: .*|server: https://127.0.0.1:1|' "$KC/kubeconfig" >"$T/dead.kc"
"$HYPERCTL" k8s -op vm-list -kubeconfig "$T/dead.kc" >"$T/o" 2>"$T/e"
rc=$?
is "a server that does not answer: exit 1" "$rc" 1
like "   and one line saying so" "$(cat "$T/e")" "^hyperctl: virtualmachines: [^
]+$"
done_testing
