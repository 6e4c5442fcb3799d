#!/usr/bin/env bash
# TAP test: the hypersdk.io CRDs and the example manifests against a real
# kube-apiserver (tests/k8s/cluster.sh).  Applies the CRDs and every manifest
# of deploy/examples and of the product README (the seed) with plain
# `kubectl apply`, reads them back, and checks that the API server keeps
# unknown fields and refuses invalid objects.
#
#   tests/k8s/crds.sh            (HYPERSDK_SEED=FILE names the README; by
#                                 default ../shared/seed/*.txt beside the repo)
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLUSTER=$HERE/cluster.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hypersdk-crds.XXXXXX")
OUT=$WORK/out

# TAP goes to fd 3, a copy of the original stdout, so that it is never caught
# by a redirection active when a signal arrives
exec 3>&1
n=0
failed=0
plan_done=

plan() {
	[[ -n $plan_done ]] && return
	plan_done=1
	echo "1..$n" >&3
}

cleanup() {
	local rc=$?
	if ((rc != 0 && failed == 0)); then
		not_ok "aborted (exit status $rc)"
	fi
	plan
	"$CLUSTER" down "$WORK/cluster" >/dev/null 2>&1 || true
	if ((failed)) || ((rc)); then
		# keep the logs of a failed run next to nothing else
		local keep
		keep=$(mktemp -d "${TMPDIR:-/tmp}/hypersdk-crds-logs.XXXXXX")
		cp "$WORK"/cluster/*.log "$keep/" 2>/dev/null || true
		echo "# logs kept in $keep" >&3
	fi
	rm -rf "$WORK"
	if ((rc == 0 && failed)); then
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

diag() { sed 's/^/#   /' "$@" >&3; }

ok() { # ok DESC: passed
	n=$((n + 1))
	echo "ok $n - $1" >&3
}

not_ok() { # not_ok DESC [FILE-with-details]
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1" >&3
	[[ -z ${2:-} || ! -s $2 ]] || diag "$2"
}

skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP ${2:-}" >&3
}

# t DESC CMD...: passes when CMD exits 0
t() {
	local desc=$1
	shift
	if "$@" >"$OUT" 2>&1; then ok "$desc"; else not_ok "$desc" "$OUT"; fi
}

k() { kubectl --kubeconfig="$WORK/cluster/kubeconfig" --cache-dir="$WORK/kube-cache" "$@"; }

# apply_clean FILE|-: kubectl apply that must succeed without any warning
apply_clean() {
	local err=$WORK/apply.err
	if ! k apply -f "$1" 2>"$err"; then
		cat "$err"
		return 1
	fi
	if [[ -s $err ]]; then
		echo "unexpected output on stderr:"
		cat "$err"
		return 1
	fi
}

# refused DESC WANT MANIFEST: kubectl apply must fail, and the API server's
# error must mention WANT (so that it was refused for the right reason)
refused() {
	local desc=$1 want=$2 manifest=$3
	if k apply -f - <<<"$manifest" >"$OUT" 2>&1; then
		echo "accepted, but should have been refused" >>"$OUT"
		not_ok "$desc" "$OUT"
	elif grep -qF -- "$want" "$OUT"; then
		ok "$desc"
	else
		echo "refused, but the error does not mention: $want" >>"$OUT"
		not_ok "$desc" "$OUT"
	fi
}

# status_refused DESC WANT KIND/NAME PATCH: a status subresource patch must fail
status_refused() {
	local desc=$1 want=$2 obj=$3 patch=$4
	if k patch "$obj" --subresource=status --type=merge -p "$patch" >"$OUT" 2>&1; then
		echo "accepted, but should have been refused" >>"$OUT"
		not_ok "$desc" "$OUT"
	elif grep -qF -- "$want" "$OUT"; then
		ok "$desc"
	else
		echo "refused, but the error does not mention: $want" >>"$OUT"
		not_ok "$desc" "$OUT"
	fi
}

# is DESC WANT CMD...: the output of CMD equals WANT
is() {
	local desc=$1 want=$2 got
	shift 2
	if got=$("$@" 2>"$OUT") && [[ $got == "$want" ]]; then
		ok "$desc"
	else
		{
			echo "want: $want"
			echo "got:  $got"
		} >>"$OUT"
		not_ok "$desc" "$OUT"
	fi
}

# header_is DESC REGEX RESOURCE: first line of `kubectl get RESOURCE` matches
header_is() {
	local desc=$1 re=$2 res=$3 out
	if out=$(k get "$res" 2>&1) && [[ $(head -n1 <<<"$out") =~ $re ]]; then
		ok "$desc"
	else
		printf '%s\n' "$out" >"$OUT"
		not_ok "$desc" "$OUT"
	fi
}

jp() { k get "$1" -o "jsonpath=$2"; }
server_version() { k version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | tail -n1; }
# The OpenAPI of a new CRD is published a moment after it is Established
# (seconds on a loaded machine): ask again, with a fresh discovery cache.
explain_has() {
	local i
	for i in $(seq 1 60); do
		rm -rf "$WORK/kube-cache"
		k explain "$1" 2>/dev/null | grep -q -- "$2" && return 0
		sleep 0.5
	done
	return 1
}
shortnames() { k get crd "$1.hypersdk.io" -o 'jsonpath={.spec.names.shortNames}'; }
# reapply_unchanged PATH: kubectl apply reports every object unchanged
reapply_unchanged() {
	local out
	out=$(k apply -f "$1") || return 1
	printf '%s\n' "$out"
	! grep -v ' unchanged$' <<<"$out"
}
# cols RESOURCE NAME N: the first N columns of `kubectl get RESOURCE NAME`
cols() { k get "$1" "$2" --no-headers | awk -v n="$3" '{ s = $1; for (i = 2; i <= n; i++) s = s " " $i; print s }'; }
category_kinds() { k get "$1" -o 'jsonpath={range .items[*]}{.kind}{"\n"}{end}' | sort -u | paste -sd' '; }
stored_bad() { k get vm,vmop,vmsnap,vmtpl -o name | grep '/bad-' || true; }
# api PATH: GET from the API server as the admin (curl, no kubectl caching)
api() {
	local url ca cert key
	url=$(sed -n 's/^APISERVER_URL=//p' "$WORK/cluster/env")
	ca=$WORK/cluster/pki/ca.crt cert=$WORK/cluster/pki/admin.crt key=$WORK/cluster/pki/admin.key
	curl -sSN --max-time 20 --retry 5 --retry-delay 1 --cacert "$ca" --cert "$cert" --key "$key" "$url$1"
}
VMS=/apis/hypersdk.io/v1alpha1/namespaces/default/virtualmachines
# watch-list stream (no resourceVersion, bookmarks allowed): initial events,
# then the initial-events-end bookmark; needs etcd's RequestWatchProgress
watch_list() {
	local out
	out=$(api "$VMS?watch=1&allowWatchBookmarks=true&timeoutSeconds=2")
	printf '%s\n' "$out" | cut -c1-300
	! grep -q '"type": *"ERROR"' <<<"$out" &&
		grep -q '"type": *"BOOKMARK".*"k8s.io/initial-events-end": *"true"' <<<"$out"
}
# a watch from the resourceVersion of a fresh list, while other resources
# move etcd's revision on, must not fail ("Too large resource version")
watch_from_list() {
	local rv out
	k create configmap "rv-bump-$RANDOM" >/dev/null
	# the list's own resourceVersion comes last (after the items')
	rv=$(api "$VMS" | grep -o '"resourceVersion": *"[0-9]*"' | tail -n1 | sed 's/.*: *//' | tr -dc 0-9)
	[[ -n $rv ]] || return 1
	out=$(api "$VMS?watch=1&allowWatchBookmarks=true&resourceVersion=$rv&timeoutSeconds=2")
	printf 'rv=%s\n%s\n' "$rv" "$out" | cut -c1-300
	! grep -q '"type": *"ERROR"' <<<"$out"
}
watch_too_old() { api "$VMS?watch=1&resourceVersion=1&timeoutSeconds=2" | grep -q '"code": *410'; }

bail() {
	echo "Bail out! $1" >&3
	exit 1
}

# ------------------------------------------------------------------ cluster

export HYPERSDK_K8S_OWNER=$$ # a watchdog stops the cluster if this script is killed
if "$CLUSTER" up "$WORK/cluster" >"$OUT" 2>&1; then
	ok "cluster up: $(grep -o 'up in [0-9]* ms' "$OUT" || true)"
else
	not_ok "cluster up" "$OUT"
	bail "no API server"
fi
is "kube-apiserver version is the pinned one" \
	"v$(sed -n 's/^K8S_VERSION=//p' "$WORK/cluster/env")" server_version

# ------------------------------------------------------------------ CRDs

cd "$REPO"
crds=(virtualmachines vmoperations vmtemplates vmsnapshots)
for c in "${crds[@]}"; do
	t "kubectl apply -f deploy/crds/hypersdk.io_$c.yaml" apply_clean "deploy/crds/hypersdk.io_$c.yaml"
done
for c in "${crds[@]}"; do
	t "CRD $c.hypersdk.io is Established" \
		k wait --for=condition=Established "crd/$c.hypersdk.io" --timeout=60s
done
# kubectl cached discovery before the CRDs existed; `kubectl get` refreshes
# it on a miss, `kubectl explain` does not
rm -rf "$WORK/kube-cache"
t "CRDs publish their schema (kubectl explain vm.spec.highAvailability)" \
	explain_has vm.spec.highAvailability evictionStrategy
is "short names of VirtualMachine: vm hvm" '["vm","hvm"]' shortnames virtualmachines
is "short name of VMOperation: vmop" '["vmop"]' shortnames vmoperations
is "short name of VMTemplate: vmtpl" '["vmtpl"]' shortnames vmtemplates
is "short name of VMSnapshot: vmsnap" '["vmsnap"]' shortnames vmsnapshots

# ------------------------------------------------------------------ examples

shopt -s nullglob
examples=(deploy/examples/*.yaml)
shopt -u nullglob
((${#examples[@]} >= 6)) || bail "deploy/examples has ${#examples[@]} manifests, want >= 6"
for f in "${examples[@]}"; do
	t "kubectl apply -f $f (strict validation, no warnings)" apply_clean "$f"
done
t "kubectl apply -f deploy/examples/ again (the README's full suite; unchanged)" \
	reapply_unchanged deploy/examples/

# the product README (seed) as written: its inline manifests are the examples
seed=${HYPERSDK_SEED:-}
if [[ -z $seed ]]; then
	for f in "$REPO"/../shared/seed/*.txt; do
		if [[ -f $f ]] && grep -q 'HyperSDK Virtual Machine Management' "$f"; then
			seed=$f
			break
		fi
	done
fi
# seed_blocks FILE DIR: write each `kubectl apply -f - <<EOF` manifest to DIR/N.yaml
seed_blocks() {
	awk -v dir="$2" '
		/kubectl apply -f - <<EOF$/ { inb = 1; i++; f = dir "/" i ".yaml"; printf "" > f; next }
		inb && /^EOF$/ { inb = 0; close(f); next }
		inb { print > f }
	' "$1"
}
if [[ -n $seed && -f $seed ]]; then
	mkdir -p "$WORK/seed"
	seed_blocks "$seed" "$WORK/seed"
	shopt -s nullglob
	blocks=("$WORK"/seed/*.yaml)
	shopt -u nullglob
	t "the README has 4 inline manifests" test "${#blocks[@]}" -eq 4
	for b in "${blocks[@]}"; do
		name=$(awk '/^metadata:/{m=1;next} m && /^  name:/{print $2; exit}' "$b")
		match=
		for f in "${examples[@]}"; do
			if cmp -s "$b" "$f"; then match=$f; fi
		done
		if [[ -n $match ]]; then
			ok "README manifest $name is $match, byte for byte"
		else
			not_ok "README manifest $name is one of deploy/examples"
		fi
		t "README manifest $name: kubectl apply -f - as written" apply_clean "$b"
	done
	# the README's "VM Spec" section: the same spec, plus the name it lacks
	awk '/^### VM Spec$/{s=1} s && /^```yaml$/{c=1;next} c && /^```$/{exit} c' "$seed" >"$WORK/seed/vmspec"
	if [[ -s $WORK/seed/vmspec ]] &&
		grep -v -e '^metadata:$' -e '^  name: my-vm-full$' deploy/examples/vm-full-spec.yaml |
		cmp -s - "$WORK/seed/vmspec"; then
		ok "README \"VM Spec\" section is deploy/examples/vm-full-spec.yaml (plus metadata.name)"
	else
		not_ok "README \"VM Spec\" section is deploy/examples/vm-full-spec.yaml (plus metadata.name)"
	fi
else
	for i in 1 2 3 4 5 6 7 8 9 10; do
		skip "README manifest check $i" "no seed README (set HYPERSDK_SEED)"
	done
fi

# ------------------------------------------------------------------ read back

is "VM my-vm reads back (cpus memory running template disk)" \
	"4 8Gi true ubuntu-22-04-template root 50Gi fast-ssd" \
	jp vm/my-vm '{.spec.cpus} {.spec.memory} {.spec.running} {.spec.image.templateRef.name} {.spec.disks[0].name} {.spec.disks[0].size} {.spec.disks[0].storageClass}'
is "VM my-vm keeps cloud-init userData as written" \
	"$(sed -n '/userData: |/,$p' deploy/examples/vm-ubuntu.yaml | sed '1d; s/^      //')" \
	jp vm/my-vm '{.spec.cloudInit.userData}'
is "VM my-vm-full reads back (carbonAware, highAvailability, bootOrder)" \
	"true 200 true Always LiveMigrate 1 ubuntu-22-04" \
	jp vm/my-vm-full '{.spec.carbonAware.enabled} {.spec.carbonAware.maxIntensity} {.spec.highAvailability.enabled} {.spec.highAvailability.restartPolicy} {.spec.highAvailability.evictionStrategy} {.spec.disks[0].bootOrder} {.spec.image.templateRef.name}'
is "VMOperation clone-my-vm reads back" \
	"my-vm clone my-vm-clone true true" \
	jp vmop/clone-my-vm '{.spec.vmRef.name} {.spec.operation} {.spec.cloneSpec.targetName} {.spec.cloneSpec.linkedClone} {.spec.cloneSpec.startAfterClone}'
is "VMOperation migrate-my-vm reads back, with defaults (offline=false postCopy=false)" \
	"migrate node-2 true 100Mbps true false false" \
	jp vmop/migrate-my-vm '{.spec.operation} {.spec.migrateSpec.targetNode} {.spec.migrateSpec.live} {.spec.migrateSpec.bandwidth} {.spec.migrateSpec.autoConverge} {.spec.migrateSpec.offline} {.spec.migrateSpec.postCopy}'
is "VMSnapshot my-vm-snapshot reads back" \
	"my-vm true true Before OS upgrade 30 true" \
	jp vmsnap/my-vm-snapshot '{.spec.vmRef.name} {.spec.includeMemory} {.spec.quiesce} {.spec.description} {.spec.retention.keepDays} {.spec.retention.autoDelete}'
is "VMTemplate ubuntu-22-04-template reads back" \
	"Ubuntu 22.04 LTS 22.04 ubuntu x86_64 2 4Gi qcow2" \
	jp vmtpl/ubuntu-22-04-template '{.spec.displayName} {.spec.version} {.spec.osInfo.distribution} {.spec.osInfo.architecture} {.spec.defaultSpec.cpus} {.spec.defaultSpec.memory} {.spec.image.format}'

# printer columns and short names
header_is "kubectl get vm: NAME PHASE CPUS MEMORY NODE AGE" '^NAME +PHASE +CPUS +MEMORY +NODE +AGE$' vm
header_is "kubectl get vmop: NAME VM OPERATION PHASE PROGRESS AGE" '^NAME +VM +OPERATION +PHASE +PROGRESS +AGE$' vmop
header_is "kubectl get vmtpl: NAME DISPLAY NAME VERSION USAGE AGE" '^NAME +DISPLAY NAME +VERSION +USAGE +AGE$' vmtpl
header_is "kubectl get vmsnap: NAME VM PHASE SIZE AGE" '^NAME +VM +PHASE +SIZE +AGE$' vmsnap
is "kubectl get vm lists my-vm with 4 CPUs and 8Gi" "my-vm 4 8Gi" cols vm my-vm 3
for sn in vm hvm virtualmachines vmop vmtpl vmsnap; do
	case $sn in
	vm | hvm | virtualmachines) want="my-vm my-vm-full" ;;
	vmop) want="clone-my-vm migrate-my-vm" ;;
	vmtpl) want="ubuntu-22-04-template" ;;
	vmsnap) want="my-vm-snapshot" ;;
	esac
	is "kubectl get $sn" "$want" k get "$sn" -o 'jsonpath={.items[*].metadata.name}'
done
is "kubectl get hypersdk (category) lists all four kinds" \
	"VMOperation VMSnapshot VMTemplate VirtualMachine" category_kinds hypersdk

# ------------------------------------------------------------------ watches

t "watch-list stream: initial events and the initial-events-end bookmark" watch_list
t "watch from a list's resourceVersion while etcd moves on: no error" watch_from_list
t "watch from a too old resourceVersion: 410 Expired" watch_too_old

# ------------------------------------------------------------------ defaults

t "a VM with only a name is accepted" apply_clean - <<'EOF'
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: minimal
spec: {}
EOF
is "its defaults: cpus=1 memory=256Mi running=false" "1 256Mi false" \
	jp hvm/minimal '{.spec.cpus} {.spec.memory} {.spec.running}'
t "a VM with every documented field is accepted" apply_clean - <<'EOF'
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: everything
spec:
  cpus: 2
  maxCpus: 8
  memory: "1.5G"
  maxMemory: 8589934592
  running: false
  disks:
    - name: root
      size: "512M"
      storageClass: local
      bootOrder: 1
    - name: data
      size: 1073741824
  networks:
    - name: default
  image:
    templateRef:
      name: ubuntu-22-04-template
      namespace: default
      version: "22.04"
    source: /var/lib/hypersdk/images/ubuntu.qcow2
    checksum: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  cloudInit:
    userData: "#cloud-config\n"
    networkData: "version: 2\n"
    metaData: "instance-id: everything\n"
  carbonAware:
    enabled: true
    maxIntensity: 150
  highAvailability:
    enabled: true
  machineType: q35
  firmware: uefi
  guestAgent: true
  kernelBoot:
    kernel: /boot/vmlinuz
    initrd: /boot/initrd.img
    cmdline: console=ttyS0
  nodeSelector:
    kubernetes.io/hostname: node-1
  labels:
    tier: web
EOF
is "its defaults: network type pod-network, HA restartPolicy Always and evictionStrategy LiveMigrate" \
	"pod-network Always LiveMigrate" \
	jp vm/everything '{.spec.networks[0].type} {.spec.highAvailability.restartPolicy} {.spec.highAvailability.evictionStrategy}'

# ------------------------------------------------------------------ unknown fields

t "a VM with unknown spec fields is accepted without warnings" apply_clean - <<'EOF'
apiVersion: hypersdk.io/v1alpha1
kind: VirtualMachine
metadata:
  name: future
spec:
  cpus: 1
  memory: "64Mi"
  futureField:
    nested: [1, 2, 3]
    flag: true
  carbonAware:
    enabled: true
    region: eu-west
EOF
is "unknown spec fields are kept (spec.futureField, spec.carbonAware.region)" \
	'{"flag":true,"nested":[1,2,3]} eu-west' \
	jp vm/future '{.spec.futureField} {.spec.carbonAware.region}'
t "unknown status fields are kept" \
	k patch vm/future --subresource=status --type=merge \
	-p '{"status":{"phase":"Running","nodeName":"node-1","qemuPid":4242,"vnc":{"address":"127.0.0.1","port":5900},"resources":{"cpuTime":"12s"},"extra":{"x":1}}}'
is "status reads back with its unknown fields" "Running node-1 4242 5900 12s 1" \
	jp vm/future '{.status.phase} {.status.nodeName} {.status.qemuPid} {.status.vnc.port} {.status.resources.cpuTime} {.status.extra.x}'

# ------------------------------------------------------------------ status subresource

t "status subresource: phase Running and nodeName on my-vm" \
	k patch vm/my-vm --subresource=status --type=merge \
	-p '{"status":{"phase":"Running","nodeName":"node-1","startTime":"2026-01-02T03:04:05Z","conditions":[{"type":"Ready","status":"True","reason":"Started","message":"running","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}'
is "kubectl get vm shows phase and node columns" "my-vm Running 4 8Gi node-1" cols vm my-vm 5
t "a status in a plain update is ignored (status is a subresource)" \
	k patch vm/my-vm --type=merge -p '{"status":{"phase":"Failed"}}'
is "... and the phase stays Running" "Running" jp vm/my-vm '{.status.phase}'
t "status subresource: VMOperation progress" \
	k patch vmop/migrate-my-vm --subresource=status --type=merge \
	-p '{"status":{"phase":"Running","progress":42,"message":"copying memory","startTime":"2026-01-02T03:04:05Z"}}'
is "kubectl get vmop shows phase and progress" "migrate-my-vm my-vm migrate Running 42" \
	cols vmop migrate-my-vm 5
t "status subresource: VMSnapshot Ready with size and chain" \
	k patch vmsnap/my-vm-snapshot --subresource=status --type=merge \
	-p '{"status":{"phase":"Ready","size":"2Gi","readyToRestore":true,"snapshotChain":["base","my-vm-snapshot"],"vmState":"Running","creationTime":"2026-01-02T03:04:05Z"}}'
is "kubectl get vmsnap shows phase and size" "my-vm-snapshot my-vm Ready 2Gi" \
	cols vmsnap my-vm-snapshot 4
t "status subresource: VMTemplate usageCount" \
	k patch vmtpl/ubuntu-22-04-template --subresource=status --type=merge \
	-p '{"status":{"phase":"Ready","usageCount":2,"size":"2361393152"}}'
is "kubectl get vmtpl shows display name, version and usage" \
	"ubuntu-22-04-template Ubuntu 22.04 LTS 22.04 2" cols vmtpl ubuntu-22-04-template 6

# ------------------------------------------------------------------ refused

vm() { # vm NAME SPEC-LINES: a VirtualMachine manifest
	printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: %s\nspec:\n%s\n' "$1" "$2"
}
op() { # op NAME SPEC-LINES: a VMOperation manifest
	printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VMOperation\nmetadata:\n  name: %s\nspec:\n%s\n' "$1" "$2"
}
refused "refused: VM with cpus 0" "spec.cpus" "$(vm bad-cpus '  cpus: 0')"
refused "refused: VM with memory \"lots\"" "spec.memory" "$(vm bad-mem '  memory: lots')"
refused "refused: VM with memory \"-1Gi\"" "spec.memory" "$(vm bad-mem2 '  memory: "-1Gi"')"
refused "refused: VM with cpus \"four\"" "spec.cpus" "$(vm bad-cpus2 '  cpus: four')"
refused "refused: VM with disk size \"big\"" "spec.disks[0].size" \
	"$(vm bad-disk $'  disks:\n    - name: root\n      size: big')"
refused "refused: VM with bootOrder 0" "bootOrder" \
	"$(vm bad-boot $'  disks:\n    - name: root\n      bootOrder: 0')"
refused "refused: VM with two disks of one name" "spec.disks[1]" \
	"$(vm dup-disk $'  disks:\n    - name: root\n    - name: root')"
refused "refused: VM with restartPolicy Sometimes" "spec.highAvailability.restartPolicy" \
	"$(vm bad-ha $'  highAvailability:\n    enabled: true\n    restartPolicy: Sometimes')"
refused "refused: VM with evictionStrategy Teleport" "spec.highAvailability.evictionStrategy" \
	"$(vm bad-ev $'  highAvailability:\n    evictionStrategy: Teleport')"
refused "refused: VM with firmware efi" "spec.firmware" "$(vm bad-fw '  firmware: efi')"
refused "refused: VM with maxCpus < cpus" "maxCpus" "$(vm bad-max $'  cpus: 4\n  maxCpus: 2')"
refused "refused: VM with a relative kernel path" "spec.kernelBoot.kernel" \
	"$(vm bad-kernel $'  kernelBoot:\n    kernel: vmlinuz')"
refused "refused: VM with running \"maybe\"" "spec.running" "$(vm bad-run '  running: maybe')"
refused "refused: VMOperation with an unknown operation" "spec.operation" \
	"$(op bad-op $'  vmRef:\n    name: my-vm\n  operation: explode')"
refused "refused: VMOperation without vmRef" "spec.vmRef" "$(op bad-op2 '  operation: start')"
refused "refused: VMOperation clone without cloneSpec" "cloneSpec" \
	"$(op bad-clone $'  vmRef:\n    name: my-vm\n  operation: clone')"
refused "refused: VMOperation resize without cpus or memory" "resizeSpec" \
	"$(op bad-resize $'  vmRef:\n    name: my-vm\n  operation: resize\n  resizeSpec: {}')"
refused "refused: VMOperation with bandwidth \"fast\"" "spec.migrateSpec.bandwidth" \
	"$(op bad-bw $'  vmRef:\n    name: my-vm\n  operation: migrate\n  migrateSpec:\n    bandwidth: fast')"
refused "refused: VMOperation with timeout \"soon\"" "spec.timeout" \
	"$(op bad-timeout $'  vmRef:\n    name: my-vm\n  operation: stop\n  timeout: soon')"
refused "refused: VMSnapshot without vmRef" "spec.vmRef" \
	"$(printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VMSnapshot\nmetadata:\n  name: bad-snap\nspec:\n  includeMemory: true\n')"
refused "refused: VMTemplate with image format exe" "spec.image.format" \
	"$(printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VMTemplate\nmetadata:\n  name: bad-tpl\nspec:\n  image:\n    format: exe\n')"
status_refused "refused: VM status phase Exploded (status subresource)" "status.phase" \
	vm/my-vm '{"status":{"phase":"Exploded"}}'
status_refused "refused: VMOperation status progress 101" "status.progress" \
	vmop/migrate-my-vm '{"status":{"progress":101}}'
status_refused "refused: VMOperation status phase Done" "status.phase" \
	vmop/migrate-my-vm '{"status":{"phase":"Done"}}'
status_refused "refused: VMSnapshot status phase Broken" "status.phase" \
	vmsnap/my-vm-snapshot '{"status":{"phase":"Broken"}}'
is "nothing refused was stored" "" stored_bad
is "the VM phase is still Running after the refused status" "Running" jp vm/my-vm '{.status.phase}'

# ------------------------------------------------------------------ teardown

t "delete all example objects" k delete -f deploy/examples/ --wait=true --timeout=60s
pids="$(cat "$WORK/cluster/kube-apiserver.pid" "$WORK/cluster/etcd.pid" 2>/dev/null | tr '\n' ' ')"
t "cluster down" "$CLUSTER" down "$WORK/cluster"
gone() {
	local p
	for p in $pids; do
		# a zombie (exited, not yet reaped by init) counts as gone
		if [[ -r /proc/$p/status ]] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
			echo "pid $p still runs: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
			return 1
		fi
	done
}
t "no etcd or kube-apiserver left running" gone

echo "# $((n - failed)) passed, $failed failed" >&3
