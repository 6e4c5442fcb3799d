# Shared by the cluster-mode tests and benches: tests/fs/lib.sh (a private
# daemon, TAP helpers, cleanup) plus a private kube-apiserver in $T/cluster.
# Source it; the caller's EXIT trap should call cluster_down.
. "$(dirname "${BASH_SOURCE[0]}")/../fs/lib.sh"

KC=$T/cluster
k() { kubectl --kubeconfig="$KC/kubeconfig" --cache-dir="$T/kcache" "$@"; }
cluster_down() { "$TOP/tests/k8s/cluster.sh" down "$KC" >/dev/null 2>&1; }

# cluster_up [DESC]: start it, install the CRDs (two TAP lines); stop the
# test when the API server does not come up.
cluster_up() {
	HYPERSDK_K8S_OWNER=$$ "$TOP/tests/k8s/cluster.sh" up "$KC" >"$T/cluster.out" 2>&1 ||
		{ not_ok "API server starts" "$(tail -n 20 "$T/cluster.out")"; done_testing; }
	ok "a real kube-apiserver is up"
	k apply -f "$TOP/deploy/crds/" >/dev/null &&
		k wait --for condition=established crd --all --timeout=60s >/dev/null
	check "${1:-CRDs installed}" test $? -eq 0
}

# After cluster_up: API (the VirtualMachines of "default") and api (curl
# with the admin client certificate), for benches that skip kubectl.
cluster_api() {
	# shellcheck disable=SC1091
	. "$KC/env"
	API=$APISERVER_URL/apis/hypersdk.io/v1alpha1/namespaces/default/virtualmachines
}
api() { curl -sS --max-time 10 --cacert "$K8S_CA" --cert "$K8S_CLIENT_CERT" --key "$K8S_CLIENT_KEY" "$@"; }

# vm_yaml NAME [OPTION...]: a running VirtualMachine of 1 CPU and one 64Mi
# root disk. Options: node=NODE (its nodeSelector), class=CLASS (the disk's
# storageClass), memory=QUANTITY (64Mi), ha (highAvailability enabled),
# ha=FIELD (and that "key: value" under it); any other word is appended
# under spec as it is, indentation included.
vm_yaml() {
	local name=$1 o mem=64Mi class= node= ha= hafield= extra=
	shift
	for o in "$@"; do
		case $o in
		node=*) node=${o#node=} ;;
		class=*) class=${o#class=} ;;
		memory=*) mem=${o#memory=} ;;
		ha) ha=1 ;;
		ha=*) ha=1 hafield=${o#ha=} ;;
		*) extra+=$o$'\n' ;;
		esac
	done
	printf 'apiVersion: hypersdk.io/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: %s\n' "$name"
	printf 'spec:\n  cpus: 1\n  memory: %s\n  running: true\n' "$mem"
	printf '  disks:\n  - name: root\n    size: 64Mi\n'
	[ -z "$class" ] || printf '    storageClass: %s\n' "$class"
	[ -z "$node" ] || printf '  nodeSelector:\n    hypersdk.io/node: %s\n' "$node"
	[ -z "$ha" ] || printf '  highAvailability:\n    enabled: true\n'
	[ -z "$hafield" ] || printf '    %s\n' "$hafield"
	printf '%s' "$extra"
}
