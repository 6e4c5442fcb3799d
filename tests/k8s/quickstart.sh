#!/usr/bin/env bash
# The README's Quick Start for a cluster, on a real node: a kubelet with
# containerd and runc (tests/k8s/cluster.sh node) runs the daemon's pod from
# the image deploy/image/build.sh makes.  Twice, each on a fresh cluster:
#
#   helm:    kubectl apply -f deploy/crds/
#            helm install hypersdk-operator ./deploy/helm/hypersdk-operator \
#              --namespace hypersdk-system --create-namespace
#   kubectl: kubectl apply -f deploy/crds/ ; kubectl apply -f deploy/operator/
#
# then kubectl apply -f deploy/examples/vm-ubuntu.yaml (its template's image
# served on loopback), a Running VM in libvirt and in the host's tree, the
# pod's own token checked, the probes (a stopped daemon: NotReady, then
# restarted by the kubelet, the tree back, the VM untouched), and the
# uninstall: the tree unmounted, the VM still running.
#
# Node-local settings an operator would set differ from the files as
# written: the tree and the store in this run's folder (not the host's
# /run/hypersdk and /var/lib/hypersdk), the dashboard on a free port, and
# the loopback image server allowed (daemon and admission policy).
# VM names carry this run's prefix, as in lifecycle.sh.
. "$(dirname "$0")/lib.sh"

NS=hypersdk-system
EX=$TOP/deploy/examples
CHART=$TOP/deploy/helm/hypersdk-operator
# The node's "/run": the tree's folder is below it, as /run/hypersdk is.
HOSTRUN=$T/run
TREE=$HOSTRUN/hypersdk
HTTP_PID=
CTR=
export HELM_CACHE_HOME=$T/helm/cache HELM_CONFIG_HOME=$T/helm/config HELM_DATA_HOME=$T/helm/data

jp() { k get "$@" 2>/dev/null; }
pod() { k -n $NS get pod -l app.kubernetes.io/name=hypersdk-mountd -o "jsonpath=$1" 2>/dev/null; }
pod_ready() { [ "$(pod '{.items[0].status.conditions[?(@.type=="Ready")].status}')" = "$1" ]; }
vm_phase_is() { [ "$(head -n 1 "$TREE/vms/$1/status" 2>/dev/null | cut -d' ' -f2)" = "$2" ]; }
# timed DESC CMD...: check DESC CMD, with the time CMD took
timed() {
	local d=$1 t=$SECONDS
	shift
	if "$@"; then ok "$d # $((SECONDS - t))s"; else not_ok "$d # $((SECONDS - t))s"; fi
}
restarts() { pod '{.items[0].status.containerStatuses[0].restartCount}'; }
restarted() { [ "$(restarts)" -gt "$1" ]; }
no_pod() { [ -z "$(pod '{.items[*].metadata.name}')" ]; }
phase_of() { jp "$1" "$2" -o jsonpath='{.status.phase}'; }
phase_of_is() { [ "$(phase_of "$1" "$2")" = "$3" ]; }
daemon_pid() { pgrep -f "^/usr/bin/hypersdk-mountd --foreground --node $NODE " | head -n 1; }
ctr_() { ctr --address "$CTR" -n k8s.io "$@"; }

diagnose() {
	echo "# --- pods"
	k -n $NS get pods -o wide 2>&1 | sed 's/^/#   /'
	k -n $NS describe pods 2>&1 | sed -n '/^Events:/,$p' | tail -n 15 | sed 's/^/#   /'
	echo "# --- daemon's log"
	find "$KC/node/pod-logs" -name '*.log' -path '*mountd*' -exec tail -n 25 {} + 2>/dev/null | sed 's/^/#   /'
	echo "# --- kubelet"
	grep -E '^E' "$KC/node/kubelet.log" 2>/dev/null | tail -n 8 | sed 's/^/#   /'
}

quickstart_cleanup() {
	[ "$tap_failed" -gt 0 ] && diagnose
	[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null
	"$TOP/tests/k8s/cluster.sh" node down "$KC" >/dev/null 2>&1
	fusermount3 -uz "$TREE" 2>/dev/null
	umount -l "$HOSTRUN" 2>/dev/null
}
trap 'quickstart_cleanup; cluster_down; cleanup' EXIT

[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }

# ---------------------------------------------------------------- once

HELM=$("$TOP/tests/k8s/helm.sh" path) || { not_ok "helm builds"; done_testing; }
t0=$SECONDS
IMAGE=$("$TOP/deploy/image/build.sh" --out "$T/image.oci.tar" 2>"$T/image.log" | tail -n 1)
check "the image is made without a registry (deploy/image/build.sh) # $((SECONDS - t0))s" test -s "$IMAGE"
[ -s "$IMAGE" ] || { sed 's/^/# /' "$T/image.log" | tail -n 20; done_testing; }
REF=$(sed -n 's/^[[:space:]]*image: //p' "$TOP/deploy/operator/20-daemonset.yaml")

# The template's image, served on loopback (the pods share the node's network).
mkdir -p "$T/www"
qemu-img create -q -f qcow2 "$T/www/jammy.img" 1G
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$PORT/jammy.img"
SUM=$(sha256sum "$T/www/jammy.img" | cut -d' ' -f1)
SRC=http://127.0.0.1:$PORT/

# Bidirectional propagation needs the host folder on a shared mount.
mkdir -p "$HOSTRUN"
mount --bind "$HOSTRUN" "$HOSTRUN" && mount --make-shared "$HOSTRUN"

# ---------------------------------------------------------------- each run

# node_up: a fresh cluster (CRDs applied: step 1) and its node, the image imported
node_up() {
	local t0=$SECONDS
	cluster_up "1. kubectl apply -f deploy/crds/ ($1)"
	if ! "$TOP/tests/k8s/cluster.sh" node up "$KC" "$NODE" >"$T/node.out" 2>&1; then
		not_ok "a kubelet node is Ready" "$(tail -n 20 "$T/node.out")"
		done_testing
	fi
	ok "a real node ($NODE: kubelet, containerd, runc) is Ready # $((SECONDS - t0))s"
	CTR=$(sed -n 's/^CONTAINERD_ADDRESS=//p' "$KC/node/env")
	ctr_ images import "$IMAGE" >/dev/null
	is "the image is imported as $REF" "$(ctr_ images ls -q | grep -Fx "$REF")" "$REF"
}

# the operator's DaemonSet is up: one pod, Ready, on our node
pod_up() {
	local t0=$SECONDS
	k -n $NS rollout status ds/hypersdk-mountd --timeout=180s >"$T/rollout.out" 2>&1
	check "2. the daemon's pod is Ready on node $NODE # $((SECONDS - t0))s" \
		test "$(pod '{.items[0].spec.nodeName}')/$(pod '{.items[0].status.phase}')" = "$NODE/Running"
	check "   and Ready: hypersdk-mountd --probe ready says ok" pod_ready True
	[ "$tap_failed" -eq 0 ] || done_testing
	check "   its tree is on the host at the chart's mount path" wait_for 10 test -e "$TREE/vms/ctl"
	check "   the pod runs with its ServiceAccount, no kubeconfig" \
		test "$(pod '{.items[0].spec.serviceAccountName}')/$(pod '{.items[0].spec.containers[0].args}' | grep -c kubeconfig)" = "hypersdk-mountd/0"
}

# The pod's own token, read on the host from the kubelet's projected volume.
pod_token() {
	find "$KC/node/kubelet/pods/$(pod '{.items[0].metadata.uid}')/volumes/kubernetes.io~projected" \
		-path '*/token' 2>/dev/null | head -n 1
}

rbac_live() {
	local tok can q
	tok=$(cat "$(pod_token)" 2>/dev/null)
	check "   the pod has a service-account token" test -n "$tok"
	kt() { kubectl --kubeconfig=/dev/null --server="$APISERVER_URL" \
		--certificate-authority="$K8S_CA" --token="$tok" "$@" 2>/dev/null; }
	is "   it is hypersdk-mountd's" "$(kt auth whoami -o 'jsonpath={.status.userInfo.username}')" \
		"system:serviceaccount:$NS:hypersdk-mountd"
	can=""
	for q in "list virtualmachines.hypersdk.io -n default" "patch virtualmachines.hypersdk.io --subresource=status -n default" \
		"create leases.coordination.k8s.io -n default" "watch vmtemplates.hypersdk.io -n default"; do
		# shellcheck disable=SC2086
		can+="$(kt auth can-i $q) "
	done
	is "   it may do what the daemon does" "$can" "yes yes yes yes "
	can=""
	for q in "get secrets -n $NS" "list pods -n default" "list virtualmachines.hypersdk.io --all-namespaces" \
		"create pods/exec -n $NS" "patch daemonsets.apps -n $NS" "delete nodes"; do
		# shellcheck disable=SC2086
		can+="$(kt auth can-i $q) "
	done
	is "   and nothing more" "$can" "no no no no no no "
}

# 3. the seed's VM, from its template
vm_up() {
	local vm=$1 t0=$SECONDS
	sed -e "s/name: ubuntu-22-04-template\$/name: ${P}tmpl/" \
		-e "s|^\( *\)source: https://cloud-images.ubuntu.com/.*|\1source: ${SRC}jammy.img\n\1checksum: sha256:$SUM|" \
		"$EX/vmtemplate-ubuntu.yaml" | k apply -f - >/dev/null
	wait_for 60 phase_of_is vmtpl "${P}tmpl" Ready
	is "   the template's image is imported in the pod" "$(phase_of vmtpl "${P}tmpl")" Ready
	sed -e "s/name: my-vm\$/name: $vm/" -e "s/name: ubuntu-22-04-template\$/name: ${P}tmpl/" \
		"$EX/vm-ubuntu.yaml" | k apply -f - >/dev/null
	wait_for 120 phase_of_is vm "$vm" Running
	is "3. kubectl apply -f deploy/examples/vm-ubuntu.yaml: Running # $((SECONDS - t0))s" \
		"$(jp vm "$vm" -o jsonpath='{.status.phase}/{.status.nodeName}')" "Running/$NODE"
	is "   running in libvirt" "$(domstate "$vm")" running
	wait_for 10 vm_phase_is "$vm" Running
	is "   cat <mount>/vms/$vm/status on the host: Running" \
		"$(head -n 1 "$TREE/vms/$vm/status" 2>/dev/null | cut -d' ' -f2)" Running
}

# A daemon that stops answering: NotReady, then the kubelet restarts it.
probes() {
	local vm=$1 pid restarts
	pid=$(daemon_pid)
	restarts=$(restarts)
	kill -STOP "$pid"
	timed "   a stopped daemon (its mount hangs): the pod turns NotReady" wait_for 40 pod_ready False
	timed "   liveness: the kubelet restarts it" wait_for 120 restarted "$restarts"
	kill -CONT "$pid" 2>/dev/null
	timed "   Ready again" wait_for 90 pod_ready True
	check "   the tree is back on the host" wait_for 10 vm_phase_is "$vm" Running
	is "   the VM ran on through it" "$(domstate "$vm")" running
}

uninstalled() { # the pod is gone, the tree unmounted, the VM still running
	local vm=$1
	timed "   the pod is gone" wait_for 90 no_pod
	check "   the tree is unmounted cleanly" wait_for 10 bash -c "! grep -q ' $TREE fuse' /proc/self/mounts"
	is "   the VM is still running in libvirt" "$(domstate "$vm")" running
}

# Between runs: the first run's VM and pool go, a new cluster comes.
reset_run() {
	drop_libvirt
	"$TOP/tests/k8s/cluster.sh" node down "$KC" >/dev/null 2>&1
	cluster_down
	rm -rf "$T/state"
}

# ---- with Helm
node_up helm
# shellcheck disable=SC1091
. "$KC/env"
t0=$SECONDS
"$HELM" --kubeconfig "$KC/kubeconfig" install hypersdk-operator "$CHART" \
	--namespace $NS --create-namespace \
	--set mountPath="$TREE" --set stateDir="$T/state" --set http.listen=127.0.0.1:0 \
	--set "extraArgs={--import-allow,$SRC}" --set "admission.imageSources.local=$SRC" \
	>"$T/helm.out" 2>&1
check "2. helm install hypersdk-operator ./deploy/helm/hypersdk-operator # $((SECONDS - t0))s" \
	test $? -eq 0
pod_up
rbac_live
vm_up "${P}my-vm"
probes "${P}my-vm"
t0=$SECONDS
"$HELM" --kubeconfig "$KC/kubeconfig" uninstall hypersdk-operator --namespace $NS --wait \
	>"$T/helm.out" 2>&1
check "4. helm uninstall # $((SECONDS - t0))s" test $? -eq 0
uninstalled "${P}my-vm"
reset_run

# ---- with kubectl
node_up kubectl
# shellcheck disable=SC1091
. "$KC/env"
mkdir -p "$T/operator"
cp "$TOP"/deploy/operator/*.yaml "$T/operator/"
sed -i -e "s|path: /run\$|path: $HOSTRUN|" -e "s|/host/run|/host$HOSTRUN|g" -e "s|/var/lib/hypersdk|$T/state|g" \
	-e "s|- 127.0.0.1:8080|- 127.0.0.1:0\n            - --import-allow\n            - $SRC|" \
	"$T/operator/20-daemonset.yaml"
sed -i -e "s|^  ubuntu: https://cloud-images.ubuntu.com/|&\n  local: $SRC|" "$T/operator/30-admission.yaml"
k apply -f "$T/operator/" >"$T/apply.out" 2>&1
check "2. kubectl apply -f deploy/operator/" test $? -eq 0
pod_up
vm_up "${P}my-vm2"
t0=$SECONDS
k delete -f "$T/operator/" --wait=true >"$T/apply.out" 2>&1
check "4. kubectl delete -f deploy/operator/ # $((SECONDS - t0))s" test $? -eq 0
uninstalled "${P}my-vm2"

done_testing
