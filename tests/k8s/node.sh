# A real worker node for the test cluster of tests/k8s/cluster.sh: Debian's
# containerd and runc, and the upstream kubelet, kube-scheduler and
# kube-controller-manager built beside kube-apiserver.  Sourced by
# cluster.sh, which it serves as
#
#   tests/k8s/cluster.sh node up DIR NAME   a node NAME for the cluster of DIR
#   tests/k8s/cluster.sh node down DIR      stop it and undo what it changed
#
# `cluster.sh down DIR` takes the node down first.  State lives in DIR/node;
# DIR/node/env tells a test the node's name and containerd's socket.
#
# What the node changes on the host, and `node down` undoes:
#   - sysctls the kubelet sets (vm.overcommit_memory, kernel.panic,
#     kernel.panic_on_oops): saved before, restored after;
#   - folders the kubelet and containerd make outside DIR whatever their
#     flags say (/var/lib/kubelet, /var/log/pods, /var/log/containers,
#     /run/containerd, /var/lib/cni, /run/netns): removed when they were not
#     there before;
#   - the cgroups kubepods and k8s.io (every v1 hierarchy, or the v2 root),
#     emptied of the node's pods and removed when they were not there before;
#   - the address 10.0.0.1/32 on lo and a forwarder on 10.0.0.1:443 to the
#     API server: the `kubernetes` Service, which kube-proxy would route,
#     for pods with hostNetwork (KUBERNETES_SERVICE_HOST is 10.0.0.1).
# Containers are killed with their shims, mounts under DIR/node detached.
# See docs/k8s-test-cluster.md ("A real node").

NODE_CACHE=${HYPERSDK_NODE_CACHE:-/var/cache/hypersdk/node}
PAUSE_REF=localhost/hypersdk-pause:1
SERVICE_IP=10.0.0.1
NODE_SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops"
NODE_HOST_DIRS="/var/lib/kubelet /var/log/pods /var/log/containers /run/containerd /var/lib/cni /run/netns"

# The cgroups of the node's containers: the kubelet's kubepods, containerd's
# namespace k8s.io, in every v1 hierarchy or at the v2 root.
node_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/kubepods /sys/fs/cgroup/k8s.io; do
		[[ -d $d ]] && echo "$d"
	done
	return 0
}

# The pause image: a static program that waits for a signal, packed by
# deploy/image/build.sh (nothing can be pulled here).
pause_image() {
	local out=$NODE_CACHE/pause.oci.tar root
	[[ -s $out ]] && { echo "$out"; return 0; }
	mkdir -p "$NODE_CACHE"
	root=$(mktemp -d "$NODE_CACHE/pause.XXXXXX")
	gcc -static -Os -s -o "$root/pause" "$HERE/pause.c" ||
		{ rm -rf "$root"; die "cannot build the pause program (gcc -static)"; }
	"$HERE/../../deploy/image/build.sh" pack "$root" "$PAUSE_REF" "$out.tmp" /pause >/dev/null ||
		{ rm -rf "$root"; die "cannot pack the pause image"; }
	rm -rf "$root"
	mv -f "$out.tmp" "$out"
	echo "$out"
}

node_save_host() {
	local nd=$1 s d
	[[ -f $nd/sysctl.saved ]] && return 0
	for s in $NODE_SYSCTLS; do
		echo "$s=$(sysctl -n "$s")"
	done >"$nd/sysctl.saved.tmp"
	{
		for d in $NODE_HOST_DIRS; do
			[[ -e $d ]] && echo "$d"
		done
		node_cgroups
	} >"$nd/host-dirs.saved"
	mv "$nd/sysctl.saved.tmp" "$nd/sysctl.saved"
}

# The kubelet's client certificate, for the Node authorizer, and its kubeconfig.
node_certs() {
	local dir=$1 nd=$2 name=$3
	sign_cert "$dir/pki" "$nd/kubelet" "/O=system:nodes/CN=system:node:$name" "$CLIENT_EXT"
	write_kubeconfig "$dir" "$APISERVER_URL" "$nd/kubelet.crt" "$nd/kubelet.key" \
		"$nd/kubelet.kubeconfig"
}

node_containerd_config() {
	local nd=$1
	mkdir -p "$nd/containerd" "$nd/cni/net.d"
	cat >"$nd/cni/net.d/10-loopback.conflist" <<'EOF'
{"cniVersion": "0.4.0", "name": "hypersdk-test", "plugins": [{"type": "loopback"}]}
EOF
	# restrict_oom_score_adj: root here may lack CAP_SYS_RESOURCE, and runc
	# then fails every sandbox ("can't get final child's PID from pipe").
	cat >"$nd/containerd/config.toml" <<EOF
version = 2
root = "$nd/containerd/root"
state = "$nd/containerd/state"
[grpc]
  address = "$nd/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$nd/cni/net.d"
EOF
}

node_kubelet_config() {
	local dir=$1 nd=$2 port=$3
	local driver=cgroupfs
	cat >"$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$dir/pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: $driver
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: "unix://$nd/containerd/containerd.sock"
imageServiceEndpoint: "unix://$nd/containerd/containerd.sock"
# The node's only images are imported, never pulled: never collect them,
# and never evict for a full test disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
serializeImagePulls: false
podLogsDir: "$nd/pod-logs"
EOF
}


node_ready() { # kubeconfig name
	[[ $(kubectl --kubeconfig="$1" get node "$2" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# The `kubernetes` Service for pods on the host network: kube-proxy's job,
# done by a forwarder (the API server listens on 127.0.0.1 only).
node_service() {
	local nd=$1 port=$2
	if ! ip -4 addr show dev lo | grep -q " $SERVICE_IP/"; then
		ip addr add "$SERVICE_IP/32" dev lo || die "cannot add $SERVICE_IP to lo"
		touch "$nd/lo-address.added"
	fi
	detached "$nd/service-proxy.pid" "$nd/service-proxy.log" socat \
		"TCP-LISTEN:443,bind=$SERVICE_IP,reuseaddr,fork" "TCP:127.0.0.1:$port"
}

cmd_node_up() {
	local dir name nd kport t0 ctr_addr
	t0=$(date +%s%N)
	dir=$(abs_dir "$1")
	name=${2:-}
	[[ -n $name ]] || die "usage: $0 node up DIR NAME"
	[[ -f $dir/env ]] || die "no cluster in $dir (cluster.sh up DIR first)"
	cmd_node_down "$dir"
	# shellcheck disable=SC1091
	. "$dir/env"
	nd=$dir/node
	mkdir -p "$nd"
	for c in kubelet kube-scheduler kube-controller-manager; do
		[[ -x $(node_bin "$c") ]] || die "$c not built (cluster.sh build)"
	done
	for c in containerd runc ctr socat; do
		command -v "$c" >/dev/null || die "$c is not installed (scripts/deps.sh test)"
	done
	node_save_host "$nd"
	node_certs "$dir" "$nd" "$name"
	node_containerd_config "$nd"
	ctr_addr=$nd/containerd/containerd.sock
	detached "$nd/containerd.pid" "$nd/containerd.log" containerd --config "$nd/containerd/config.toml"
	wait_for containerd "$nd/containerd.pid" "$nd/containerd.log" \
		ctr --address "$ctr_addr" version || die "containerd did not start"
	ctr --address "$ctr_addr" -n k8s.io images import "$(pause_image)" >/dev/null ||
		die "cannot import the pause image"
	node_service "$nd" "$APISERVER_PORT"
	detached "$nd/kube-controller-manager.pid" "$nd/kube-controller-manager.log" \
		"$(node_bin kube-controller-manager)" --kubeconfig="$dir/kubeconfig" \
		--leader-elect=false --secure-port=0 --root-ca-file="$dir/pki/ca.crt" \
		--controllers=daemonset,garbagecollector,namespace,nodelifecycle,serviceaccount,root-ca-cert-publisher
	detached "$nd/kube-scheduler.pid" "$nd/kube-scheduler.log" "$(node_bin kube-scheduler)" \
		--kubeconfig="$dir/kubeconfig" --leader-elect=false --secure-port=0
	kport=$(free_port)
	node_kubelet_config "$dir" "$nd" "$kport"
	mkdir -p "$nd/kubelet" "$nd/pod-logs"
	detached "$nd/kubelet.pid" "$nd/kubelet.log" "$(node_bin kubelet)" --config="$nd/kubelet.yaml" \
		--kubeconfig="$nd/kubelet.kubeconfig" --root-dir="$nd/kubelet" \
		--cert-dir="$nd/kubelet/pki" --hostname-override="$name"
	cat >"$nd/env" <<EOF
NODE_NAME=$name
CONTAINERD_ADDRESS=$ctr_addr
KUBELET_PORT=$kport
EOF
	wait_for kubelet "$nd/kubelet.pid" "$nd/kubelet.log" \
		node_ready "$dir/kubeconfig" "$name" || die "node $name not Ready; see $nd/*.log"
	log "node $name Ready in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# Every container of the node, killed with its shim: the kubelet leaves
# them running when it stops.
node_kill_containers() {
	local nd=$1 addr=$1/containerd/containerd.sock t p
	if [[ -S $addr ]] && pid_alive "$nd/containerd.pid" "$nd/containerd"; then
		for t in $(ctr --address "$addr" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$addr" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
		done
	fi
	for p in $(pgrep -f "containerd-shim.*-address $addr" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null || true
	done
	# a shim's children (runc's init, the pod's processes) go with their cgroups
	node_kill_cgroups "$nd"
}

# Kill what is left in the containers' cgroups (those the node made: a
# containerd of the host's own keeps its k8s.io).
node_kill_cgroups() {
	local nd=$1 root p i
	[[ -f $nd/host-dirs.saved ]] || return 0
	for root in $(node_cgroups); do
		grep -qxF "$root" "$nd/host-dirs.saved" && continue
		for ((i = 0; i < 20; i++)); do
			p=$(find "$root" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
			[[ -n $p ]] || break
			# shellcheck disable=SC2086 # one pid per word
			kill -KILL $p 2>/dev/null || true
			sleep 0.2
		done
	done
}

# The cgroup folders the node made, deepest first.
node_remove_cgroups() {
	local nd=$1 root
	for root in $(node_cgroups); do
		grep -qxF "$root" "$nd/host-dirs.saved" 2>/dev/null && continue
		find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

node_unmount() { # every mount under the node's folder, deepest first
	local nd=$1 m
	for m in $(awk -v p="$nd/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

node_restore_host() {
	local nd=$1 line d
	if [[ -f $nd/sysctl.saved ]]; then
		while IFS= read -r line; do
			sysctl -q -w "$line" >/dev/null 2>&1 || true
		done <"$nd/sysctl.saved"
	fi
	for d in $NODE_HOST_DIRS; do
		[[ -e $d ]] || continue
		grep -qxF "$d" "$nd/host-dirs.saved" 2>/dev/null && continue
		umount -R "$d" 2>/dev/null || true
		rm -rf "$d"
	done
	if [[ -f $nd/lo-address.added ]]; then
		ip addr del "$SERVICE_IP/32" dev lo 2>/dev/null || true
		rm -f "$nd/lo-address.added"
	fi
	rm -f "$nd/sysctl.saved" "$nd/host-dirs.saved"
}

cmd_node_down() {
	local dir nd
	dir=$(abs_dir "$1") || return 0
	nd=$dir/node
	[[ -d $nd ]] || return 0
	stop_pid "$nd/kubelet.pid" "$nd/kubelet.yaml"
	node_kill_containers "$nd"
	stop_pid "$nd/containerd.pid" "$nd/containerd"
	stop_pid "$nd/kube-scheduler.pid" "$dir/kubeconfig"
	stop_pid "$nd/kube-controller-manager.pid" "$dir/kubeconfig"
	stop_pid "$nd/service-proxy.pid" "bind=$SERVICE_IP"
	node_unmount "$nd"
	node_remove_cgroups "$nd"
	# host-dirs.saved is still there: only a node that ran restores
	[[ -f $nd/sysctl.saved ]] && node_restore_host "$nd"
	rm -rf "$nd/containerd" "$nd/kubelet" "$nd/env"
}
